"""The thread driver: runs one HeartbeatMachine over a blocking gateway.

Strategy: `run(stop_event)` is a loop in the calling thread (usually a background
thread of its own): read the clock, feed the machine, carry out the actions, then
wait on a condition variable until the machine's `next_deadline` or until woken by
another thread (a status change, a timer reset, stop). A heartbeat request blocks
this thread, bounded by the request's deadline. While a retry can still fit in
the lease window the machine ends every request's deadline before the lease
runs out, so a lapse is reported on time; in the last moments of a lease (less
than `backoff_initial` left) a request may run past it, and the lapse is then
reported when that request ends, at most `request_timeout` late.

Rules:
- Every machine call is made under one lock, so other threads may call
  `set_status` and `reset_timer` at any time; beats those calls cause are handed
  to the loop thread, which alone does I/O.
- No fault of the network, the server, the gateway or an event callback escapes
  the loop. Event callbacks run in the loop thread, outside the lock.
- Stopping is prompt: setting the stop event wakes the loop and interrupts a
  request in flight on an `InterruptibleGateway` (`HttpGateway` is one).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from sansbeat import Action, HeartbeatMachine, SendHeartbeat

from ._async import EventCallback, notify
from ._gateway import (
    InterruptibleGateway,
    SyncGateway,
    answered_status,
    log_heartbeat_sync_by,
    retry_after_of,
)

__all__ = ["SyncHeartbeatDriver"]

logger = logging.getLogger("sansbeat")


class SyncHeartbeatDriver:
    """Heartbeats `machine` over `gateway` in the thread that calls `run`.

    Args:
        machine: the machine to drive, built on the same clock as `clock`.
        gateway: performs one blocking exchange (`log_heartbeat_sync`).
        on_event: called (in the loop thread) with every StatusChanged,
            LeaseLapsed and LeaseRestored.
        clock: seconds on a monotonic clock; default `time.monotonic`.
    """

    def __init__(
        self,
        machine: HeartbeatMachine,
        gateway: SyncGateway | InterruptibleGateway,
        *,
        on_event: EventCallback | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._machine = machine
        self._gateway = gateway
        self._on_event = on_event
        self._clock = clock
        self._lock = threading.Lock()
        self._woken = threading.Condition(self._lock)
        # Filled under the lock by any thread, emptied by the loop thread.
        self._unsent: list[SendHeartbeat] = []
        self._events: list[Action] = []
        self._stopping = False
        self._running = False

    @property
    def machine(self) -> HeartbeatMachine:
        """The machine being driven. Read it freely; change it through the driver."""
        return self._machine

    def adopt_unsent(self, send: SendHeartbeat) -> None:
        """Carry out `send`, a beat the machine asked for before this driver ran."""
        with self._woken:
            self._hand_over((send,))

    def set_status(self, status: str) -> None:
        """Report `status` from now on; it goes out at once. Thread-safe."""
        with self._woken:
            self._hand_over(self._machine.set_status(status, self._clock()))

    def reset_timer(self) -> None:
        """Count a heartbeat that was logged by other means just now. Thread-safe."""
        with self._woken:
            self._hand_over(self._machine.reset_timer(self._clock()))

    def run(self, stop_event: threading.Event) -> None:
        """Heartbeat in this thread until `stop_event` is set.

        Returns promptly once it is set; network and server faults never raise.
        """
        with self._woken:
            if self._running:
                raise RuntimeError("this driver is already running")
            self._running = True
            self._stopping = False
        watcher = threading.Thread(
            target=self._stop_when_set, args=(stop_event,), name="sansbeat-stop"
        )
        watcher.start()
        try:
            self._loop()
        finally:
            stop_event.set()  # so the watcher returns even if the loop raised
            watcher.join()
            with self._woken:
                self._running = False
                self._unsent.clear()
                # A beat interrupted or never sent because we stopped is no
                # failure of the server: free the slot for whoever beats next.
                in_flight = self._machine.in_flight
                if in_flight is not None:
                    self._hand_over(self._machine.abandon(in_flight, self._clock()))
                events, self._events = self._events, []
            # Abandon never sends, but it may report a lapse that time caused.
            self._emit(events)

    def _stop_when_set(self, stop_event: threading.Event) -> None:
        stop_event.wait()
        with self._woken:
            self._stopping = True
            self._woken.notify_all()
        if isinstance(self._gateway, InterruptibleGateway):
            self._gateway.interrupt()

    def _loop(self) -> None:
        while True:
            with self._woken:
                if self._stopping or self._machine.stopped:
                    return
                self._hand_over(self._machine.tick(self._clock()))
                sends, self._unsent = self._unsent, []
                events, self._events = self._events, []
            self._emit(events)
            for send in sends:
                self._exchange(send)
            with self._woken:
                deadline = self._machine.next_deadline
                if self._stopping or self._unsent or self._events or deadline is None:
                    continue
                self._woken.wait(max(0.0, deadline - self._clock()))

    def _hand_over(self, actions: Sequence[Action]) -> None:
        """Queue `actions` for the loop thread and wake it; call under the lock."""
        for action in actions:
            if isinstance(action, SendHeartbeat):
                self._unsent.append(action)
            else:
                self._events.append(action)
        if actions:
            self._woken.notify_all()

    def _emit(self, events: Sequence[Action]) -> None:
        for event in events:
            notify(self._on_event, event)

    def _exchange(self, send: SendHeartbeat) -> None:
        """Carry out one beat in this thread and report its outcome."""
        answer: object
        try:
            if send.deadline <= self._clock():
                return  # a beat queued for too long: the machine has given up on it
            answer = log_heartbeat_sync_by(
                self._gateway, send, send.deadline - self._clock()
            )
            status = answered_status(answer)
        except Exception as error:
            with self._woken:
                if self._stopping:
                    return  # most likely our own interrupt(); run() abandons it
                logger.warning("sansbeat: heartbeat %d failed: %s", send.seq, error)
                self._hand_over(
                    self._machine.handle_failure(
                        send.seq, self._clock(), retry_after_of(error)
                    )
                )
        else:
            with self._woken:
                self._hand_over(
                    self._machine.handle_response(send.seq, status, self._clock())
                )
