"""A hostile HTTP server on loopback, for sansbeat's fault-injection tests.

Strategy: raw sockets and threads, sharing no code with sansbeat's client, so
that it can break every rule a real server might break. One thread accepts
connections; each connection gets a thread that reads requests (a head, then a
Content-Length body) and hands each one to a `Fault`, chosen per request by a
script: a sequence of faults by request index, or a callable given the request.
A fault writes whatever it likes (a healthy answer, garbage, a body that never
ends, one byte per second, nothing) through an `Exchange`, and says whether the
connection stays open for another request.

Every request is logged as a `Request`: its index, its connection, when its first
byte came and when it was complete (`time.monotonic()` seconds), its bytes, the
fault served, and how and when the exchange ended (the answer written, the client
seen closing, a reset, the server stopping). A test reads the log to check what
the client did on the wire: one request at a time, each given up by its deadline,
the statuses it carried.

Rules:

- Listens on 127.0.0.1 only; the port is chosen by the system on the first
  `start()` and kept for every later one, so `stop()` then `start()` is an outage
  during which connections are refused (the listening socket is closed).
- `stop()` is prompt and complete: it wakes the accept loop, closes the listening
  socket, shuts down every open connection (which wakes every handler, whether
  it is reading, waiting or writing) and joins every thread it started.
- A fault waits by `select` on its connection, so a client that closes (or a
  stop) ends the wait at once and the end of the exchange is logged when it
  happened, not when the fault next looks. Bytes the client sends while it waits
  for an answer are logged as `unexpected` (a client that pipelines).
- Nothing here reads a clock other than `time.monotonic()`, and nothing sleeps
  except by waiting on a socket with a timeout.
"""

from __future__ import annotations

import abc
import contextlib
import itertools
import json
import math
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Literal

__all__ = [
    "Answer",
    "BadBody",
    "Chunked",
    "CloseBeforeResponse",
    "Drip",
    "EndlessBody",
    "EndlessInterim",
    "Exchange",
    "Fault",
    "Garbage",
    "HostileServer",
    "Http10",
    "HttpError",
    "Interim",
    "NeverAnswer",
    "Request",
    "ResetMidResponse",
    "Script",
]

#: The largest request head read (bytes); a longer one drops the connection.
_HEAD_LIMIT = 64 * 1024
#: Seconds a connection may take to send its first request, or the rest of one.
_REQUEST_WAIT = 5.0
#: The most bytes an endless body sends before giving up on a client that reads on.
_ENDLESS_LIMIT = 256 * 1024 * 1024
_CHUNK = b" " * (16 * 1024)
_REASONS = {
    100: "Continue",
    102: "Processing",
    103: "Early Hints",
    200: "OK",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


# ------------------------------------------------------------------ the log


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """One request the server read, and how its exchange went.

    Attributes:
        index: its place among all requests since the server was made, from 0.
        connection_id: the connection it came on (1, 2, ... in order of accept).
        on_connection: its place among the requests on that connection, from 0.
        started_at: when its first byte was read (`time.monotonic()` seconds).
        arrived_at: when it was complete (seconds).
        head: the request line and headers, as received.
        body: the body, as received.
        fault: the fault that served it.
        ended_at: when the exchange ended (seconds): the fault was done, or the
            client was seen closing first. None while it goes on.
        ending: how it ended: "served" (the fault was done), "client_closed",
            "reset" (the server reset the connection) or "stopped" (by `stop()`).
        bytes_sent: bytes the server wrote for it.
        unexpected: bytes the client sent while it waited for the answer.
    """

    index: int
    connection_id: int
    on_connection: int
    started_at: float
    arrived_at: float
    head: bytes
    body: bytes
    fault: Fault
    ended_at: float | None = None
    ending: str = ""
    bytes_sent: int = 0
    unexpected: bytes = b""

    @property
    def status(self) -> str | None:
        """The "status" of the JSON body, or None if there is none."""
        try:
            fields = json.loads(self.body)
        except ValueError:
            return None
        status = fields.get("status") if isinstance(fields, dict) else None
        return status if isinstance(status, str) else None

    @property
    def request_line(self) -> bytes:
        """The first line of the head, without its line end."""
        return self.head.split(b"\r\n", 1)[0]


# ----------------------------------------------------------------- the faults


class Exchange:
    """What a fault may do with the connection while it serves one request.

    Made by the server for each request; faults call its methods from the
    connection's thread.
    """

    def __init__(self, connection: socket.socket, request: Request) -> None:
        self.request = request
        self._connection = connection
        self.bytes_sent = 0
        self.unexpected = bytearray()
        #: When the client was seen closing (or the connection failed), if so.
        self.gone_at: float | None = None
        #: Whether the fault reset (and so closed) the connection.
        self.was_reset = False

    @property
    def status_sent(self) -> str:
        """The status the request carried ("R" if it carried none)."""
        return self.request.status or "R"

    def send(self, data: bytes) -> bool:
        """Write `data`; False (and nothing more is written) once the client is gone."""
        if self.gone_at is not None or self.was_reset:
            return False
        try:
            self._connection.sendall(data)
        except OSError:
            self.mark_gone()
            return False
        self.bytes_sent += len(data)
        return True

    def pause(self, seconds: float) -> bool:
        """Wait `seconds`, or until the client closes or the server stops.

        Returns True if the client is still there afterwards.
        """
        deadline = time.monotonic() + seconds
        while self.gone_at is None and not self.was_reset:
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            readable, _, _ = select.select([self._connection], [], [], left)
            if readable:
                self._read_while_waiting()
        return False

    def wait_for_close(self) -> None:
        """Wait until the client closes the connection (or the server stops)."""
        while self.gone_at is None and not self.was_reset:
            readable, _, _ = select.select([self._connection], [], [])
            if readable:
                self._read_while_waiting()

    def reset(self) -> None:
        """Close the connection with a TCP reset (RST) instead of a FIN."""
        if self.was_reset:
            return
        with contextlib.suppress(OSError):
            self._connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
        self._connection.close()
        self.was_reset = True

    def _read_while_waiting(self) -> None:
        try:
            data = self._connection.recv(65536)
        except OSError:
            data = b""
        if data:
            self.unexpected += data
        else:
            self.mark_gone()

    def mark_gone(self) -> None:
        """Note that the client is gone (now), unless already noted."""
        if self.gone_at is None:
            self.gone_at = time.monotonic()


class Fault(abc.ABC):
    """How the server answers one request (or does not)."""

    __slots__ = ()

    @abc.abstractmethod
    def serve(self, exchange: Exchange) -> float | None:
        """Serve the request; return seconds to wait for the next request on this
        connection (keep-alive), or None to close it."""


def _json_status(status: str) -> bytes:
    return json.dumps({"status": status}, separators=(",", ":")).encode() + b"\n"


def _response(
    code: int,
    body: bytes,
    *,
    keep_alive: bool = False,
    headers: Sequence[tuple[str, str]] = (),
    version: str = "HTTP/1.1",
) -> bytes:
    lines = [f"{version} {code} {_REASONS.get(code, 'Whatever')}"]
    lines.append("Content-Type: application/json")
    lines.append(f"Content-Length: {len(body)}")
    lines.append(f"Connection: {'keep-alive' if keep_alive else 'close'}")
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass(frozen=True, slots=True)
class Answer(Fault):
    """A healthy 200 answer with a Content-Length: the status sent, or `status`.

    With `keep_alive` the connection stays open for `idle_timeout` seconds
    waiting for the next request (gunicorn's idle drop), else it closes
    (Werkzeug's `Connection: close`).
    """

    status: str | None = None
    keep_alive: bool = False
    idle_timeout: float = _REQUEST_WAIT

    def serve(self, exchange: Exchange) -> float | None:
        body = _json_status(self.status or exchange.status_sent)
        exchange.send(_response(200, body, keep_alive=self.keep_alive))
        return self.idle_timeout if self.keep_alive else None


@dataclass(frozen=True, slots=True)
class Interim(Fault):
    """`codes` interim 1xx responses, each in its own write, then `then`."""

    codes: tuple[int, ...] = (100, 102)
    then: Fault = Answer()

    def serve(self, exchange: Exchange) -> float | None:
        for code in self.codes:
            head = f"HTTP/1.1 {code} {_REASONS.get(code, 'Interim')}\r\n\r\n"
            if not exchange.send(head.encode()):
                return None
        return self.then.serve(exchange)


@dataclass(frozen=True, slots=True)
class EndlessInterim(Fault):
    """Interim `100 Continue` responses for ever (until the client goes, or
    256 MiB), never a final one: bytes that are no body at all.

    They come `batch` at a time every `period` seconds (about 1 MB/s by
    default), so that this thread does not take the interpreter from the
    client under test as a flood from another machine would not.
    """

    batch: int = 40
    period: float = 0.001

    def serve(self, exchange: Exchange) -> float | None:
        flood = b"HTTP/1.1 100 Continue\r\n\r\n" * self.batch
        while exchange.bytes_sent < _ENDLESS_LIMIT and exchange.send(flood):
            if not exchange.pause(self.period):
                break
        return None


@dataclass(frozen=True, slots=True)
class Chunked(Fault):
    """A healthy 200 answer with a chunked body, split in several chunks."""

    keep_alive: bool = False

    def serve(self, exchange: Exchange) -> float | None:
        body = _json_status(exchange.status_sent)
        connection = "keep-alive" if self.keep_alive else "close"
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Transfer-Encoding: chunked\r\nConnection: {connection}\r\n\r\n"
        )
        chunks = b"".join(
            f"{len(part):x}\r\n".encode() + part + b"\r\n"
            for part in (body[:3], body[3:7], body[7:])
            if part
        )
        exchange.send(head.encode() + chunks + b"0\r\n\r\n")
        return _REQUEST_WAIT if self.keep_alive else None


@dataclass(frozen=True, slots=True)
class Http10(Fault):
    """A healthy answer in HTTP/1.0: no Content-Length, the body ends at close."""

    def serve(self, exchange: Exchange) -> float | None:
        head = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n"
        exchange.send(head + _json_status(exchange.status_sent))
        return None


@dataclass(frozen=True, slots=True)
class NeverAnswer(Fault):
    """Reads the request and never answers, until the client gives up."""

    def serve(self, exchange: Exchange) -> float | None:
        exchange.wait_for_close()
        return None


@dataclass(frozen=True, slots=True)
class Drip(Fault):
    """A healthy answer written one byte every `period` seconds.

    `padding` adds a header of that many bytes, so the answer takes longer.
    """

    period: float = 1.0
    padding: int = 0

    def serve(self, exchange: Exchange) -> float | None:
        headers = [("X-Padding", "p" * self.padding)] if self.padding else []
        data = _response(200, _json_status(exchange.status_sent), headers=headers)
        for at in range(len(data)):
            if not exchange.send(data[at : at + 1]) or not exchange.pause(self.period):
                return None
        return None


@dataclass(frozen=True, slots=True)
class ResetMidResponse(Fault):
    """The head and part of the body, then a TCP reset."""

    def serve(self, exchange: Exchange) -> float | None:
        data = _response(200, _json_status(exchange.status_sent))
        exchange.send(data[: len(data) - 8])
        exchange.reset()
        return None


@dataclass(frozen=True, slots=True)
class CloseBeforeResponse(Fault):
    """Closes the connection (FIN) before any byte, after `delay` seconds."""

    delay: float = 0.0

    def serve(self, exchange: Exchange) -> float | None:
        if self.delay:
            exchange.pause(self.delay)
        return None


@dataclass(frozen=True, slots=True)
class Garbage(Fault):
    """Bytes that are not HTTP, then waits for the client to give up."""

    data: bytes = b"\x16\x03\x01\x00\xff SSH-2.0-hostile \xc3\x28\r\n\r\n"

    def serve(self, exchange: Exchange) -> float | None:
        exchange.send(self.data)
        exchange.wait_for_close()
        return None


@dataclass(frozen=True, slots=True)
class EndlessBody(Fault):
    """A 200 head, then spaces for ever (until the client goes, or 256 MiB).

    `framing`: "length" declares a Content-Length of a terabyte, "chunked" sends
    endless chunks, "eof" declares nothing (the body would end at close).
    """

    framing: Literal["length", "chunked", "eof"] = "chunked"

    def serve(self, exchange: Exchange) -> float | None:
        head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        if self.framing == "length":
            head += "Content-Length: 1000000000000\r\n"
            piece = _CHUNK
        elif self.framing == "chunked":
            head += "Transfer-Encoding: chunked\r\n"
            piece = f"{len(_CHUNK):x}\r\n".encode() + _CHUNK + b"\r\n"
        else:
            head += "Connection: close\r\n"
            piece = _CHUNK
        if not exchange.send((head + "\r\n").encode()):
            return None
        while exchange.bytes_sent < _ENDLESS_LIMIT and exchange.send(piece):
            pass
        return None


@dataclass(frozen=True, slots=True)
class BadBody(Fault):
    """A 200 answer whose body is `body` (invalid JSON, JSON without status...)."""

    body: bytes = b'{"status": "R"'

    def serve(self, exchange: Exchange) -> float | None:
        exchange.send(_response(200, self.body))
        return None


@dataclass(frozen=True, slots=True)
class HttpError(Fault):
    """An error status with a small JSON body, and Retry-After if given."""

    code: int = 503
    retry_after: str | None = None
    keep_alive: bool = False

    def serve(self, exchange: Exchange) -> float | None:
        headers = (
            [] if self.retry_after is None else [("Retry-After", self.retry_after)]
        )
        body = json.dumps({"error": f"hostile {self.code}"}).encode()
        exchange.send(
            _response(self.code, body, keep_alive=self.keep_alive, headers=headers)
        )
        return _REQUEST_WAIT if self.keep_alive else None


#: Which fault serves a request: by index (beyond the end: the server's default),
#: or a callable given the request (its fault field is a placeholder).
Script = Sequence[Fault] | Callable[[Request], Fault]


# ------------------------------------------------------------------ the server


class HostileServer:
    """A loopback HTTP server that serves each request with a scripted fault.

    Args:
        script: the fault for each request (see `Script`).
        default: the fault for requests beyond the end of a sequence script.

    It listens only between `start()` and `stop()` (or inside `with`).
    """

    def __init__(self, script: Script = (), *, default: Fault = Answer()) -> None:
        self._script = script
        self._default = default
        self._changed = threading.Condition()  # guards everything below
        self._requests: list[Request] = []
        self._connection_ids = itertools.count(1)
        self._accepted = 0
        self._idle_drops = 0
        self._open: dict[int, socket.socket] = {}
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._port = 0
        self._listener: socket.socket | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._acceptor: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the server is listening."""
        return self._listener is not None

    @property
    def port(self) -> int:
        """The TCP port, fixed by the first `start()`."""
        if not self._port:
            raise RuntimeError("the server has never been started: no port yet")
        return self._port

    @property
    def base_url(self) -> str:
        """The base URL to give a client."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Listen (on the same port as before, after the first start) and serve."""
        if self._listener is not None:
            raise RuntimeError("the server is already running")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self._port))
            listener.listen(64)
        except BaseException:
            listener.close()
            raise
        self._port = listener.getsockname()[1]
        wake = socket.socketpair()
        with self._changed:
            self._stopping = False
        self._listener = listener
        self._wake = wake
        self._acceptor = threading.Thread(
            target=self._accept_loop,
            args=(listener, wake[0]),
            name=f"hostile-accept-{self._port}",
        )
        self._acceptor.start()

    def stop(self) -> None:
        """Refuse connections from now on, end every exchange, join every thread.

        Prompt whatever the faults are doing. Does nothing if not running.
        """
        listener, wake, acceptor = self._listener, self._wake, self._acceptor
        if listener is None or wake is None or acceptor is None:
            return
        self._listener = self._wake = self._acceptor = None
        with self._changed:
            self._stopping = True
        wake[1].send(b"x")
        acceptor.join()
        listener.close()
        for end in wake:
            end.close()
        with self._changed:
            connections = list(self._open.values())
            threads, self._threads = self._threads, []
        for connection in connections:
            with contextlib.suppress(OSError):  # closed by its handler meanwhile
                connection.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join()

    def __enter__(self) -> HostileServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what tests set and read --------------------------------------------------

    def set_script(self, script: Script, *, default: Fault | None = None) -> None:
        """Serve requests from now on by `script` (indices still count from 0)."""
        with self._changed:
            self._script = script
            if default is not None:
                self._default = default

    @property
    def requests(self) -> tuple[Request, ...]:
        """Every request read so far, in order of arrival."""
        with self._changed:
            return tuple(self._requests)

    @property
    def accepted(self) -> int:
        """Connections accepted so far."""
        with self._changed:
            return self._accepted

    @property
    def idle_drops(self) -> int:
        """Kept-alive connections dropped for waiting too long for a request."""
        with self._changed:
            return self._idle_drops

    def wait_for(
        self, predicate: Callable[[tuple[Request, ...]], bool], timeout: float
    ) -> tuple[Request, ...]:
        """Block until `predicate(requests)` holds; return the requests.

        Raises TimeoutError after `timeout` seconds.
        """
        with self._changed:
            if not self._changed.wait_for(
                lambda: predicate(tuple(self._requests)), timeout
            ):
                raise TimeoutError(f"not within {timeout} s: {self._requests!r}")
            return tuple(self._requests)

    # -- the threads ------------------------------------------------------------

    def _accept_loop(self, listener: socket.socket, wake: socket.socket) -> None:
        while True:
            readable, _, _ = select.select([listener, wake], [], [])
            if wake in readable:
                return
            try:
                connection, _ = listener.accept()
            except OSError:  # the client gave up already (ECONNABORTED)
                continue
            connection.setblocking(True)
            # Each write leaves at once (no Nagle delay between a fault's writes).
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._changed:
                connection_id = next(self._connection_ids)
                self._accepted += 1
                self._open[connection_id] = connection
                thread = threading.Thread(
                    target=self._serve_connection,
                    args=(connection, connection_id),
                    name=f"hostile-{self._port}-connection-{connection_id}",
                )
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
            thread.start()

    def _serve_connection(self, connection: socket.socket, connection_id: int) -> None:
        closed = False
        try:
            buffer = bytearray()
            wait = _REQUEST_WAIT
            for on_connection in itertools.count():
                read = self._read_request(connection, buffer, wait)
                if read is None:
                    if on_connection and wait < _REQUEST_WAIT:
                        with self._changed:
                            self._idle_drops += 1
                    return
                request, fault = self._log_request(connection_id, on_connection, read)
                exchange = Exchange(connection, request)
                try:
                    keep = fault.serve(exchange)
                except OSError:
                    exchange.mark_gone()
                    keep = None
                closed = exchange.was_reset
                self._log_end(request, exchange)
                if keep is None or closed or exchange.gone_at is not None:
                    return
                wait = keep
        finally:
            with self._changed:
                self._open.pop(connection_id, None)
            if not closed:
                connection.close()

    def _read_request(
        self, connection: socket.socket, buffer: bytearray, wait: float
    ) -> tuple[float, float, bytes, bytes] | None:
        """(started_at, arrived_at, head, body) of the next request, or None if
        the connection closed, stayed idle for `wait` seconds, or broke the rules."""
        started_at: float | None = time.monotonic() if buffer else None
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            if len(buffer) > _HEAD_LIMIT:
                return None
            data = _receive(connection, wait if started_at is None else _REQUEST_WAIT)
            if not data:
                return None
            if started_at is None:
                started_at = time.monotonic()
            buffer += data
        head = bytes(buffer[: end + 4])
        del buffer[: end + 4]
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                if not value.strip().isdigit():
                    return None
                length = int(value.strip())
        while len(buffer) < length:
            data = _receive(connection, _REQUEST_WAIT)
            if not data:
                return None
            buffer += data
        body = bytes(buffer[:length])
        del buffer[:length]
        assert started_at is not None  # a head was read
        return started_at, time.monotonic(), head, body

    def _log_request(
        self,
        connection_id: int,
        on_connection: int,
        read: tuple[float, float, bytes, bytes],
    ) -> tuple[Request, Fault]:
        started_at, arrived_at, head, body = read
        with self._changed:
            index = len(self._requests)
            request = Request(
                index=index,
                connection_id=connection_id,
                on_connection=on_connection,
                started_at=started_at,
                arrived_at=arrived_at,
                head=head,
                body=body,
                fault=self._default,
            )
            script = self._script
            if callable(script):
                fault = script(request)
            else:
                fault = script[index] if index < len(script) else self._default
            request = replace(request, fault=fault)
            self._requests.append(request)
            self._changed.notify_all()
        return request, fault

    def _log_end(self, request: Request, exchange: Exchange) -> None:
        with self._changed:
            if exchange.gone_at is not None:
                ended_at = exchange.gone_at
                ending = "stopped" if self._stopping else "client_closed"
            else:
                ended_at = time.monotonic()
                ending = "reset" if exchange.was_reset else "served"
            self._requests[request.index] = replace(
                request,
                ended_at=ended_at,
                ending=ending,
                bytes_sent=exchange.bytes_sent,
                unexpected=bytes(exchange.unexpected),
            )
            self._changed.notify_all()


def _receive(connection: socket.socket, timeout: float) -> bytes:
    """Bytes read within `timeout` seconds; b"" for none, end of file or an error."""
    if not math.isfinite(timeout) or timeout < 0:
        timeout = _REQUEST_WAIT
    readable, _, _ = select.select([connection], [], [], timeout)
    if not readable:
        return b""
    try:
        return connection.recv(65536)
    except OSError:
        return b""
