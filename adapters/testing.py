"""A stand-in Jobmon server on loopback: for sansbeat's tests, its demo, and yours.

Strategy: a real HTTP server that shares no code with sansbeat's client, built
only on the standard library's `http.server`, that behaves on the wire like the
published jobmon-server 3.2.2 as DESIGN.md ("The wire") records it. Tests drive
it from their own thread: they register runs, send signals, call the reaper, read
the log of received beats, and stop and restart it on the same port.

Rules it keeps:

- One route: `POST {prefix}/workflow_run/{id}/log_heartbeat`, JSON body
  `{"status": str, "next_report_increment": number}`. Checked in this order: an
  unknown path is 404; a method other than POST is 500; a Content-Type other than
  `application/json` is 500; a body that is not a JSON object with both fields of the
  right types is 400; an unknown (or non-integer) run id is 500. A request refused
  this way is not a beat: it is not logged and changes nothing. A body it cannot
  frame (chunked, a Content-Length that is not a number, over 64 KiB) is 400, and
  the connection closes.
- A beat first tries to move the run to the status sent, by `TRANSITIONS` (the same
  status is always allowed; a letter not in `STATUSES` never is). If the move is
  allowed the run takes the status and its deadline becomes
  `floor(receipt + next_report_increment)`: the real server keeps whole seconds, and
  floor is the pessimistic reading (so an increment under a second may give a
  deadline at or before the receipt). If refused, the status and the deadline stay
  as they were. Either way the answer is `200` with the status held, as compact JSON
  with a trailing newline and a Content-Length (`{"status":"R"}\\n`), never
  chunked.
- `signal(run_id, status)` is a move made by another actor (a resume sets `C` or
  `H`): it obeys `TRANSITIONS` too, and the next answer carries it.
- The reaper (`reap(now)`, or a background thread every `reap_period` seconds)
  marks lost (`E`) every run that has a deadline, is not in a final status (one with
  no way out in `TRANSITIONS`) and whose deadline has come (deadline <= now). A run
  gets its first deadline from its first renewing beat.
- The table, the floor and the reaper's rule are the same as `sansbeat.sim`'s
  simulated server (core/sim.py), so a test can move between the two.
- Server-side times (receipts, deadlines, reaps) are `time.monotonic()` seconds.
- `keep_alive=False` behaves like Werkzeug: `Connection: close` on every response,
  then close. `keep_alive=True` behaves like gunicorn gthread: HTTP/1.1 persistent
  connections, dropped after `idle_timeout` seconds without a request byte.
- Each response leaves in one send (a buffered writer flushed once per request).
- `stop()` closes the listening socket and every open connection, and joins every
  thread it started, promptly; `start()` binds the same port again. Runs and logs
  survive a restart, as a real server's database would.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import re
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast
from urllib.parse import urlsplit

__all__ = [
    "FINAL_STATUSES",
    "LOST",
    "STATUSES",
    "TRANSITIONS",
    "Beat",
    "JobmonServer",
    "Reap",
    "move_allowed",
    "renewed_deadline",
]

#: Jobmon's workflow-run statuses, one letter each, with their meaning.
STATUSES: Mapping[str, str] = {
    "G": "registered",
    "L": "linking",
    "B": "bound",
    "I": "instantiated",
    "O": "launched",
    "R": "running",
    "C": "cold resume requested",
    "H": "hot resume requested",
    "D": "done",
    "S": "stopped",
    "E": "error (also: lost, when reaped)",
    "A": "aborted",
    "T": "terminated",
}

#: The moves a beat may make, from the status held to the statuses listed; staying
#: in the same status is always allowed besides. A small model of Jobmon's table:
#: a run is set up (G L B I O), runs (R), ends (D S E), or is asked to resume (C H)
#: and is then terminated (T). A, D, S, E and T have no way out.
TRANSITIONS: Mapping[str, frozenset[str]] = {
    "G": frozenset("LA"),
    "L": frozenset("BA"),
    "B": frozenset("IA"),
    "I": frozenset("OE"),
    "O": frozenset("RE"),
    "R": frozenset("DSECH"),
    "C": frozenset("T"),
    "H": frozenset("T"),
    "D": frozenset(),
    "S": frozenset(),
    "E": frozenset(),
    "A": frozenset(),
    "T": frozenset(),
}

#: Statuses with no way out: the reaper leaves them alone.
FINAL_STATUSES = frozenset(held for held, moves in TRANSITIONS.items() if not moves)

#: The status the reaper gives a run whose deadline passed.
LOST = "E"

#: How often (seconds) the accept loop checks for a stop request: bounds `stop()`.
_POLL_INTERVAL = 0.02
#: Largest request body accepted (bytes); a beat is about 50.
_MAX_BODY = 65536


def move_allowed(held: str, sent: str) -> bool:
    """Whether a beat reporting `sent` may move a run that holds `held`."""
    return sent == held or sent in TRANSITIONS.get(held, frozenset())


def renewed_deadline(received_at: float, next_report_increment: float) -> float:
    """The deadline (seconds) a renewing beat sets: whole seconds, rounded down."""
    return float(math.floor(received_at + next_report_increment))


@dataclass(frozen=True, slots=True, kw_only=True)
class Beat:
    """One heartbeat the server accepted and answered.

    Attributes:
        received_at: when the request was read (seconds, `time.monotonic()`).
        run_id: the workflow run it named.
        status_sent: the status in the request.
        next_report_increment: the increment in the request (seconds, as sent).
        answer: the status in the response (the status held after the beat).
        renewed: whether the move was allowed and the deadline extended.
        connection_id: the server's number for the TCP connection it came on
            (1 for the first connection accepted, counting across restarts).
    """

    received_at: float
    run_id: int
    status_sent: str
    next_report_increment: float
    answer: str
    renewed: bool
    connection_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Reap:
    """One run the reaper declared lost.

    Attributes:
        at: the `now` the reaper ran with (seconds, `time.monotonic()`).
        run_id: the run.
        old_status: its status before; it is now `LOST`.
        deadline: the deadline that had passed (seconds, `time.monotonic()`).
    """

    at: float
    run_id: int
    old_status: str
    deadline: float


@dataclass(slots=True)
class _Run:
    status: str
    deadline: float | None = None


class JobmonServer:
    """A Jobmon-like heartbeat server on 127.0.0.1, for tests.

    Args:
        prefix: path before `/workflow_run/...`: "" or e.g. "/api/v3".
        keep_alive: False for Werkzeug's behaviour (close after every response),
            True for gunicorn gthread's (persistent connections).
        idle_timeout: seconds a connection may wait for its next request byte before
            the server drops it (gunicorn's keep-alive is about 3 s).
        reap_period: if given, seconds between runs of a background reaper.

    It listens only between `start()` and `stop()` (or inside `with`). The port is
    chosen by the system on the first start and kept for every later one.
    """

    def __init__(
        self,
        *,
        prefix: str = "",
        keep_alive: bool = False,
        idle_timeout: float = 3.0,
        reap_period: float | None = None,
    ) -> None:
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise ValueError(f"prefix must be '' or '/name', not {prefix!r}")
        if not idle_timeout > 0:
            raise ValueError(f"idle_timeout must be > 0 seconds, not {idle_timeout}")
        if reap_period is not None and not reap_period > 0:
            raise ValueError(f"reap_period must be > 0 seconds, not {reap_period}")
        self._prefix = prefix
        self._route = re.compile(
            re.escape(prefix) + r"/workflow_run/([^/]+)/log_heartbeat"
        )
        self.keep_alive = keep_alive
        self.idle_timeout = idle_timeout
        self._reap_period = reap_period
        self._changed = threading.Condition()  # guards everything below
        self._runs: dict[int, _Run] = {}
        self._beats: list[Beat] = []
        self._reaps: list[Reap] = []
        self._connection_ids = itertools.count(1)
        self._port = 0
        self._listener: _Listener | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    # -- Lifecycle ------------------------------------------------------------------

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
    def prefix(self) -> str:
        """The path prefix of the route ("" or e.g. "/api/v3")."""
        return self._prefix

    @property
    def base_url(self) -> str:
        """The base URL a client joins `/workflow_run/...` to."""
        return f"http://127.0.0.1:{self.port}{self._prefix}"

    def start(self) -> None:
        """Listen (on the same port as before, after the first start) and serve."""
        if self._listener is not None:
            raise RuntimeError("the server is already running")
        listener = _Listener(("127.0.0.1", self._port), self)
        self._listener = listener
        self._port = listener.server_address[1]
        self._stopping.clear()
        self._threads = [
            threading.Thread(
                target=listener.serve_forever,
                kwargs={"poll_interval": _POLL_INTERVAL},
                name=f"jobmon-server-{self._port}",
                daemon=True,
            )
        ]
        if self._reap_period is not None:
            self._threads.append(
                threading.Thread(
                    target=self._reap_every,
                    args=(self._reap_period,),
                    name=f"jobmon-reaper-{self._port}",
                    daemon=True,
                )
            )
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Close the listening socket and every connection; join every thread.

        Prompt (well under a second) even with idle keep-alive connections open.
        Does nothing if the server is not running.
        """
        listener = self._listener
        if listener is None:
            return
        self._listener = None
        self._stopping.set()
        listener.shutdown()  # the accept loop ends within _POLL_INTERVAL
        listener.drop_connections()  # handlers blocked in recv() read EOF and end
        listener.server_close()  # closes the listening socket, joins the handlers
        for thread in self._threads:
            thread.join()
        self._threads = []

    def __enter__(self) -> JobmonServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- What the tests set and read --------------------------------------------------

    def add_run(self, run_id: int, status: str = "R") -> None:
        """Register workflow run `run_id` holding `status`, with no deadline yet."""
        _check_status(status)
        with self._changed:
            if run_id in self._runs:
                raise ValueError(f"run {run_id} is already registered")
            self._runs[run_id] = _Run(status)

    def status(self, run_id: int) -> str:
        """The status run `run_id` holds."""
        with self._changed:
            return self._runs[run_id].status

    def deadline(self, run_id: int) -> float | None:
        """Run `run_id`'s deadline (seconds, `time.monotonic()`), None before any."""
        with self._changed:
            return self._runs[run_id].deadline

    def signal(self, run_id: int, status: str) -> bool:
        """Move run `run_id` to `status` (e.g. "C" or "H" to ask for a resume).

        The move obeys `TRANSITIONS`, and does not touch the deadline; the next
        beat's answer carries the new status. Returns whether it was allowed (if
        not, nothing changed).
        """
        _check_status(status)
        with self._changed:
            run = self._runs[run_id]
            if not move_allowed(run.status, status):
                return False
            run.status = status
            return True

    @property
    def beats(self) -> tuple[Beat, ...]:
        """Every beat answered so far, in order of receipt."""
        with self._changed:
            return tuple(self._beats)

    @property
    def reaps(self) -> tuple[Reap, ...]:
        """Every reap so far, in order."""
        with self._changed:
            return tuple(self._reaps)

    def wait_for_beats(self, count: int, timeout: float) -> tuple[Beat, ...]:
        """Block until at least `count` beats were answered; return all of them.

        Raises TimeoutError after `timeout` seconds without that many.
        """
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._beats) >= count, timeout):
                raise TimeoutError(
                    f"{len(self._beats)} beats, not {count}, within {timeout} s"
                )
            return tuple(self._beats)

    def wait_for_reaps(self, count: int, timeout: float) -> tuple[Reap, ...]:
        """Block until at least `count` reaps happened; return all of them.

        Raises TimeoutError after `timeout` seconds without that many.
        """
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._reaps) >= count, timeout):
                raise TimeoutError(
                    f"{len(self._reaps)} reaps, not {count}, within {timeout} s"
                )
            return tuple(self._reaps)

    def reap(self, now: float | None = None) -> tuple[Reap, ...]:
        """Declare lost every live run whose deadline is at or before `now`.

        `now` is seconds on `time.monotonic()` (default: the current reading). Live:
        with a deadline, and not in `FINAL_STATUSES`. Returns the reaps, in order.
        """
        if now is None:
            now = time.monotonic()
        reaped = []
        with self._changed:
            for run_id, run in self._runs.items():
                if (
                    run.deadline is not None
                    and run.deadline <= now
                    and run.status not in FINAL_STATUSES
                ):
                    reaped.append(
                        Reap(
                            at=now,
                            run_id=run_id,
                            old_status=run.status,
                            deadline=run.deadline,
                        )
                    )
                    run.status = LOST
            if reaped:
                self._reaps.extend(reaped)
                self._changed.notify_all()
        return tuple(reaped)

    # -- Used by the request handlers -------------------------------------------------

    def _match_route(self, path: str) -> str | None:
        """The run id text in `path` if it names the heartbeat route, else None."""
        found = self._route.fullmatch(urlsplit(path).path)
        return found.group(1) if found else None

    def _next_connection_id(self) -> int:
        with self._changed:
            return next(self._connection_ids)

    def _log_heartbeat(
        self, run_text: str, status: str, increment: float, connection_id: int
    ) -> Beat | None:
        """Apply one beat and log it; None (and no change) for an unknown run."""
        received_at = time.monotonic()
        with self._changed:
            run = self._runs.get(int(run_text)) if run_text.isdigit() else None
            if run is None:
                return None
            renewed = move_allowed(run.status, status)
            if renewed:
                run.status = status
                run.deadline = renewed_deadline(received_at, increment)
            beat = Beat(
                received_at=received_at,
                run_id=int(run_text),
                status_sent=status,
                next_report_increment=increment,
                answer=run.status,
                renewed=renewed,
                connection_id=connection_id,
            )
            self._beats.append(beat)
            self._changed.notify_all()
            return beat

    def _reap_every(self, period: float) -> None:
        while not self._stopping.wait(period):
            self.reap()


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"status must be one of {''.join(STATUSES)}, not {status!r}")


class _Listener(ThreadingHTTPServer):
    """The listening socket of one `start()`, with its open connections."""

    # Handler threads are joined by server_close() on every supported Python
    # (before 3.11 daemon threads were not tracked).
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: JobmonServer) -> None:
        self.owner = owner
        self._open_lock = threading.Lock()
        self._open: dict[socket.socket, int] = {}
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer's own server_bind looks up the host name (DNS); not needed.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]

    def process_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        # Registered here, in the accept loop, so that once shutdown() has returned
        # every accepted connection is known to drop_connections().
        with self._open_lock:
            self._open[cast(socket.socket, request)] = self.owner._next_connection_id()
        super().process_request(request, client_address)

    def shutdown_request(
        self, request: socket.socket | tuple[bytes, socket.socket]
    ) -> None:
        with self._open_lock:
            self._open.pop(cast(socket.socket, request), None)
        super().shutdown_request(request)

    def connection_id(self, connection: socket.socket) -> int:
        """The number given to accepted `connection`."""
        with self._open_lock:
            return self._open[connection]

    def drop_connections(self) -> None:
        """Shut down every open connection, in both directions."""
        with self._open_lock:
            for connection in self._open:
                # The peer may have closed it already.
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A peer that resets or a stop() that drops the connection is not a bug.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """One connection: reads requests and answers them as the Jobmon server would."""

    protocol_version = "HTTP/1.1"
    server_version = "jobmon-fixture"
    sys_version = ""
    wbufsize = -1  # buffered: headers and body leave in one send per response

    def setup(self) -> None:
        listener = cast(_Listener, self.server)
        self.owner = listener.owner
        self.connection_id = listener.connection_id(self.request)
        super().setup()
        self.connection.settimeout(self.owner.idle_timeout)  # the idle drop

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing: tests read `JobmonServer.beats` instead."""

    def do_POST(self) -> None:
        """Answer a request for the heartbeat route."""
        body = self._read_body()
        if body is None:
            return
        run_text = self.owner._match_route(self.path)
        if run_text is None:
            self._reply(404, {"error": f"no route {self.path}"})
            return
        media_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            self._reply(500, {"error": "the body must be application/json"})
            return
        beat = _parse_beat(body)
        if beat is None:
            self._reply(
                400, {"error": "need JSON {status: str, next_report_increment: number}"}
            )
            return
        logged = self.owner._log_heartbeat(run_text, *beat, self.connection_id)
        if logged is None:
            self._reply(500, {"error": f"no workflow run {run_text}"})
            return
        self._reply(200, {"status": logged.answer})

    def _wrong_method(self) -> None:
        if self._read_body() is None:
            return
        if self.owner._match_route(self.path) is None:
            self._reply(404, {"error": f"no route {self.path}"})
        else:
            self._reply(500, {"error": f"method {self.command} not allowed"})

    do_GET = do_PUT = do_PATCH = do_DELETE = _wrong_method

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering 400 to one it cannot frame."""
        length_text = self.headers.get("Content-Length", "0")
        if "Transfer-Encoding" in self.headers or not length_text.isdigit():
            self.close_connection = True
            self._reply(400, {"error": "need a Content-Length body"})
            return None
        length = int(length_text)
        if length > _MAX_BODY:
            self.close_connection = True
            self._reply(400, {"error": f"body over {_MAX_BODY} bytes"})
            return None
        return self.rfile.read(length)

    def _reply(self, code: int, payload: Mapping[str, str]) -> None:
        body = (json.dumps(payload, separators=(",", ":")) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.owner.keep_alive and not self.close_connection:
            self.send_header("Connection", "keep-alive")
        else:
            self.send_header("Connection", "close")  # also sets close_connection
        self.end_headers()
        self.wfile.write(body)


def _parse_beat(body: bytes) -> tuple[str, float] | None:
    """(status, next_report_increment) from a beat's body, or None if malformed."""
    try:
        fields = json.loads(body)
    except ValueError:  # includes UnicodeDecodeError
        return None
    if not isinstance(fields, dict):
        return None
    status = fields.get("status")
    increment = fields.get("next_report_increment")
    if (
        not isinstance(status, str)
        or not isinstance(increment, (int, float))
        or isinstance(increment, bool)
        or not math.isfinite(increment)
    ):
        return None
    return status, float(increment)
