"""The group driver: many heartbeat machines on one timer, for asyncio and trio.

Strategy: one scheduler task owns a heap of deadlines, and for each the leases
whose `next_deadline` it is. It sleeps in a `CancelScope` whose deadline is
the earliest live entry; an input that makes some lease's deadline earlier moves
that sleep (no polling, and a single idle lease wakes exactly once per beat). At
a wakeup it pops every due entry, ticks those machines, and carries out their
actions. The heap is lazily invalidated: whenever an input changes a machine's
`next_deadline` a new entry is pushed, and an entry whose deadline is no longer
its handle's is dropped when it reaches the top (before the scheduler sleeps on
it, so a stale entry never causes a wakeup).

The scheduler carries out each due beat inline: it makes the gateway call's
first step itself, so a gateway that answers without suspending (an in-memory
one) costs no task switch, no cancel scope and no extra wakeup. When a gateway
suspends, the scheduler task hands the timer to another task of the group (a
parked one, or a new one) and finishes that request itself, in its own cancel
scope, so the request stays concurrent with the others and cancellable. On
asyncio the scheduler sleeps on a future rung by a loop timer (cheaper there
than a cancel scope's deadline); on trio in a `CancelScope`.

Other requests run in worker tasks in the group's task group, at most
`max_concurrent_requests` at once (a request the scheduler started counts as
one). Workers are long-lived: one with nothing to do parks, to be woken to work
or to take over the timer. A beat that finds every slot taken waits in a FIFO
queue; a worker that finishes a request takes the next queued beat in the same
task. A queued beat whose `SendHeartbeat.deadline` has passed (or that the
machine no longer has in flight) is dropped, never sent late: the machine times
it out by itself at that deadline, through the scheduler's `tick`.

Rules:
- Each machine has at most one request in flight (the machine's own rule), so
  requests are single-flight per lease and concurrent across leases. A lease's
  gateway calls never overlap either: a retry that comes while the cancelled
  call before it is still unwinding (closing its connection) waits for it.
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

import asyncio
import heapq
import logging
import math
import random
from collections import deque
from collections.abc import Callable, Coroutine, Generator, Sequence
from types import CoroutineType, TracebackType
from typing import Any, Protocol

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
        "_busy",
        "_held",
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
        # True while a gateway call of this lease runs (a cancelled one included,
        # until it has unwound), and the beat that waits for it to end: the
        # server never sees two requests of one lease at once.
        self._busy = False
        self._held: SendHeartbeat | None = None

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


def _on_asyncio() -> bool:
    """True when the running framework is asyncio (there is a running loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _framework_clock() -> Callable[[], float]:
    """The running framework's clock itself: `anyio.current_time` without the
    cost of finding the backend at every call (a few us, twice per beat)."""
    try:
        return asyncio.get_running_loop().time
    except RuntimeError:
        pass
    try:
        from trio import current_time
    except ImportError:  # pragma: no cover - anyio runs only asyncio and trio
        return anyio.current_time
    return current_time


class _Alarm:
    """The scheduler's sleep on asyncio: a future woken by a loop timer.

    Cheaper than a `CancelScope` deadline there (no cancellation is raised to
    wake up); `deadline` is movable like a scope's, on the framework clock. One
    alarm serves every sleep of a scheduler: each `wait` has its own future.
    """

    __slots__ = ("_future", "_loop", "_timer", "_deadline")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._future: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = math.inf

    @property
    def deadline(self) -> float:
        return self._deadline

    @deadline.setter
    def deadline(self, value: float) -> None:
        self._deadline = value
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if value != math.inf:
            self._timer = self._loop.call_at(value, self._ring)

    def _ring(self) -> None:
        self._timer = None
        future = self._future
        if future is not None and not future.done():
            future.set_result(None)

    async def wait(self) -> None:
        """Sleep until `deadline` (set it first; it may move meanwhile)."""
        self._future = future = self._loop.create_future()
        try:
            await future
        finally:
            self._future = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None


class _Sleep(Protocol):
    """What the scheduler sleeps in: an `_Alarm` or a trio `CancelScope`."""

    deadline: float


class _Parked:
    """A parked task, and what it is woken for (to lead, or to work)."""

    __slots__ = ("event", "lead")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.lead = False


#: A gateway call being stepped by hand: its coroutine, or its `__await__()`.
_Steps = Generator[Any, Any, object] | Coroutine[Any, Any, object]


class _Resume:
    """The rest of a gateway call whose first step ran inline and suspended:
    awaiting it passes what the step yielded on to the framework, as `await`
    would have, in the same task."""

    __slots__ = ("_steps", "_yielded")

    def __init__(self, steps: _Steps, yielded: object) -> None:
        self._steps = steps
        self._yielded = yielded

    def __await__(self) -> Generator[Any, Any, object]:
        steps = self._steps
        value = self._yielded
        while True:
            try:
                sent = yield value
            except BaseException as error:  # cancellation: pass it in
                try:
                    value = steps.throw(error)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = steps.send(sent)
                except StopIteration as stop:
                    return stop.value


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
            deadline. The default, 2 ms, halves the wakeups (and cuts the CPU
            per beat by about a sixth) against 1 ms at 10,000 leases, for a p99
            lateness near 2.5 ms, half the fleet target's 5 ms.

    Use as `async with HeartbeatGroup() as group: handle = group.add(...)`.
    All methods must be called from the event loop's thread.
    """

    def __init__(
        self,
        *,
        max_concurrent_requests: int = 100,
        on_event: GroupEventCallback | None = None,
        clock: Callable[[], float] | None = None,
        resolution: float = 0.002,
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
        # `anyio.current_time` is the framework's clock, found anew at each call
        # (a few us): the group reads that clock directly instead.
        self._own_clock = clock is None or clock is anyio.current_time
        self._framework_now: Callable[[], float] = anyio.current_time
        self._rng = random.Random()
        # The timer: a heap of distinct deadlines (floats compare fast; tuples
        # holding handles cost 4x as much to sift), and who is due at each.
        self._heap: list[float] = []
        self._due: dict[float, LeaseHandle | list[LeaseHandle]] = {}
        self._handles: set[LeaseHandle] = set()
        # Beats waiting for a request slot, in arrival order.
        self._waiting: deque[tuple[LeaseHandle, SendHeartbeat]] = deque()
        self._workers = 0  # workers not parked (at most the limit)
        self._idle: list[_Parked] = []  # the parked tasks
        # While the timer ticks: its scope (for a request that suspends), and
        # that request, if any (only one per pass; later beats go to workers).
        self._ticking = False
        self._scope: anyio.CancelScope | None = None
        self._pending: tuple[LeaseHandle, SendHeartbeat, _Resume] | None = None
        self._starting = False  # a worker was started and has not run yet
        self._resolution = resolution
        self._woke_at = -math.inf
        self._task_group: anyio.abc.TaskGroup | None = None
        # The scheduler's sleep while it sleeps: an `_Alarm` (asyncio) or a scope.
        self._sleep: _Sleep | None = None
        self._sleep_until = math.inf  # the sleep's deadline, on the machine clock
        self._closed = False

    # ------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> HeartbeatGroup:
        if self._task_group is not None or self._closed:
            raise RuntimeError("a HeartbeatGroup can be entered only once")
        self._framework_now = _framework_clock()
        if self._own_clock:
            self._clock = self._framework_now
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        task_group.start_soon(self._agent, True)
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
            self._idle.clear()
            # Requests cancelled with the group got no answer through no fault of
            # the server: free each machine's slot, so a later driver beats at once.
            # Abandoning never sends, but it reports a lapse that time caused.
            now = self._clock()
            for handle in self._handles:
                handle._group = None
                handle._request = None
                handle._held = None
                machine = handle._machine
                seq = machine.in_flight
                if seq is not None:
                    for event in machine.abandon(seq, now):
                        self._notify(handle, event)
            self._handles.clear()
            self._heap.clear()
            self._due.clear()

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
        settings are the machine's (seconds; see `HeartbeatMachine`), with its
        defaults. `lease_margin` stays 0 as in the machine, since the group
        serves any server; against Jobmon, which keeps deadlines in whole
        seconds, pass 1.0 as `HeartbeatService` does. Raises `UsageError` for a
        bad setting and `RuntimeError` outside `async with`.
        """
        if self._task_group is None:
            raise RuntimeError("add leases inside `async with HeartbeatGroup()`")
        return self._adopt(
            HeartbeatMachine(
                interval=interval,
                report_by_buffer=report_by_buffer,
                initial_status=initial_status,
                now=self._clock(),
                request_timeout=request_timeout,
                backoff_initial=backoff_initial,
                beat_at_start=beat_at_start,
                lease_margin=lease_margin,
                rng=self._rng,
            ),
            gateway,
        )

    def _adopt(self, machine: HeartbeatMachine, gateway: AsyncGateway) -> LeaseHandle:
        """Drive `machine` (built on this group's clock) over `gateway`: the
        single-lease driver's way in, and `add`'s."""
        handle = LeaseHandle(self, machine, gateway)
        self._handles.add(handle)
        self._apply(handle, machine.tick(self._clock()))
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
        handle._held = None
        machine = handle._machine
        seq = machine.in_flight
        if seq is not None and not machine.stopped:
            for event in machine.abandon(seq, self._clock()):
                self._notify(handle, event)
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
        return self._framework_now() + (machine_time - self._clock())

    def _push(self, handle: LeaseHandle) -> None:
        """Queue `handle` at its machine's deadline, if that changed."""
        deadline = handle._machine.next_deadline
        old = handle._queued_at
        if deadline == old:
            return
        handle._queued_at = deadline
        if deadline is not None:
            due = self._due
            entry = due.get(deadline)
            if entry is None:
                due[deadline] = handle
                heapq.heappush(self._heap, deadline)
            elif isinstance(entry, list):
                entry.append(handle)
            else:
                due[deadline] = [entry, handle]
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
        due = self._due
        while heap:
            deadline = heap[0]
            if self._live(due[deadline], deadline):
                break
            heapq.heappop(heap)
            del due[deadline]
        until = max(heap[0], self._woke_at + self._resolution) if heap else math.inf
        sleep = self._sleep
        if sleep is not None and until != self._sleep_until:
            self._sleep_until = until
            sleep.deadline = self._framework_time(until) if heap else math.inf

    def _live(self, entry: LeaseHandle | list[LeaseHandle], deadline: float) -> bool:
        """Whether some lease of a heap entry is still queued at its deadline."""
        if isinstance(entry, list):
            return any(
                handle._queued_at == deadline and handle._group is self
                for handle in entry
            )
        return entry._queued_at == deadline and entry._group is self

    def _apply(self, handle: LeaseHandle, actions: Sequence[Action]) -> None:
        """Carry out `handle`'s actions, then requeue it at its new deadline."""
        if handle._group is not self:
            return
        answered: tuple[SendHeartbeat, str | Exception] | None = None
        for action in actions:
            if isinstance(action, SendHeartbeat):
                outcome = self._send(handle, action)
                if outcome is not None:
                    answered = (action, outcome)  # reported after the others
            else:
                self._notify(handle, action)
                if handle._group is not self:  # the callback removed it
                    return
        if answered is None:
            self._push(handle)
        else:  # answered inline: requeue once, at the deadline after the answer
            send, outcome = answered
            if handle._group is not self:  # the gateway removed it
                return
            if type(outcome) is str:
                after = handle._machine.handle_response(
                    send.seq, outcome, self._clock()
                )
                if after:
                    self._apply(handle, after)
                else:
                    self._push(handle)
            else:
                self._report(handle, send, outcome)

    def _notify(self, handle: LeaseHandle, event: Action) -> None:
        """Record `event` on its handle and pass it to `on_event`, whose
        exceptions are logged, never allowed to stop the group."""
        handle._record(event)
        on_event = self._on_event
        if on_event is not None:
            try:
                on_event(handle, event)
            except Exception:
                logger.exception("sansbeat: the on_event callback raised")

    def _send(self, handle: LeaseHandle, send: SendHeartbeat) -> str | Exception | None:
        """Send `send`: inline when the scheduler is ticking and may (returning
        the outcome if the gateway answered without suspending), else through
        the queue and a worker (returning None)."""
        if handle._busy:  # its last call is still unwinding: this beat waits
            handle._held = send
            return None
        if (
            self._ticking
            and self._pending is None
            and not self._waiting
            and self._workers < self._limit
        ):
            try:
                call = handle._gateway.log_heartbeat(
                    send.status, send.next_report_increment
                )
                steps: _Steps = (
                    call if isinstance(call, CoroutineType) else call.__await__()
                )
                yielded = steps.send(None)
            except StopIteration as stop:
                try:
                    return answered_status(stop.value)
                except Exception as error:
                    return error
            except Exception as error:
                return error
            # The gateway suspended: this task finishes the request (in its
            # scope), and another task takes over the timer.
            scope = self._scope
            assert scope is not None
            handle._request = scope
            handle._request_seq = send.seq
            handle._busy = True
            self._workers += 1
            self._pending = (handle, send, _Resume(steps, yielded))
            return None
        self._waiting.append((handle, send))
        self._spawn()
        return None

    def _spawn(self) -> None:
        """Wake (or start) a worker if beats wait, a slot is free and none is
        on its way. Workers are long-lived: one with nothing to do parks."""
        if (
            self._waiting
            and not self._starting
            and self._workers < self._limit
            and self._task_group is not None
        ):
            self._workers += 1
            self._starting = True
            idle = self._idle
            if idle:
                parked = idle.pop()
                parked.lead = False
                parked.event.set()
            else:
                self._task_group.start_soon(self._agent, False)

    def _hand_off(self) -> None:
        """Give the timer to a parked task, or to a new one."""
        idle = self._idle
        if idle:
            parked = idle.pop()
            parked.lead = True
            parked.event.set()
        elif self._task_group is not None:
            self._task_group.start_soon(self._agent, True)

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

    async def _agent(self, lead: bool) -> None:
        """One task of the group: the timer (`lead`), or a worker.

        The timer carries out each due beat inline; a gateway that answers
        without suspending costs no task switch. When a gateway suspends, this
        task hands the timer to another and finishes that request in its own
        scope (so it stays cancellable), then works as a worker: it carries out
        waiting beats one after another until none is left, then parks until
        it is woken to work or to lead. Before each request a worker makes sure
        another is on its way if beats still wait (so requests overlap up to the
        limit). One cancel scope serves consecutive requests; cancelling a
        request (its deadline passed, or its lease was removed) cancels it, and
        the next request gets a fresh scope.
        """
        parked: _Parked | None = None
        counted = not lead  # whether this task counts in `_workers`
        try:
            while True:
                if lead:
                    with anyio.CancelScope() as scope:
                        handle, send, rest = await self._schedule(scope)
                        counted = True  # `_send` counted the request
                        outcome: str | Exception
                        try:
                            outcome = answered_status(await rest)
                        except Exception as error:
                            outcome = error
                        finally:
                            self._call_ended(handle)
                        if handle._request is scope:
                            handle._request = None
                    if not scope.cancel_called:
                        self._report(handle, send, outcome)
                else:
                    self._starting = False
                beat = self._next_waiting()
                while beat is not None:
                    scope = anyio.CancelScope()
                    with scope:
                        while beat is not None:
                            handle, send = beat
                            self._spawn()
                            handle._request = scope
                            handle._request_seq = send.seq
                            handle._busy = True
                            try:
                                answer = await handle._gateway.log_heartbeat(
                                    send.status, send.next_report_increment
                                )
                                outcome = answered_status(answer)
                            except Exception as error:
                                outcome = error
                            finally:
                                self._call_ended(handle)
                            if handle._request is scope:
                                handle._request = None
                            if scope.cancel_called:
                                break  # this scope is spent: the next needs a new one
                            self._report(handle, send, outcome)
                            beat = self._next_waiting()
                    if scope.cancel_called:
                        # The request was given up (deadline, removal): the machine
                        # already knows, so nothing is reported.
                        beat = self._next_waiting()
                # Nothing waits: park until woken to work (`_spawn` counts this
                # worker as running again first) or to lead (`_hand_off`).
                parked = _Parked()
                self._idle.append(parked)
                self._workers -= 1
                counted = False
                await parked.event.wait()
                lead = parked.lead
                counted = not lead
                parked = None
        finally:
            if parked is None:
                if counted:
                    self._workers -= 1
            elif parked in self._idle:
                self._idle.remove(parked)
            elif not parked.lead:  # woken and counted, but cancelled before it ran
                self._workers -= 1
                self._starting = False

    def _call_ended(self, handle: LeaseHandle) -> None:
        """A gateway call of `handle` is over: a beat held back for it goes
        first to the task that ran the call, which looks for work next."""
        handle._busy = False
        held = handle._held
        if held is not None:
            handle._held = None
            self._waiting.appendleft((handle, held))

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

    async def _schedule(
        self, scope: anyio.CancelScope
    ) -> tuple[LeaseHandle, SendHeartbeat, _Resume]:
        """The timer: tick each lease at its deadline, sleep until the next one.

        Returns (having handed the timer on) when a beat it sent inline
        suspended: the caller finishes that request, in `scope`.
        """
        heap = self._heap
        due = self._due
        clock = self._clock
        heappop = heapq.heappop
        on_asyncio = _on_asyncio()
        alarm = _Alarm() if on_asyncio else None
        if alarm is None:
            import trio  # only under trio, which is then loaded
        self._scope = scope
        now = clock()
        while True:
            self._ticking = True
            try:
                while heap:
                    deadline = heap[0]
                    if deadline > now:
                        if self._live(due[deadline], deadline):
                            break
                        heappop(heap)  # stale: drop it before sleeping on it
                        del due[deadline]
                        continue
                    heappop(heap)
                    entry = due.pop(deadline)
                    if isinstance(entry, list):
                        for handle in entry:
                            self._tick(handle, deadline, now)
                    else:
                        self._tick(entry, deadline, now)
            finally:
                self._ticking = False
            pending = self._pending
            if pending is not None:
                self._pending = None
                self._scope = None
                self._hand_off()
                return pending
            if alarm is not None:
                self._sleep = alarm
                self._set_sleep(alarm, now)
                await alarm.wait()
            else:
                # trio's own scope: anyio's wrapper over it costs a third more
                # per wakeup, and under load a wakeup comes every `resolution`.
                with trio.CancelScope() as sleep:
                    self._sleep = sleep
                    self._set_sleep(sleep, now)
                    await trio.sleep_forever()
            self._sleep = None
            self._woke_at = now = clock()

    def _tick(self, handle: LeaseHandle, deadline: float, now: float) -> None:
        """Tick `handle`'s machine, due at `deadline`, if it is still queued then."""
        if handle._queued_at != deadline:
            return  # stale (requeued, or removed)
        handle._queued_at = None
        machine = handle._machine
        actions = machine.tick(now)
        request = handle._request
        if request is not None and machine.in_flight != handle._request_seq:
            # The machine gave the request up at its deadline.
            handle._request = None
            request.cancel()
        self._apply(handle, actions)

    def _set_sleep(self, sleep: _Sleep, now: float) -> None:
        heap = self._heap
        if heap:
            self._sleep_until = max(heap[0], now + self._resolution)
            sleep.deadline = self._framework_time(self._sleep_until)
        else:
            self._sleep_until = math.inf
