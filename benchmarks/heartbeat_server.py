"""A small, fast loopback server for the HTTP benchmarks, run in its own process.

Strategy: the benchmarks measure the client's CPU with `time.process_time()`, so
the server must not share the client's process; it runs as a subprocess of the
benchmark session, on one asyncio event loop with one `asyncio.Protocol` and one
h11 server connection per TCP connection. It behaves like gunicorn in front of
Jobmon on the heartbeat route (DESIGN.md, "The wire"), with persistent
connections, and stays cheap so that a round of heartbeats is short.

Usage: `python heartbeat_server.py [--prefix /api/v3]`. It binds 127.0.0.1 on a
port the system picks, writes that port as one line on stdout, and serves until
its stdin reaches end of file (the parent closed it, or died) or it gets SIGTERM.

Rules it keeps:

- `POST {prefix}/workflow_run/{id}/log_heartbeat` with any integer id and a JSON
  body `{"status": str, "next_report_increment": number}` is a beat. The answer is
  200 with the status sent, as compact JSON with a trailing newline
  (`{"status":"R"}\\n`), a Content-Length and the headers gunicorn sends
  (Server, Date, Connection, Content-Type). Every run accepts every move: the
  benchmarks measure the exchange, not Jobmon's rules.
- The refusals mirror Jobmon's: an unknown path is 404, another method 500, a
  Content-Type other than `application/json` 500, a body that is not such an
  object 400. Bytes h11 cannot parse get a 400 and the connection closes.
- Connections stay open while the client keeps them (HTTP/1.1); a client asking
  for `Connection: close` gets it. Each answer leaves in one write.
- `GET /_stats` answers `{"beats": n, "beat_connections": m}`: beats answered
  so far, and connections that carried at least one beat. A benchmark reads it
  before and after its rounds to check that every heartbeat arrived and that
  all of them shared one kept-alive connection.
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import http
import json
import os
import re
import signal
import socket
import sys
import time

import h11

_ROUTE = r"/workflow_run/[0-9]+/log_heartbeat"
_STATS_TARGET = b"/_stats"
_SERVER_HEADER = (b"Server", b"gunicorn")


class _Stats:
    def __init__(self) -> None:
        self.beats = 0
        self.beat_connections = 0


class _DateHeader:
    """The Date header's value, formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def value(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = email.utils.formatdate(now, usegmt=True).encode("ascii")
        return self._value


def _beat_status(body: bytes) -> str | None:
    """The status of a valid heartbeat body, or None."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if type(document) is not dict:
        return None
    status = document.get("status")
    increment = document.get("next_report_increment")
    if type(status) is not str or type(increment) not in (int, float):
        return None
    return status


class _Connection(asyncio.Protocol):
    def __init__(
        self, route: re.Pattern[bytes], stats: _Stats, date: _DateHeader
    ) -> None:
        self._route = route
        self._stats = stats
        self._date = date
        self._h11 = h11.Connection(our_role=h11.SERVER)
        self._transport: asyncio.Transport | None = None
        self._request: h11.Request | None = None
        self._body = bytearray()
        self._carried_beat = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._h11.receive_data(data)
        self._process()

    def eof_received(self) -> bool | None:
        self._h11.receive_data(b"")
        self._process()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def _process(self) -> None:
        conn = self._h11
        try:
            while self._transport is not None:
                event = conn.next_event()
                if type(event) is h11.Request:
                    self._request = event
                    self._body.clear()
                elif type(event) is h11.Data:
                    self._body += event.data
                elif type(event) is h11.EndOfMessage:
                    self._respond()
                    if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                        conn.start_next_cycle()
                    else:
                        self._close()
                elif event is h11.NEED_DATA:
                    return
                else:  # ConnectionClosed, or PAUSED after a close was agreed
                    self._close()
        except h11.RemoteProtocolError:
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                self._send(400, {"error": "bad request"}, close=True)
            self._close()

    def _respond(self) -> None:
        request = self._request
        assert request is not None
        if request.target == _STATS_TARGET:
            stats = self._stats
            self._send(
                200,
                {"beats": stats.beats, "beat_connections": stats.beat_connections},
            )
            return
        if self._route.fullmatch(request.target) is None:
            self._send(404, {"error": "not found"})
            return
        if request.method != b"POST":
            self._send(500, {"error": "method not allowed"})
            return
        content_type = None
        for name, value in request.headers:
            if name == b"content-type":
                content_type = value
        if content_type is None or content_type.split(b";")[0] != b"application/json":
            self._send(500, {"error": "not JSON"})
            return
        status = _beat_status(bytes(self._body))
        if status is None:
            self._send(400, {"error": "bad heartbeat"})
            return
        self._stats.beats += 1
        if not self._carried_beat:
            self._carried_beat = True
            self._stats.beat_connections += 1
        self._send(200, {"status": status})

    def _send(
        self, code: int, document: dict[str, object], *, close: bool = False
    ) -> None:
        transport = self._transport
        assert transport is not None
        body = json.dumps(document, separators=(",", ":")).encode() + b"\n"
        conn = self._h11
        head = h11.Response(
            status_code=code,
            reason=http.HTTPStatus(code).phrase.encode("ascii"),
            headers=[
                _SERVER_HEADER,
                (b"Date", self._date.value()),
                (b"Connection", b"close" if close else b"keep-alive"),
                (b"Content-Type", b"application/json"),
                (b"Content-Length", str(len(body)).encode("ascii")),
            ],
        )
        wire = conn.send(head)
        more = conn.send(h11.Data(data=body))
        end = conn.send(h11.EndOfMessage())
        assert wire is not None
        assert more is not None
        assert end is not None
        transport.write(wire + more + end)

    def _close(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()


async def _serve(prefix: str) -> None:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    route = re.compile((re.escape(prefix) + _ROUTE).encode("ascii"))
    stats = _Stats()
    date = _DateHeader()

    server = await loop.create_server(
        lambda: _Connection(route, stats, date), "127.0.0.1", 0
    )
    stdin = sys.stdin.fileno()

    def on_stdin() -> None:
        if not os.read(stdin, 4096):
            loop.remove_reader(stdin)
            done.set()

    loop.add_reader(stdin, on_stdin)
    loop.add_signal_handler(signal.SIGTERM, done.set)
    sock: socket.socket = server.sockets[0]
    sys.stdout.write(f"{sock.getsockname()[1]}\n")
    sys.stdout.flush()
    try:
        await done.wait()
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description="A loopback server for the heartbeat route, for benchmarks."
    )
    parser.add_argument("--prefix", default="", help="route prefix, e.g. /api/v3")
    args = parser.parse_args()
    prefix: str = args.prefix.rstrip("/")
    asyncio.run(_serve(prefix))


if __name__ == "__main__":
    main()
