"""What a driver needs from a gateway, and how a gateway reports failure.

Strategy: a gateway performs one heartbeat exchange and nothing else; every
decision about when to send, retry or give up stays in the machine. The shapes are
Jobmon's `ServerGateway`'s: `log_heartbeat(status, next_report_increment)` (async)
and `log_heartbeat_sync(...)`, each returning an object with `.status`. So Jobmon's
own gateway drops in, and so does sansbeat's `HttpGateway`.

Rules: a gateway signals failure by raising. `HeartbeatRequestFailed` carries what
the machine can use (a server's Retry-After); any other exception is a failure with
no hint. The driver enforces the request deadline by cancelling (async) or by the
gateway's own timeout (sync).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Protocol

from sansbeat import SansbeatError, SendHeartbeat

__all__ = [
    "AsyncGateway",
    "HasStatus",
    "HeartbeatAnswer",
    "HeartbeatRequestFailed",
    "InterruptibleGateway",
    "SyncGateway",
    "answered_status",
    "log_heartbeat_sync_by",
    "retry_after_of",
]


class HasStatus(Protocol):
    """Anything with the `status` the server holds (a str)."""

    @property
    def status(self) -> str: ...


class AsyncGateway(Protocol):
    """A gateway usable by the asyncio and trio drivers."""

    async def log_heartbeat(self, status: str, next_report_increment: float) -> object:
        """Log one heartbeat; return an object whose `.status` is the server's."""


class SyncGateway(Protocol):
    """A gateway usable by the thread driver."""

    def log_heartbeat_sync(self, status: str, next_report_increment: float) -> object:
        """Log one heartbeat; return an object whose `.status` is the server's."""


@dataclass(frozen=True, slots=True)
class HeartbeatAnswer:
    """The server's answer to one heartbeat.

    Attributes:
        status: the status the server holds for the run.
    """

    status: str


class HeartbeatRequestFailed(SansbeatError):
    """One heartbeat exchange failed without a usable answer.

    Attributes:
        reason: what went wrong, as a short label ("http_status", "timeout",
            "connect", "closed_early", "malformed_body", "body_too_large",
            "protocol_error", ...).
        http_status: the HTTP status code when the server answered with one.
        retry_after: seconds the server asked us to wait (Retry-After), if any.
    """

    def __init__(
        self,
        reason: str,
        detail: str,
        *,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.reason = reason
        self.detail = detail
        self.http_status = http_status
        self.retry_after = retry_after
        super().__init__(f"{reason}: {detail}")


def retry_after_of(error: BaseException) -> float | None:
    """The Retry-After (seconds) a failure carries, or None."""
    return error.retry_after if isinstance(error, HeartbeatRequestFailed) else None


def answered_status(answer: object) -> str:
    """The answer's `.status`, or raise `HeartbeatRequestFailed` if it has none.

    A foreign gateway may hand back anything; the machine takes only a non-empty
    str, and anything else is a malformed answer, which is a failed exchange.
    """
    status = getattr(answer, "status", None)
    if not isinstance(status, str) or not status:
        raise HeartbeatRequestFailed(
            "malformed_answer", f"gateway answer has no status string: {answer!r}"
        )
    return status


class InterruptibleGateway(abc.ABC):
    """A sync gateway the thread driver can bound and interrupt (`HttpGateway`).

    A foreign gateway's blocking call runs for as long as its own timeouts allow;
    one of these is given the request's remaining time, and `interrupt()` makes a
    call blocked in another thread return at once, so stopping is prompt.
    """

    @abc.abstractmethod
    def log_heartbeat_sync(
        self, status: str, next_report_increment: float, *, timeout: float | None = None
    ) -> object:
        """Perform one exchange, taking at most `timeout` seconds."""

    @abc.abstractmethod
    def interrupt(self) -> None:
        """Make a call blocked in another thread fail now; thread-safe."""


def log_heartbeat_sync_by(
    gateway: SyncGateway | InterruptibleGateway, send: SendHeartbeat, timeout: float
) -> object:
    """Carry out `send` on a blocking gateway, bounded by `timeout` seconds when
    the gateway takes a bound (an `InterruptibleGateway`); returns its answer."""
    if isinstance(gateway, InterruptibleGateway):
        return gateway.log_heartbeat_sync(
            send.status, send.next_report_increment, timeout=timeout
        )
    return gateway.log_heartbeat_sync(send.status, send.next_report_increment)
