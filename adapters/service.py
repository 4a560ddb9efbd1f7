"""HeartbeatService: Jobmon's API, carried by sansbeat's machine and drivers.

Strategy: the seed's `HeartbeatService` keeps its names and meanings, so a Jobmon
user switches by changing an import. Underneath, every decision is the machine's:
the service only reads the clock, hands inputs to the machine, and lets a driver
(asyncio or trio through `run_background`, a thread through
`run_background_sync`) or the caller (`tick`, `tick_sync`) carry out the beats.

Rules, and where they differ from the seed:
- Timing runs on `clock` (monotonic, default `time.monotonic`); only
  `last_heartbeat_time` is a wall-clock timestamp, as in the seed.
- A failure never stops `run_background`; `tick()` still raises, as in the seed,
  after telling the machine.
- `set_status` during a beat in flight is never lost: the beat's answer cannot
  overwrite it and the new status goes out as soon as that beat ends.
- The application learns of each status change and lapse as it happens through
  `on_event`, besides polling `current_status`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from sansbeat import Action, HeartbeatMachine, SendHeartbeat, StatusChanged

from ._async import AsyncHeartbeatDriver, EventCallback, StopEvent, notify
from ._gateway import answered_status, log_heartbeat_sync_by, retry_after_of
from .sync import SyncHeartbeatDriver

__all__ = ["HeartbeatService", "StateUpdate"]


@dataclass(frozen=True, slots=True)
class StateUpdate:
    """What one `tick` learnt, in the shape of Jobmon's StateUpdate.

    Attributes:
        workflow_run_status: the new status the server signalled, or None.
    """

    workflow_run_status: str | None = None

    def __bool__(self) -> bool:
        """False when nothing changed, like Jobmon's empty update."""
        return self.workflow_run_status is not None


def _running_framework_clock() -> Callable[[], float]:
    """The running event loop's clock (through anyio), or `time.monotonic`."""
    try:
        anyio.current_time()
    except RuntimeError:  # not inside asyncio or trio
        return time.monotonic
    return anyio.current_time


class HeartbeatService:
    """Background heartbeat management for one workflow run (Jobmon's API).

    Args:
        gateway: has `async log_heartbeat(status, next_report_increment)` and/or
            `log_heartbeat_sync(...)`, each returning an object with `.status`
            (Jobmon's ServerGateway, or sansbeat's HttpGateway).
        interval: seconds between heartbeats.
        report_by_buffer: multiplier; the server expects the next heartbeat
            within `interval * report_by_buffer` seconds.
        initial_status: the workflow run status reported first.
        on_event: called with each StatusChanged, LeaseLapsed and LeaseRestored
            as it happens (in the loop's thread).
        clock: monotonic seconds for every timing decision. By default the
            running framework's clock when made inside asyncio or trio (so
            trio's MockClock gives virtual time), else `time.monotonic`.
        wall_clock: seconds since the epoch, for `last_heartbeat_time` only.
        lease_margin: seconds the local lease ends early, because Jobmon
            stores deadlines in whole seconds (see `HeartbeatMachine`).
        **policy: further `HeartbeatMachine` options (request_timeout,
            backoff_initial, beat_at_start, rng).
    """

    def __init__(
        self,
        gateway: Any,
        interval: float,
        report_by_buffer: float,
        initial_status: str,
        *,
        on_event: EventCallback | None = None,
        clock: Callable[[], float] | None = None,
        wall_clock: Callable[[], float] = time.time,
        lease_margin: float = 1.0,
        **policy: Any,
    ) -> None:
        clock = clock or _running_framework_clock()
        now = clock()
        self._machine = HeartbeatMachine(
            interval=interval,
            report_by_buffer=report_by_buffer,
            initial_status=initial_status,
            now=now,
            lease_margin=lease_margin,
            **policy,
        )
        self._gateway = gateway
        self._on_event = on_event
        self._clock = clock
        self._wall_offset = wall_clock() - now
        # Re-entrant: an on_event callback may call back into the service.
        self._lock = threading.RLock()
        self._async_driver: AsyncHeartbeatDriver | None = None
        self._sync_driver: SyncHeartbeatDriver | None = None
        # A beat the machine asked for while no driver ran (set_status, a signal
        # answered in tick): the next tick or run_background sends it.
        self._unsent: SendHeartbeat | None = None

    # ---------------------------------------------------------------- the seed's

    @property
    def interval(self) -> float:
        """Heartbeat interval in seconds."""
        return self._machine.interval

    @property
    def current_status(self) -> str:
        """Current status being reported in heartbeats."""
        return self._machine.current_status

    @property
    def last_heartbeat_time(self) -> float:
        """Wall-clock timestamp (seconds since the epoch) of the last renewal's send."""
        return self._machine.last_heartbeat_time + self._wall_offset

    @property
    def next_report_increment(self) -> float:
        """Seconds the server expects the next heartbeat within."""
        return self._machine.next_report_increment

    @property
    def machine(self) -> HeartbeatMachine:
        """The machine underneath: lease deadline, lapse, stats and more."""
        return self._machine

    def set_status(self, status: str) -> None:
        """Report `status` from now on; it goes out at once, never lost."""
        with self._lock:
            if self._sync_driver is not None:
                self._sync_driver.set_status(status)
            elif self._async_driver is not None:
                self._async_driver.set_status(status)
            else:
                self._keep(self._machine.set_status(status, self._clock()))

    def time_since_last_heartbeat(self) -> float:
        """Seconds since the last renewed heartbeat was sent (or since start)."""
        return self._machine.time_since_last_heartbeat(self._clock())

    def is_heartbeat_due(self) -> bool:
        """Whether a heartbeat should be logged now."""
        return self._unsent is not None or self._machine.is_heartbeat_due(self._clock())

    async def tick(self) -> StateUpdate:
        """Log a heartbeat now and return any status change the server signalled.

        Raises:
            Exception: whatever the gateway raised, after the machine was told.
        """
        send = self._take_send()
        try:
            with anyio.fail_after(max(0.0, send.deadline - self._clock())):
                answer = await self._gateway.log_heartbeat(
                    send.status, send.next_report_increment
                )
            status = answered_status(answer)
        except Exception as error:
            self._record_failure(send, error)
            raise
        return self._record_answer(send, status)

    def tick_sync(self) -> StateUpdate:
        """Synchronous `tick`, for code outside an event loop.

        Raises:
            Exception: whatever the gateway raised, after the machine was told.
        """
        send = self._take_send()
        try:
            answer = log_heartbeat_sync_by(
                self._gateway, send, send.deadline - self._clock()
            )
            status = answered_status(answer)
        except Exception as error:
            self._record_failure(send, error)
            raise
        return self._record_answer(send, status)

    async def run_background(self, stop_event: StopEvent) -> None:
        """Log heartbeats on schedule until `stop_event` is set (asyncio or trio).

        Never raises for a network or server fault: failures are retried with
        backoff inside the lease window, and lapses are reported to `on_event`.
        """
        driver = AsyncHeartbeatDriver(
            self._machine, self._gateway, on_event=self._on_event, clock=self._clock
        )
        self._attach(driver)
        try:
            await driver.run(stop_event)
        finally:
            self._async_driver = None

    def run_background_sync(self, stop_event: threading.Event) -> None:
        """Log heartbeats on schedule in this thread until `stop_event` is set."""
        driver = SyncHeartbeatDriver(
            self._machine, self._gateway, on_event=self._on_event, clock=self._clock
        )
        self._attach(driver)
        try:
            driver.run(stop_event)
        finally:
            self._sync_driver = None

    def reset_timer(self) -> None:
        """Reset the heartbeat timer to now: a heartbeat was logged externally."""
        with self._lock:
            if self._sync_driver is not None:
                self._sync_driver.reset_timer()
            elif self._async_driver is not None:
                self._async_driver.reset_timer()
            else:
                self._keep(self._machine.reset_timer(self._clock()))

    # ---------------------------------------------------------------- internals

    def _keep(self, actions: Sequence[Action]) -> list[Action]:
        """Hold a beat for later, report the events; return the events."""
        events: list[Action] = []
        for action in actions:
            if isinstance(action, SendHeartbeat):
                self._unsent = action
            else:
                events.append(action)
        for event in events:
            notify(self._on_event, event)
        return events

    def _attach(self, driver: AsyncHeartbeatDriver | SyncHeartbeatDriver) -> None:
        """Make `driver` the one that sends, with any beat held for later."""
        with self._lock:
            if isinstance(driver, SyncHeartbeatDriver):
                self._sync_driver = driver
            else:
                self._async_driver = driver
            if self._unsent is not None:
                driver.adopt_unsent(self._unsent)
                self._unsent = None

    def _take_send(self) -> SendHeartbeat:
        """The beat `tick` carries out: one held for later, or a new one now."""
        if self._async_driver is not None or self._sync_driver is not None:
            raise RuntimeError("tick() while run_background is running")
        with self._lock:
            now = self._clock()
            self._keep(self._machine.tick(now))
            send, self._unsent = self._unsent, None
            if send is not None and send.deadline > now:
                return send
            self._keep(self._machine.beat_now(now))
            send, self._unsent = self._unsent, None
            if send is None:
                raise RuntimeError("a heartbeat is already in flight")
            return send

    def _record_failure(self, send: SendHeartbeat, error: BaseException) -> None:
        with self._lock:
            self._keep(
                self._machine.handle_failure(
                    send.seq, self._clock(), retry_after_of(error)
                )
            )

    def _record_answer(self, send: SendHeartbeat, status: str) -> StateUpdate:
        with self._lock:
            events = self._keep(
                self._machine.handle_response(send.seq, status, self._clock())
            )
        for event in events:
            if isinstance(event, StatusChanged):
                return StateUpdate(workflow_run_status=event.new)
        return StateUpdate()
