"""HttpGateway: the heartbeat exchange over HTTP/1.1, for every driver.

Strategy: all of HTTP lives in the pure codec (`sansbeat._http`); this module only
moves its bytes. One gateway holds at most one connection and reuses it while
the server keeps it alive (gunicorn does, for a few seconds), and opens a new one
when the server closes after each answer (Werkzeug does) or dropped it while idle.
The same gateway serves the async drivers (`await log_heartbeat`, on asyncio or
trio through anyio streams) and the thread driver (`log_heartbeat_sync`, plain
sockets); use one flavour per gateway.

Rules:
- One request at a time on a connection; never pipelined.
- A reused connection that turns out closed before any byte of the answer is
  replaced and the heartbeat sent once more on a fresh one, within the same
  deadline; that is connection upkeep, not a retry, which is the machine's call.
- Every failure raises `HeartbeatRequestFailed` with a reason (the codec's, or
  "connect", "network", "timeout", "tls") and the server's Retry-After; the
  connection is then closed, so nothing of a broken exchange leaks into the next.
- https:// verifies certificates and host names by default
  (`ssl.create_default_context()`).
- Cancellation (async) and `interrupt()` (sync) close the connection at once.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from types import TracebackType

import anyio
import anyio.abc

from sansbeat import (
    DEFAULT_MAX_BODY_BYTES,
    Answered,
    Failed,
    HeartbeatConnection,
    HeartbeatEndpoint,
    Outcome,
    SendHeartbeat,
)

from ._gateway import HeartbeatAnswer, HeartbeatRequestFailed, InterruptibleGateway

__all__ = ["HttpGateway"]

_READ_SIZE = 65536


def _raise_failure(outcome: Failed) -> None:
    raise HeartbeatRequestFailed(
        outcome.reason,
        outcome.detail,
        http_status=outcome.http_status,
        retry_after=outcome.retry_after,
    )


class HttpGateway(InterruptibleGateway):
    """Logs heartbeats for one workflow run to a Jobmon server over HTTP/1.1.

    Args:
        base_url: the server's base URL, with any route prefix, e.g.
            "http://127.0.0.1:5000/api/v3" or "https://jobmon.example/api/v3".
        workflow_run_id: the run whose heartbeats these are.
        headers: extra (name, value) pairs for every request, e.g. auth.
        timeout: seconds one exchange may take when the caller gives no
            deadline (the drivers always give one).
        ssl_context: for https://; default verifies certificates.
        max_body_bytes: the largest answer body read (bytes).

    Raises:
        UsageError: an argument breaks its rule; the message names it.
    """

    def __init__(
        self,
        base_url: str,
        workflow_run_id: int,
        *,
        headers: Iterable[tuple[str, str]] = (),
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self._endpoint = HeartbeatEndpoint.from_url(
            base_url,
            run_id=workflow_run_id,
            extra_headers=headers,
            max_body_bytes=max_body_bytes,
        )
        self._timeout = timeout
        self._ssl_context: ssl.SSLContext | None = None
        if self._endpoint.scheme == "https":
            self._ssl_context = ssl_context or ssl.create_default_context()
        self._seq = 0
        # Sync flavour: the socket is shared with interrupt(), under the lock.
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._sock_codec: HeartbeatConnection | None = None
        # Async flavour.
        self._stream: anyio.abc.ByteStream | None = None
        self._stream_codec: HeartbeatConnection | None = None

    @property
    def endpoint(self) -> HeartbeatEndpoint:
        """Where the heartbeats go."""
        return self._endpoint

    def _send(self, status: str, next_report_increment: float) -> SendHeartbeat:
        self._seq += 1
        return SendHeartbeat(
            seq=self._seq,
            status=status,
            next_report_increment=next_report_increment,
            deadline=0.0,  # the caller enforces the deadline
        )

    # ------------------------------------------------------------- async flavour

    async def log_heartbeat(
        self, status: str, next_report_increment: float
    ) -> HeartbeatAnswer:
        """Log one heartbeat; returns the status the server holds.

        Raises:
            HeartbeatRequestFailed: no usable answer (reason, Retry-After).
            UsageError: a bad status or increment.
        """
        send = self._send(status, next_report_increment)
        # A bare cancel scope with a deadline: what anyio.fail_after sets up, and
        # cheaper. Only this scope's own deadline is caught here; a cancellation
        # from outside passes through it.
        deadline = anyio.current_time() + self._timeout
        with anyio.CancelScope(deadline=deadline) as scope:
            try:
                reused = self._stream is not None
                outcome = await self._exchange_async(send)
                if (
                    reused
                    and isinstance(outcome, Failed)
                    and outcome.reason == "closed_before_response"
                ):
                    await self.aclose()
                    outcome = await self._exchange_async(send)
            except BaseException:
                await self.aclose()
                raise
        if scope.cancelled_caught:  # the connection was closed on the way out
            raise HeartbeatRequestFailed("timeout", "no answer in time")
        if not outcome.keep_alive:
            await self.aclose()
        if isinstance(outcome, Failed):
            _raise_failure(outcome)
        assert isinstance(outcome, Answered)
        return HeartbeatAnswer(outcome.status)

    async def _exchange_async(self, send: SendHeartbeat) -> Outcome:
        if self._stream is None or self._stream_codec is None:
            await self._connect_async()
        stream, codec = self._stream, self._stream_codec
        assert stream is not None
        assert codec is not None
        try:
            await stream.send(codec.request_bytes(send))
            while True:
                try:
                    data = await stream.receive(_READ_SIZE)
                except anyio.EndOfStream:
                    data = b""
                outcome = codec.receive_data(data)
                if outcome is not None:
                    return outcome
        except (
            OSError,
            anyio.BrokenResourceError,
            anyio.ClosedResourceError,
            ssl.SSLError,
        ) as error:
            await self.aclose()
            raise HeartbeatRequestFailed("network", str(error) or repr(error)) from None

    async def _connect_async(self) -> None:
        endpoint = self._endpoint
        try:
            if self._ssl_context is None:
                self._stream = await anyio.connect_tcp(endpoint.host, endpoint.port)
            else:
                self._stream = await anyio.connect_tcp(
                    endpoint.host,
                    endpoint.port,
                    ssl_context=self._ssl_context,
                    tls_hostname=endpoint.host,
                )
        except ssl.SSLError as error:
            raise HeartbeatRequestFailed("tls", str(error)) from None
        except OSError as error:
            raise HeartbeatRequestFailed("connect", str(error) or repr(error)) from None
        self._stream_codec = HeartbeatConnection(endpoint)

    async def aclose(self) -> None:
        """Close the async connection, if any (at once: no graceful goodbye)."""
        stream, self._stream, self._stream_codec = self._stream, None, None
        if stream is not None:
            await anyio.aclose_forcefully(stream)

    async def __aenter__(self) -> HttpGateway:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -------------------------------------------------------------- sync flavour

    def log_heartbeat_sync(
        self, status: str, next_report_increment: float, *, timeout: float | None = None
    ) -> HeartbeatAnswer:
        """Log one heartbeat, blocking at most `timeout` seconds (default: the
        gateway's); returns the status the server holds.

        Raises:
            HeartbeatRequestFailed: no usable answer (reason, Retry-After).
            UsageError: a bad status or increment.
        """
        send = self._send(status, next_report_increment)
        budget = self._timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        if budget <= 0:
            raise HeartbeatRequestFailed("timeout", "no time left for the request")
        try:
            reused = self._sock is not None
            outcome = self._exchange_sync(send, deadline)
            if (
                reused
                and isinstance(outcome, Failed)
                and outcome.reason == "closed_before_response"
            ):
                self.close()
                outcome = self._exchange_sync(send, deadline)
        except BaseException:
            self.close()
            raise
        if not outcome.keep_alive:
            self.close()
        if isinstance(outcome, Failed):
            _raise_failure(outcome)
        assert isinstance(outcome, Answered)
        return HeartbeatAnswer(outcome.status)

    def _exchange_sync(self, send: SendHeartbeat, deadline: float) -> Outcome:
        """One exchange that ends by `deadline` (seconds, `time.monotonic()`)."""

        def remaining() -> float:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            return left

        try:
            if self._sock is None or self._sock_codec is None:
                self._connect_sync(remaining())
            sock, codec = self._sock, self._sock_codec
            assert sock is not None
            assert codec is not None
            # A socket timeout bounds each call, not the exchange: a server that
            # trickles bytes would outlive the deadline, so re-arm it every time.
            sock.settimeout(remaining())
            sock.sendall(codec.request_bytes(send))
            while True:
                sock.settimeout(remaining())
                outcome = codec.receive_data(sock.recv(_READ_SIZE))
                if outcome is not None:
                    return outcome
        except TimeoutError:
            raise HeartbeatRequestFailed("timeout", "no answer in time") from None
        except ssl.SSLError as error:
            raise HeartbeatRequestFailed("tls", str(error)) from None
        except OSError as error:
            raise HeartbeatRequestFailed("network", str(error) or repr(error)) from None

    def _connect_sync(self, timeout: float) -> None:
        endpoint = self._endpoint
        try:
            sock = socket.create_connection((endpoint.host, endpoint.port), timeout)
        except TimeoutError:
            raise HeartbeatRequestFailed("timeout", "connect timed out") from None
        except OSError as error:
            raise HeartbeatRequestFailed("connect", str(error) or repr(error)) from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._ssl_context is not None:
                sock = self._ssl_context.wrap_socket(
                    sock, server_hostname=endpoint.host
                )
        except ssl.SSLError as error:
            sock.close()
            raise HeartbeatRequestFailed("tls", str(error)) from None
        except BaseException:
            sock.close()
            raise
        with self._lock:
            self._sock = sock
            self._sock_codec = HeartbeatConnection(endpoint)

    def interrupt(self) -> None:
        """Make a `log_heartbeat_sync` blocked in another thread fail at once."""
        with self._lock:
            if self._sock is not None:
                with contextlib.suppress(OSError):  # the peer may have closed it
                    self._sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Close the sync connection, if any."""
        with self._lock:
            sock, self._sock, self._sock_codec = self._sock, None, None
        if sock is not None:
            sock.close()

    def __enter__(self) -> HttpGateway:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
