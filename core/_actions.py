"""What the machine asks its driver to do or to know.

Strategy: every input to `HeartbeatMachine` returns a tuple of these actions, in the
order they happened. They are immutable values with keyword-only construction; the
union `Action` lets a driver `match` them and a type checker prove the match is
exhaustive. All times are absolute seconds on the driver's monotonic clock.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Action", "LeaseLapsed", "LeaseRestored", "SendHeartbeat", "StatusChanged"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SendHeartbeat:
    """Send one heartbeat now, and report its outcome by `deadline`.

    Attributes:
        seq: the sequence number to quote in `handle_response` / `handle_failure`.
        status: the status to report.
        next_report_increment: seconds the server should wait for the next beat.
        deadline: absolute time (seconds) by which the request must have an answer;
            at that time the machine gives up on it and the driver should abort it.
    """

    seq: int
    status: str
    next_report_increment: float
    deadline: float


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusChanged:
    """The server signalled a status different from the one sent; it is now current.

    Attributes:
        old: the status held locally before the signal.
        new: the status the server holds, now `current_status`.
    """

    old: str
    new: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseLapsed:
    """The lease passed its deadline with no renewal: the server may reap the run.

    Attributes:
        deadline: absolute time (seconds) at which the lease ran out.
    """

    deadline: float


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseRestored:
    """A renewal arrived after a lapse: the lease is live again.

    Attributes:
        lapsed_at: absolute time (seconds) at which the lease had run out.
        deadline: absolute time (seconds) of the new lease deadline.
    """

    lapsed_at: float
    deadline: float


Action = SendHeartbeat | StatusChanged | LeaseLapsed | LeaseRestored

# The machine builds one SendHeartbeat per beat. A frozen dataclass's __init__ sets
# each field through object.__setattr__, which is most of a beat cycle's cost
# (about 1 us of 2.5 us on CPython 3.11); setting the slots through their
# descriptors builds the identical value in under half the time.
_new_object = object.__new__
_set_seq = SendHeartbeat.__dict__["seq"].__set__
_set_status = SendHeartbeat.__dict__["status"].__set__
_set_increment = SendHeartbeat.__dict__["next_report_increment"].__set__
_set_deadline = SendHeartbeat.__dict__["deadline"].__set__


def new_send_heartbeat(
    seq: int, status: str, next_report_increment: float, deadline: float
) -> SendHeartbeat:
    """Build `SendHeartbeat(seq=..., ...)` quickly (the machine's own constructor)."""
    send: SendHeartbeat = _new_object(SendHeartbeat)
    _set_seq(send, seq)
    _set_status(send, status)
    _set_increment(send, next_report_increment)
    _set_deadline(send, deadline)
    return send
