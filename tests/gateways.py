"""In-memory gateways for driver tests: a scripted server without sockets.

A `Script` decides each exchange from the time it arrives and the status sent:
answer a status after a delay, fail after a delay, or never answer. Async
gateways wait on the framework clock (virtual in the tests); the sync gateway
waits on real time, interruptibly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from sansbeat.adapters import HeartbeatAnswer
from sansbeat.adapters._gateway import HasStatus, InterruptibleGateway


@dataclass(frozen=True)
class Answer:
    """Answer `status` (None: echo the status sent) after `delay` seconds."""

    status: str | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class Fail:
    """Raise `error` after `delay` seconds."""

    error: Exception
    delay: float = 0.0


@dataclass(frozen=True)
class Hang:
    """Never answer."""


Outcome = Answer | Fail | Hang
#: (arrival time in seconds since the gateway started, status sent) -> outcome
Script = Callable[[float, str], Outcome]


def echo(at: float, status: str) -> Outcome:
    """A healthy server: every beat is renewed at once."""
    return Answer()


@dataclass
class Call:
    """One exchange the gateway saw (`at`: seconds since the gateway started)."""

    at: float
    status: str
    next_report_increment: float
    finished: bool = False
    cancelled: bool = True


@dataclass
class AsyncScriptedGateway:
    """An async gateway playing `script` on the framework's clock."""

    script: Script = echo
    calls: list[Call] = field(default_factory=list)
    start: float | None = None

    def start_offset(self) -> float:
        """The framework time (seconds) that call times are measured from."""
        assert self.start is not None
        return self.start

    async def log_heartbeat(self, status: str, next_report_increment: float) -> object:
        now = anyio.current_time()
        if self.start is None:
            self.start = now
        call = Call(now - self.start, status, next_report_increment)
        self.calls.append(call)
        outcome = self.script(call.at, status)
        try:
            if isinstance(outcome, Hang):
                await anyio.sleep_forever()
            assert not isinstance(outcome, Hang)
            await anyio.sleep(outcome.delay)
            call.cancelled = False
        finally:
            call.finished = True
        if isinstance(outcome, Fail):
            raise outcome.error
        return HeartbeatAnswer(outcome.status or status)


class SyncScriptedGateway(InterruptibleGateway):
    """A blocking gateway playing `script` in real time; `interrupt` ends waits."""

    def __init__(self, script: Script = echo) -> None:
        self.script = script
        self.calls: list[Call] = []
        self.start = time.monotonic()
        self.changed = threading.Condition()
        self._interrupted = threading.Event()
        self.timeouts: list[float | None] = []

    def log_heartbeat_sync(
        self, status: str, next_report_increment: float, *, timeout: float | None = None
    ) -> HasStatus:
        call = Call(time.monotonic() - self.start, status, next_report_increment)
        with self.changed:
            self.calls.append(call)
            self.timeouts.append(timeout)
            self.changed.notify_all()
        outcome = self.script(call.at, status)
        wait = None if isinstance(outcome, Hang) else outcome.delay
        if timeout is not None and (wait is None or wait > timeout):
            wait = timeout
        interrupted = self._interrupted.wait(wait)
        call.finished = True
        if interrupted:
            raise ConnectionAbortedError("interrupted")
        if isinstance(outcome, Hang) or (
            timeout is not None and outcome.delay > timeout
        ):
            raise TimeoutError("no answer in time")
        call.cancelled = False
        if isinstance(outcome, Fail):
            raise outcome.error
        return HeartbeatAnswer(outcome.status or status)

    def interrupt(self) -> None:
        self._interrupted.set()

    def wait_for_calls(self, count: int, timeout: float = 5.0) -> bool:
        """Block until `count` calls were seen (at most `timeout` seconds)."""
        with self.changed:
            return self.changed.wait_for(lambda: len(self.calls) >= count, timeout)
