"""The async driver: runs one HeartbeatMachine over an async gateway (asyncio or trio).

Strategy: the driver is the group driver (`HeartbeatGroup`) holding one lease,
the caller's machine. So one scheduler serves one lease and ten thousand: it
sleeps until the machine's `next_deadline` (one wakeup per beat, no polling),
moves that sleep when an input changes the schedule, makes a gateway call that
answers at once inline (no task per beat), and runs a call that suspends
alongside the timer, so the schedule holds while a request is out.

Rules:
- Written on anyio, so one driver serves asyncio and trio; times come from the
  framework's clock (`loop.time()` or `trio.current_time()`) unless a clock is
  injected, which need only run at the framework clock's rate.
- A request is cancelled at its `SendHeartbeat.deadline`, when the machine
  itself gives up on it (through `tick`); the next call waits until a cancelled
  one has unwound, so the server never sees two of ours at once.
- No fault of the network, the server, the gateway or an event callback escapes
  the loop: each becomes a failure input to the machine, or is logged.
- Cancellation is safe anywhere: every piece of state lives in the machine, and a
  request cut off by stopping is abandoned in it (reporting a lapse if one is due).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import anyio

from sansbeat import Action, HeartbeatMachine, SendHeartbeat

from ._gateway import AsyncGateway

if TYPE_CHECKING:
    from .group import LeaseHandle

__all__ = ["AsyncHeartbeatDriver", "EventCallback", "StopEvent", "notify"]

logger = logging.getLogger("sansbeat")

#: Called with each `StatusChanged`, `LeaseLapsed` and `LeaseRestored` as it happens.
EventCallback = Callable[[Action], None]


def notify(on_event: EventCallback | None, event: Action) -> None:
    """Call `on_event(event)`; an exception in the application's callback is
    logged, never allowed to stop a heartbeat loop."""
    if on_event is None:
        return
    try:
        on_event(event)
    except Exception:
        logger.exception("sansbeat: the on_event callback raised")


class StopEvent(Protocol):
    """An event to wait on: `asyncio.Event`, `trio.Event` or `anyio.Event`."""

    async def wait(self) -> object: ...


class AsyncHeartbeatDriver:
    """Heartbeats `machine` over `gateway` until stopped; for asyncio and trio.

    Args:
        machine: the machine to drive, built on the same clock as `clock`.
        gateway: performs one exchange (`await log_heartbeat(status, increment)`).
        on_event: called with every StatusChanged, LeaseLapsed, LeaseRestored.
        clock: seconds on a monotonic clock; default the framework's own.

    All methods must be called from the event loop's thread.
    """

    def __init__(
        self,
        machine: HeartbeatMachine,
        gateway: AsyncGateway,
        *,
        on_event: EventCallback | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._machine = machine
        self._gateway = gateway
        self._on_event = on_event
        self._given_clock = clock
        self._clock: Callable[[], float] = clock or anyio.current_time
        # The lease while `run` runs, and what ends the run early.
        self._handle: LeaseHandle | None = None
        self._done: anyio.Event | None = None
        # Beats the machine asked for while no loop was running to send them.
        self._unsent: list[SendHeartbeat] = []

    @property
    def machine(self) -> HeartbeatMachine:
        """The machine being driven (read its queries and stats freely)."""
        return self._machine

    def adopt_unsent(self, send: SendHeartbeat) -> None:
        """Carry out `send`, a beat the machine asked for before this driver ran."""
        handle = self._handle
        group = None if handle is None else handle._group
        if handle is None or group is None:
            self._unsent.append(send)
        else:
            group._apply(handle, (send,))

    def set_status(self, status: str) -> None:
        """Report `status` from now on; it goes out at once (or when the beat in
        flight ends). Raises `UsageError` for an empty or non-str status."""
        handle = self._handle
        if handle is None:
            self._keep(self._machine.set_status(status, self._clock()))
        else:
            handle.set_status(status)

    def reset_timer(self) -> None:
        """Count a heartbeat that was logged by other means just now."""
        handle = self._handle
        if handle is None:
            self._keep(self._machine.reset_timer(self._clock()))
        else:
            handle.reset_timer()

    def stop(self) -> None:
        """Stop for good: the machine sends nothing more and `run` returns."""
        handle = self._handle
        if handle is not None:
            handle.stop()
        elif not self._machine.stopped:
            self._machine.stop(self._clock())
        if self._done is not None:
            self._done.set()

    async def run(self, stop_event: StopEvent | None = None) -> None:
        """Heartbeat until `stop_event` is set, `stop()` is called, or cancelled.

        Returns promptly when stopped, leaving no task or connection behind; a
        request in flight is cancelled. Network and server faults never raise.
        """
        if self._done is not None:
            raise RuntimeError("this driver is already running")
        if self._machine.stopped:
            return
        from .group import HeartbeatGroup  # the group imports this module

        self._done = done = anyio.Event()
        on_event = self._on_event
        try:
            async with HeartbeatGroup(
                max_concurrent_requests=1,
                on_event=None if on_event is None else _forward(on_event),
                clock=self._given_clock,
            ) as group:
                handle = self._handle = group._adopt(self._machine, self._gateway)
                unsent, self._unsent = self._unsent, []
                group._apply(handle, unsent)
                if stop_event is None:
                    await done.wait()
                else:
                    async with anyio.create_task_group() as waiting:
                        waiting.start_soon(_set_when_set, stop_event, done)
                        await done.wait()
                        waiting.cancel_scope.cancel()
        finally:
            self._handle = None
            self._done = None

    def _keep(self, actions: Sequence[Action]) -> None:
        """With no loop running: hold beats for the next run, report events."""
        for action in actions:
            if isinstance(action, SendHeartbeat):
                self._unsent.append(action)
            else:
                notify(self._on_event, action)


def _forward(on_event: EventCallback) -> Callable[[LeaseHandle, Action], None]:
    """The group's `(handle, event)` callback as the driver's `(event)` one (the
    group logs what the callback raises)."""
    return lambda _handle, event: on_event(event)


async def _set_when_set(stop_event: StopEvent, done: anyio.Event) -> None:
    await stop_event.wait()
    done.set()
