"""The group driver: many heartbeat machines on one timer, for asyncio and trio.

Strategy: one scheduler task owns a heap of `(deadline, counter, handle)`, one
entry per lease's `next_deadline`. It sleeps in a `CancelScope` whose deadline is
the earliest live entry; an input that makes some lease's deadline earlier moves
that sleep (no polling, and a single idle lease wakes exactly once per beat). At
a wakeup it pops every due entry, ticks those machines, and carries out their
actions. The heap is lazily invalidated: whenever an input changes a machine's
`next_deadline` a new entry is pushed, and an entry whose deadline is no longer
its handle's is dropped when it reaches the top (before the scheduler sleeps on
it, so a stale entry never causes a wakeup).

Requests run in worker tasks in the group's task group, at most
`max_concurrent_requests` at once. A beat that finds every slot taken waits in a
FIFO queue; a worker that finishes a request takes the next queued beat in the
same task. A queued beat whose `SendHeartbeat.deadline` has passed (or that the
machine no longer has in flight) is dropped, never sent late: the machine times
it out by itself at that deadline, through the scheduler's `tick`.

Rules:
- Each machine has at most one request in flight (the machine's own rule), so
  requests are single-flight per lease and concurrent across leases.
- No per-request timer: a request's deadline is one of its machine's deadlines,
  so the scheduler ticks the machine then, the machine gives the request up, and
  the scheduler cancels the request's scope.
- The group builds every machine itself, on the group's clock (the framework's,
  `anyio.current_time`, unless `clock` is given; an injected clock need only run
  at the framework clock's rate), so clocks cannot be mixed. All machines share
  one `random.Random` for their jitter (a Mersenne Twister is 2.5 KiB: one per
  lease would dominate the memory per lease).
- No fault of the network, the server, a gateway or an event callback escapes:
  each becomes a failure input to its machine, or is logged.
- Adding, removing and stopping leases is safe at any time from the event loop's
  thread (including from `on_event` and from gateways). Exiting the `async with`
  cancels every request, abandons it in its machine, and leaves no task behind.
"""

from __future__ import annotations

import heapq
import logging
import math
import random
from collections import deque
from collections.abc import Callable, Sequence
from itertools import count
from types import TracebackType

import anyio
import anyio.abc

from sansbeat import Action, HeartbeatMachine, SendHeartbeat

from ._gateway import AsyncGateway, answered_status, retry_after_of

__all__ = ["GroupEventCallback", "HeartbeatGroup", "LeaseHandle"]

logger = logging.getLogger("sansbeat")

#: Called with `(handle, event)` for each StatusChanged, LeaseLapsed, LeaseRestored.
GroupEventCallback = Callable[["LeaseHandle", Action], None]

#: How many recent events each handle keeps in `LeaseHandle.events`.
EVENTS_KEPT = 16

_NO_EVENTS: tuple[Action, ...] = ()


class LeaseHandle:
    """One lease in a `HeartbeatGroup`, as returned by `HeartbeatGroup.add`.

    Read `machine` for queries and stats; `events` holds the most recent
    `EVENTS_KEPT` (16) events of this lease, oldest first. All methods must be
    called from the event loop's thread.
    """

    __slots__ = (
        "_group",
        "_machine",
        "_gateway",
        "_queued_at",
        "_request",
        "_request_seq",
        "_events",
        "_clock",
    )

    def __init__(
        self, group: HeartbeatGroup, machine: HeartbeatMachine, gateway: AsyncGateway
    ) -> None:
        self._group: HeartbeatGroup | None = group
        self._machine = machine
        self._gateway = gateway
        # The deadline (machine clock, seconds) of this handle's live heap entry.
        self._queued_at: float | None = None
        # The scope of the request in flight, and its seq.
        self._request: anyio.CancelScope | None = None
        self._request_seq = 0
        self._events: deque[Action] | None = None  # made at the first event
        self._clock = group._clock

    @property
    def machine(self) -> HeartbeatMachine:
        """The lease's machine (read its queries and stats freely)."""
        return self._machine

    @property
    def gateway(self) -> AsyncGateway:
        """The gateway this lease's beats go through."""
        return self._gateway

    @property
    def events(self) -> Sequence[Action]:
        """The most recent `EVENTS_KEPT` events of this lease, oldest first."""
        return _NO_EVENTS if self._events is None else self._events

    @property
    def active(self) -> bool:
        """True while the lease belongs to a running group (not removed/stopped)."""
        return self._group is not None

    def set_status(self, status: str) -> None:
        """Report `status` from now on; it goes out at once (or when the beat in
        flight ends). Raises `UsageError` for an empty or non-str status, and
        `RuntimeError` if the lease was removed."""
        group = self._require_group()
        group._apply(self, self._machine.set_status(status, group._clock()))

    def reset_timer(self) -> None:
        """Count a heartbeat that was logged by other means just now."""
        group = self._require_group()
        group._apply(self, self._machine.reset_timer(group._clock()))

    def beat_now(self) -> None:
        """Send a beat now instead of when it is due (none if one is in flight)."""
        group = self._require_group()
        group._apply(self, self._machine.beat_now(group._clock()))

    def stop(self) -> None:
        """Stop the lease for good: its machine sends nothing more, a request in
        flight is cancelled, and the lease leaves the group. Idempotent."""
        group = self._group
        if group is not None:
            group.remove(self)
        if not self._machine.stopped:
            self._machine.stop(self._clock())

    def _require_group(self) -> HeartbeatGroup:
        group = self._group
        if group is None:
            raise RuntimeError("this lease was removed from its group")
        return group

    def _record(self, event: Action) -> None:
        events = self._events
        if events is None:
            events = self._events = deque(maxlen=EVENTS_KEPT)
        events.append(event)


class HeartbeatGroup:
    """Heartbeats many leases from one scheduler task; for asyncio and trio.

    Args:
        max_concurrent_requests: the most requests in flight at once, across all
            leases (>= 1). A beat beyond it waits for a slot until its deadline.
        on_event: called with `(handle, event)` for every StatusChanged,
            LeaseLapsed and LeaseRestored of every lease.
        clock: seconds on a monotonic clock; default the framework's own.
        resolution: the least time (seconds) between two wakeups of the
            scheduler. Beats falling due closer together than this are ticked
            together, up to `resolution` late; this bounds the wakeup rate (and
            its CPU) under many leases, and changes nothing for sparse ones (a
            single lease still wakes once per beat, on time). 0 wakes for every
            deadline.

    Use as `async with HeartbeatGroup() as group: handle = group.add(...)`.
    All methods must be called from the event loop's thread.
    """

    def __init__(
        self,
        *,
        max_concurrent_requests: int = 100,
        on_event: GroupEventCallback | None = None,
        clock: Callable[[], float] | None = None,
        resolution: float = 0.001,
    ) -> None:
        if not (isinstance(resolution, (int, float)) and 0 <= resolution <= 1):
            raise ValueError(
                f"resolution must be seconds in [0, 1], not {resolution!r}"
            )
        if (
            isinstance(max_concurrent_requests, bool)
            or not isinstance(max_concurrent_requests, int)
            or max_concurrent_requests < 1
        ):
            raise ValueError(
                "max_concurrent_requests must be an int >= 1, "
                f"not {max_concurrent_requests!r}"
            )
        self._limit = max_concurrent_requests
        self._on_event = on_event
        self._clock: Callable[[], float] = clock or anyio.current_time
        self._own_clock = clock is None
        self._rng = random.Random()
        self._heap: list[tuple[float, int, LeaseHandle]] = []
        self._counter = count()
        self._handles: set[LeaseHandle] = set()
        # Beats waiting for a request slot, in arrival order.
        self._waiting: deque[tuple[LeaseHandle, SendHeartbeat]] = deque()
        self._workers = 0
        self._starting = False  # a worker was started and has not run yet
        self._resolution = resolution
        self._woke_at = -math.inf
        self._task_group: anyio.abc.TaskGroup | None = None
        self._sleep: anyio.CancelScope | None = None
        self._sleep_until = math.inf  # the sleep's deadline, on the machine clock
        self._closed = False

    # ------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> HeartbeatGroup:
        if self._task_group is not None or self._closed:
            raise RuntimeError("a HeartbeatGroup can be entered only once")
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        task_group.start_soon(self._schedule)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        task_group = self._task_group
        assert task_group is not None
        self._closed = True
        task_group.cancel_scope.cancel()
        try:
            return await task_group.__aexit__(exc_type, exc, tb)
        finally:
            self._task_group = None
            self._sleep = None
            self._waiting.clear()
            # Requests cancelled with the group got no answer through no fault of
            # the server: free each machine's slot, so a later driver beats at once.
            now = self._clock()
            for handle in self._handles:
                handle._group = None
                handle._request = None
                machine = handle._machine
                seq = machine.in_flight
                if seq is not None:
                    machine.abandon(seq, now)
            self._handles.clear()
            self._heap.clear()

    # ---------------------------------------------------------------- leases

    def add(
        self,
        gateway: AsyncGateway,
        *,
        interval: float,
        report_by_buffer: float,
        initial_status: str,
        request_timeout: float = 10.0,
        backoff_initial: float = 1.0,
        beat_at_start: bool = False,
        lease_margin: float = 0.0,
    ) -> LeaseHandle:
        """Start heartbeating over `gateway`; returns the lease's handle.

        Builds the lease's `HeartbeatMachine` on the group's clock, now; the
        settings are the machine's (seconds; see `HeartbeatMachine`). Raises
        `UsageError` for a bad setting and `RuntimeError` outside `async with`.
        """
        if self._task_group is None:
            raise RuntimeError("add leases inside `async with HeartbeatGroup()`")
        machine = HeartbeatMachine(
            interval=interval,
            report_by_buffer=report_by_buffer,
            initial_status=initial_status,
            now=self._clock(),
            request_timeout=request_timeout,
            backoff_initial=backoff_initial,
            beat_at_start=beat_at_start,
            lease_margin=lease_margin,
            rng=self._rng,
        )
        handle = LeaseHandle(self, machine, gateway)
        self._handles.add(handle)
        if beat_at_start:
            self._apply(handle, machine.tick(self._clock()))
        else:
            self._push(handle)
        return handle

    def remove(self, handle: LeaseHandle) -> None:
        """Take `handle`'s lease out of the group: nothing more is sent for it, and
        a request in flight is cancelled and abandoned in the machine (which is
        left as it is, not stopped). Idempotent."""
        if handle._group is not self:
            return
        handle._group = None
        handle._queued_at = None
        self._handles.discard(handle)
        request = handle._request
        if request is not None:
            handle._request = None
            request.cancel()
        machine = handle._machine
        seq = machine.in_flight
        if seq is not None and not machine.stopped:
            machine.abandon(seq, self._clock())
        self._retarget()

    @property
    def leases(self) -> int:
        """How many leases the group holds."""
        return len(self._handles)

    @property
    def requests_in_flight(self) -> int:
        """How many request workers are running (at most the limit)."""
        return self._workers

    @property
    def max_concurrent_requests(self) -> int:
        """The most requests in flight at once."""
        return self._limit

    # ------------------------------------------------------------- internals

    def _framework_time(self, machine_time: float) -> float:
        """`machine_time` (on `clock`) as an absolute time on the framework clock."""
        if self._own_clock:
            return machine_time
        return anyio.current_time() + (machine_time - self._clock())

    def _push(self, handle: LeaseHandle) -> None:
        """Queue `handle` at its machine's deadline, if that changed."""
        deadline = handle._machine.next_deadline
        old = handle._queued_at
        if deadline == old:
            return
        handle._queued_at = deadline
        if deadline is not None:
            heapq.heappush(self._heap, (deadline, next(self._counter), handle))
        if self._sleep is None:
            return
        if deadline is not None and deadline < self._sleep_until:
            wake = max(deadline, self._woke_at + self._resolution)
            if wake < self._sleep_until:
                self._sleep_until = wake
                self._sleep.deadline = self._framework_time(wake)
        elif old is not None and old <= self._sleep_until:
            self._retarget()  # the entry slept on went stale: sleep until the next

    def _retarget(self) -> None:
        """Drop stale entries off the heap's top; sleep until the first live one."""
        heap = self._heap
        while heap:
            deadline, _, handle = heap[0]
            if handle._queued_at == deadline and handle._group is self:
                break
            heapq.heappop(heap)
        until = max(heap[0][0], self._woke_at + self._resolution) if heap else math.inf
        sleep = self._sleep
        if sleep is not None and until != self._sleep_until:
            self._sleep_until = until
            sleep.deadline = self._framework_time(until) if heap else math.inf

    def _apply(self, handle: LeaseHandle, actions: Sequence[Action]) -> None:
        """Carry out `handle`'s actions, then requeue it at its new deadline."""
        if handle._group is not self:
            return
        for action in actions:
            if isinstance(action, SendHeartbeat):
                self._send(handle, action)
            else:
                handle._record(action)
                on_event = self._on_event
                if on_event is not None:
                    try:
                        on_event(handle, action)
                    except Exception:
                        logger.exception("sansbeat: the on_event callback raised")
                if handle._group is not self:  # the callback removed it
                    return
        self._push(handle)

    def _send(self, handle: LeaseHandle, send: SendHeartbeat) -> None:
        self._waiting.append((handle, send))
        self._spawn()

    def _spawn(self) -> None:
        """Start a worker if beats wait, a slot is free and none is starting."""
        if (
            self._waiting
            and not self._starting
            and self._workers < self._limit
            and self._task_group is not None
        ):
            self._workers += 1
            self._starting = True
            self._task_group.start_soon(self._work)

    def _next_waiting(self) -> tuple[LeaseHandle, SendHeartbeat] | None:
        """The oldest waiting beat that can still be sent, dropping the others."""
        waiting = self._waiting
        if not waiting:
            return None
        now = self._clock()
        while waiting:
            handle, send = waiting.popleft()
            if (
                handle._group is self
                and handle._machine.in_flight == send.seq
                and now < send.deadline
            ):
                return handle, send
        return None

    async def _work(self) -> None:
        """A worker: carry out waiting beats one after another until none is left.

        Before each request it makes sure another worker is on its way if beats
        still wait (so requests overlap up to the limit), yet a gateway that
        answers at once lets one worker drain a whole wakeup's beats. One cancel
        scope serves consecutive requests; cancelling a request (its deadline
        passed, or its lease was removed) cancels it, and the next request gets
        a fresh scope.
        """
        self._starting = False
        try:
            beat = self._next_waiting()
            while beat is not None:
                scope = anyio.CancelScope()
                with scope:
                    while beat is not None:
                        handle, send = beat
                        self._spawn()
                        handle._request = scope
                        handle._request_seq = send.seq
                        outcome: str | Exception
                        try:
                            answer = await handle._gateway.log_heartbeat(
                                send.status, send.next_report_increment
                            )
                            outcome = answered_status(answer)
                        except Exception as error:
                            outcome = error
                        if handle._request is scope:
                            handle._request = None
                        if scope.cancel_called:
                            break  # this scope is spent: the next beat needs a new one
                        self._report(handle, send, outcome)
                        beat = self._next_waiting()
                if scope.cancel_called:
                    # The request was given up (deadline, removal): the machine
                    # already knows, so nothing is reported.
                    beat = self._next_waiting()
        finally:
            self._workers -= 1

    def _report(
        self, handle: LeaseHandle, send: SendHeartbeat, outcome: str | Exception
    ) -> None:
        """Tell `handle`'s machine how request `send` ended, and act on it."""
        if handle._group is not self:
            return
        machine = handle._machine
        if isinstance(outcome, str):
            actions = machine.handle_response(send.seq, outcome, self._clock())
        else:
            logger.warning("sansbeat: heartbeat %d failed: %s", send.seq, outcome)
            actions = machine.handle_failure(
                send.seq, self._clock(), retry_after_of(outcome)
            )
        self._apply(handle, actions)

    async def _schedule(self) -> None:
        """The timer: tick each lease at its deadline, sleep until the next one."""
        heap = self._heap
        clock = self._clock
        heappop = heapq.heappop
        now = clock()
        while True:
            while heap:
                deadline, _, handle = heap[0]
                if deadline > now:
                    if handle._queued_at == deadline and handle._group is self:
                        break
                    heappop(heap)  # stale: drop it before sleeping on it
                    continue
                heappop(heap)
                if handle._queued_at != deadline:
                    continue
                handle._queued_at = None
                machine = handle._machine
                actions = machine.tick(now)
                request = handle._request
                if request is not None and machine.in_flight != handle._request_seq:
                    # The machine gave the request up at its deadline.
                    handle._request = None
                    request.cancel()
                self._apply(handle, actions)
            with anyio.CancelScope() as sleep:
                self._sleep = sleep
                if heap:
                    self._sleep_until = max(heap[0][0], now + self._resolution)
                    sleep.deadline = self._framework_time(self._sleep_until)
                else:
                    self._sleep_until = math.inf
                await anyio.sleep_forever()
            self._sleep = None
            self._woke_at = now = clock()
