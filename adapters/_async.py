"""The async driver: runs one HeartbeatMachine over an async gateway (asyncio or trio).

Strategy: the driver is a short loop with no protocol state of its own. It reads
the clock, feeds the machine, carries out the actions, and sleeps until the
machine's `next_deadline`. A heartbeat request runs as its own task in the
driver's task group, so the loop keeps its schedule while a request is out; when
an input changes the machine's schedule, the loop's sleep is moved to the new
deadline instead of waking it (one wakeup per beat, no polling).

Rules:
- Written on anyio, so one driver serves asyncio and trio; times come from the
  framework's clock (`anyio.current_time`, i.e. `loop.time()` or
  `trio.current_time()`) unless a clock is injected, and sleeps are computed as
  "framework now + (machine deadline - clock now)", so an injected clock need only
  run at the same rate.
- A request is cancelled at its `SendHeartbeat.deadline`; the machine itself
  gives up on it at that moment (through `tick`), so the driver does nothing then.
- No fault of the network, the server, the gateway or an event callback escapes
  the loop: each becomes a failure input to the machine, or is logged.
- Cancellation is safe anywhere: every piece of state lives in the machine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

import anyio

from sansbeat import Action, HeartbeatMachine, SendHeartbeat

from ._gateway import AsyncGateway, answered_status, retry_after_of

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
        self._clock: Callable[[], float] = clock or anyio.current_time
        self._task_group: anyio.abc.TaskGroup | None = None
        self._sleep: anyio.CancelScope | None = None
        # Beats the machine asked for while no loop was running to send them.
        self._unsent: list[SendHeartbeat] = []
        self._gateway_lock = anyio.Lock()

    @property
    def machine(self) -> HeartbeatMachine:
        """The machine being driven (read its queries and stats freely)."""
        return self._machine

    def adopt_unsent(self, send: SendHeartbeat) -> None:
        """Carry out `send`, a beat the machine asked for before this driver ran."""
        self._apply((send,))

    def set_status(self, status: str) -> None:
        """Report `status` from now on; it goes out at once (or when the beat in
        flight ends). Raises `UsageError` for an empty or non-str status."""
        self._apply(self._machine.set_status(status, self._clock()))

    def reset_timer(self) -> None:
        """Count a heartbeat that was logged by other means just now."""
        self._apply(self._machine.reset_timer(self._clock()))

    def stop(self) -> None:
        """Stop for good: the machine sends nothing more and `run` returns."""
        self._machine.stop(self._clock())
        if self._task_group is not None:
            self._task_group.cancel_scope.cancel()

    async def run(self, stop_event: StopEvent | None = None) -> None:
        """Heartbeat until `stop_event` is set, `stop()` is called, or cancelled.

        Returns promptly when stopped, leaving no task or connection behind; a
        request in flight is cancelled. Network and server faults never raise.
        """
        if self._task_group is not None:
            raise RuntimeError("this driver is already running")
        async with anyio.create_task_group() as task_group:
            self._task_group = task_group
            try:
                if stop_event is not None:
                    task_group.start_soon(self._cancel_when_set, stop_event)
                unsent, self._unsent = self._unsent, []
                for send in unsent:
                    task_group.start_soon(self._exchange, send)
                while not self._machine.stopped:
                    self._apply(self._machine.tick(self._clock()))
                    with anyio.CancelScope() as sleep:
                        self._sleep = sleep
                        self._reschedule()
                        await anyio.sleep_forever()
            finally:
                self._sleep = None
                self._task_group = None
                task_group.cancel_scope.cancel()
        # A request cancelled with the loop got no answer through no fault of the
        # server: free the machine's slot, so a later tick or run beats at once.
        in_flight = self._machine.in_flight
        if in_flight is not None:
            # Abandon never sends, but it may report a lapse that time caused.
            for event in self._machine.abandon(in_flight, self._clock()):
                notify(self._on_event, event)

    async def _cancel_when_set(self, stop_event: StopEvent) -> None:
        await stop_event.wait()
        if self._task_group is not None:
            self._task_group.cancel_scope.cancel()

    def _framework_time(self, machine_time: float) -> float:
        """`machine_time` (on `clock`) as an absolute time on the framework clock."""
        if self._clock is anyio.current_time:
            return machine_time
        return anyio.current_time() + (machine_time - self._clock())

    def _reschedule(self) -> None:
        """Move the loop's sleep to the machine's next deadline."""
        if self._sleep is None:
            return
        deadline = self._machine.next_deadline
        if deadline is None:
            self._sleep.cancel()
        else:
            self._sleep.deadline = self._framework_time(deadline)

    def _apply(self, actions: Sequence[Action]) -> None:
        for action in actions:
            if isinstance(action, SendHeartbeat):
                if self._task_group is None:
                    self._unsent.append(action)
                else:
                    self._task_group.start_soon(self._exchange, action)
            else:
                notify(self._on_event, action)
        self._reschedule()

    async def _exchange(self, send: SendHeartbeat) -> None:
        """Carry out one beat and report its outcome to the machine."""
        try:
            with anyio.move_on_at(self._framework_time(send.deadline)) as deadline:
                # A request cancelled at its deadline may still be closing its
                # connection when the retry starts: one gateway call at a time,
                # so the server never sees two requests of ours overlap.
                async with self._gateway_lock:
                    answer = await self._gateway.log_heartbeat(
                        send.status, send.next_report_increment
                    )
            if deadline.cancelled_caught:
                return  # the machine gives up at the deadline by itself
            status = answered_status(answer)
        except Exception as error:
            logger.warning("sansbeat: heartbeat %d failed: %s", send.seq, error)
            actions = self._machine.handle_failure(
                send.seq, self._clock(), retry_after_of(error)
            )
        else:
            actions = self._machine.handle_response(send.seq, status, self._clock())
        self._apply(actions)
