"""Deterministic simulation: one HeartbeatMachine against a simulated Jobmon server.

Strategy: a discrete-event simulation in virtual time. Nothing here reads a clock,
sleeps, or touches a socket; time is a number that only the simulation moves.

- `VirtualClock` holds the current virtual time and only moves forward.
- `SimServer` behaves like the Jobmon server described in DESIGN.md ("The wire"):
  one status per run; a heartbeat first tries to move the run to the status sent
  (`TRANSITIONS`), and only if that move is allowed extends the run's deadline to
  `floor(receipt + next_report_increment)`; otherwise it answers with the status it
  holds and extends nothing. A reaper sweeps at every whole multiple of
  `reap_period` and marks lost (`"E"`) each run, not yet in a final status, whose
  deadline is at or before the sweep. Signals (resume: `"C"`, `"H"`) are
  server-side moves scheduled at a time, checked against the same table.
- `SimNetwork` decides the fate of every request from one seeded `random.Random`:
  latency, loss of either leg, outage windows, server-error windows.
- `Simulation` drives one machine: a heap of pending events keyed by
  `(time, counter)` (arrivals at the server, answers and failures back at the
  client, scheduled local status changes and stop), the server's own timers, and
  the machine's wakeup at `next_deadline`. It records every step in a timeline.

Rules:

- Determinism: the network's seeded `Random` and the machine's `rng` are the only
  sources of chance, so the same seeds and schedule give the same timeline.
- One instant, one order: at equal times the server's timers run first (a sweep
  before a signal), then queued events in the order they were queued, then the
  machine's wakeup. A request arriving exactly at its run's deadline therefore
  finds the run already reaped when a sweep falls on that instant.
- The machine's wakeup is never queued: it is `next_deadline`, read afresh after
  every input, so it can never be stale.
- Answers are delivered even at or after the request's deadline; the machine counts
  them stale, as it would a late packet. The server processes every request that
  reaches it, whether or not the client has given up on it.
- Outages are decided when a request is sent, server errors when it arrives; loss
  and latency are drawn per leg (request, answer).
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import count
from types import MappingProxyType
from typing import Literal

from ._actions import Action, LeaseLapsed, LeaseRestored, SendHeartbeat, StatusChanged
from ._errors import UsageError
from ._machine import HeartbeatMachine, HeartbeatStats

__all__ = [
    "FINAL_STATUSES",
    "LOST_STATUS",
    "TRANSITIONS",
    "EntryKind",
    "OutageWindow",
    "Reap",
    "ServerAnswer",
    "ServerErrorWindow",
    "ServerEvent",
    "ServerSignal",
    "SimNetwork",
    "SimServer",
    "Simulation",
    "SimulationResult",
    "TimelineEntry",
    "VirtualClock",
    "format_timeline",
]


def _finite(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(field, value, "must be a number of seconds")
    if not math.isfinite(value):
        raise UsageError(field, value, "must be finite")
    return float(value)


def _whole(seconds: float) -> float:
    """A time as the server stores it: floored to the whole second."""
    return float(math.floor(seconds))


def _positive(field: str, value: object) -> float:
    seconds = _finite(field, value)
    if seconds <= 0:
        raise UsageError(field, value, "must be > 0 seconds")
    return seconds


# --------------------------------------------------------------------------- clock


class VirtualClock:
    """Virtual time (seconds) that moves only forward, and only when told.

    Args:
        start: the initial time (seconds).
    """

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        self._now = _finite("start", start)

    @property
    def now(self) -> float:
        """The current virtual time (seconds)."""
        return self._now

    def advance_to(self, when: float) -> None:
        """Move the clock to `when` (seconds); staying put is allowed.

        Raises:
            UsageError: `when` is not finite or is earlier than `now`.
        """
        when = _finite("when", when)
        if when < self._now:
            raise UsageError(
                "when", when, f"must not be earlier than now ({self._now!r})"
            )
        self._now = when


# -------------------------------------------------------------------------- server

#: Workflow-run statuses a heartbeat may move a run to, by the status it holds,
#: modelled on Jobmon's: G registered, L linking, B bound, I instantiated,
#: O launched, R running, C cold resume, H hot resume; and the final ones A aborted,
#: D done, S stopped, E error (lost), T terminated. A move to the status already
#: held is always allowed (that is a plain renewal); anything else not listed,
#: including an unknown status, is refused.
TRANSITIONS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "G": frozenset("LA"),
        "L": frozenset("BA"),
        "B": frozenset("IA"),
        "I": frozenset("OE"),
        "O": frozenset("RE"),
        "R": frozenset("DSECH"),
        "C": frozenset("T"),
        "H": frozenset("T"),
        "A": frozenset(),
        "D": frozenset(),
        "S": frozenset(),
        "E": frozenset(),
        "T": frozenset(),
    }
)

#: Statuses no move leaves; the reaper ignores runs that hold one.
FINAL_STATUSES = frozenset(held for held, moves in TRANSITIONS.items() if not moves)

#: The status the reaper gives a live run whose deadline passed. (Jobmon's reaper
#: also terminates lapsed resume runs; the simulation keeps one rule: lost is "E".)
LOST_STATUS = "E"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerAnswer:
    """What `SimServer.log_heartbeat` did.

    Attributes:
        status: the status the server now holds: the body of its 200 answer.
        renewed: whether the move was allowed and the deadline extended.
        deadline: the run's deadline afterwards (whole seconds, absolute).
    """

    status: str
    renewed: bool
    deadline: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Reap:
    """The reaper marked a run lost.

    Attributes:
        time: when the sweep ran (seconds).
        run_id: the run reaped.
        status: the status it held before (it now holds `LOST_STATUS`).
        deadline: the deadline (seconds) that had passed.
    """

    time: float
    run_id: int
    status: str
    deadline: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSignal:
    """A scheduled server-side move (a resume signal) was tried.

    Attributes:
        time: when it was tried (seconds).
        run_id: the run it was for.
        old: the status the run held.
        new: the status asked for.
        applied: whether `TRANSITIONS` allowed the move (if not, nothing changed).
    """

    time: float
    run_id: int
    old: str
    new: str
    applied: bool


ServerEvent = Reap | ServerSignal
"""What the server's own timers did: a reap or a signal."""


@dataclass(slots=True)
class _Run:
    status: str
    deadline: float


class SimServer:
    """A Jobmon-like heartbeat server with a reaper, in virtual time.

    Time enters every call as `now` (seconds) and must not go backwards. Each call
    first runs the server's own timers up to `now` (see `advance`).

    Args:
        reap_period: seconds between reaper sweeps; sweeps run at every whole
            multiple of it. A sweep marks lost every run not in a final status
            whose deadline is at or before the sweep's time. (Sweeps that would
            find nothing are skipped: they change nothing.)
    """

    __slots__ = (
        "_now",
        "_reap_period",
        "_reaps",
        "_runs",
        "_signal_order",
        "_signals",
        "_swept",
    )

    def __init__(self, *, reap_period: float = 1.0) -> None:
        self._reap_period = _positive("reap_period", reap_period)
        self._now = -math.inf
        self._runs: dict[int, _Run] = {}
        # Pending signals: (at, order, run_id, status), a heap.
        self._signals: list[tuple[float, int, int, str]] = []
        self._signal_order = count()
        self._reaps: list[Reap] = []
        # Index k of the last sweep (at k * reap_period) already run or passed.
        self._swept = -math.inf

    @property
    def reap_period(self) -> float:
        """Seconds between reaper sweeps."""
        return self._reap_period

    @property
    def reaps(self) -> tuple[Reap, ...]:
        """Every reap so far, in order."""
        return tuple(self._reaps)

    def status(self, run_id: int) -> str:
        """The status the server holds for `run_id`.

        Raises:
            KeyError: no such run (the real server answers 500).
        """
        return self._runs[run_id].status

    def deadline(self, run_id: int) -> float:
        """The absolute time (whole seconds) by which `run_id` must next report.

        Raises:
            KeyError: no such run.
        """
        return self._runs[run_id].deadline

    def add_run(
        self, run_id: int, *, status: str, next_report_increment: float, now: float
    ) -> None:
        """Register `run_id` holding `status`, due to report by `now + increment`.

        The deadline is set as by an accepted heartbeat received at `now`
        (seconds), with `next_report_increment` in seconds.

        Raises:
            UsageError: the run exists, the status is not in `TRANSITIONS`, the
                increment is not > 0, or `now` went backwards.
        """
        if run_id in self._runs:
            raise UsageError("run_id", run_id, "is already registered")
        if status not in TRANSITIONS:
            raise UsageError("status", status, "must be a status of TRANSITIONS")
        increment = _positive("next_report_increment", next_report_increment)
        self.advance(now)
        self._runs[run_id] = _Run(status=status, deadline=_whole(now + increment))

    def log_heartbeat(
        self, run_id: int, status: str, next_report_increment: float, now: float
    ) -> ServerAnswer:
        """Receive a heartbeat for `run_id` reporting `status`, at `now` (seconds).

        First tries to move the run to `status`. Only if that is allowed is the
        deadline extended, to `floor(now + next_report_increment)`: the server
        keeps whole seconds, and floor is the pessimistic reading (never later
        than the exact time), so a client safe here is safe under rounding too.
        If the move is refused the answer carries the status held and the
        deadline is untouched: for the client that is a signal, not a renewal.

        Raises:
            KeyError: no such run (the real server answers 500).
            UsageError: `next_report_increment` is not > 0, or `now` went back.
        """
        run = self._runs[run_id]
        increment = _positive("next_report_increment", next_report_increment)
        self.advance(now)
        if status != run.status and status not in TRANSITIONS[run.status]:
            return ServerAnswer(status=run.status, renewed=False, deadline=run.deadline)
        run.status = status
        run.deadline = _whole(now + increment)
        return ServerAnswer(status=status, renewed=True, deadline=run.deadline)

    def schedule_signal(self, run_id: int, status: str, at: float) -> None:
        """At time `at` (seconds), try to move `run_id` to `status` (e.g. "C", "H").

        The move obeys `TRANSITIONS` like a heartbeat's; a refused signal changes
        nothing. Either way it is reported by `advance` as a `ServerSignal`.

        Raises:
            KeyError: no such run.
            UsageError: `at` is earlier than the server's current time.
        """
        if run_id not in self._runs:  # fail now, not at `at`
            raise KeyError(run_id)
        at = _finite("at", at)
        if at < self._now:
            raise UsageError("at", at, f"must not be earlier than now ({self._now!r})")
        heapq.heappush(self._signals, (at, next(self._signal_order), run_id, status))

    @property
    def next_event_time(self) -> float | None:
        """Time (seconds) of the next sweep that would reap or signal, or None."""
        sweep = self._next_sweep_time()
        signal = self._signals[0][0] if self._signals else None
        if sweep is None:
            return signal
        return sweep if signal is None else min(sweep, signal)

    def advance(self, now: float) -> tuple[ServerEvent, ...]:
        """Run the server's timers (sweeps, then signals, in time order) up to `now`.

        Returns what they did, in order. `now` is in seconds.

        Raises:
            UsageError: `now` went backwards or is not finite.
        """
        now = _finite("now", now)
        if now < self._now:
            raise UsageError("now", now, f"must not be earlier than {self._now!r}")
        events: list[ServerEvent] = []
        while True:
            sweep = self._next_sweep_time()
            signal = self._signals[0][0] if self._signals else None
            if (
                sweep is not None
                and sweep <= now
                and (signal is None or sweep <= signal)
            ):
                self._sweep(sweep, events)
            elif signal is not None and signal <= now:
                self._signal(events)
            else:
                break
        self._now = now
        self._swept = max(self._swept, self._last_sweep_index(now))
        return tuple(events)

    def _last_sweep_index(self, when: float) -> float:
        """Index of the last sweep at or before `when`, exact despite rounding."""
        k = math.floor(when / self._reap_period)
        while k * self._reap_period > when:
            k -= 1
        return k

    def _next_sweep_time(self) -> float | None:
        live = [
            r.deadline for r in self._runs.values() if r.status not in FINAL_STATUSES
        ]
        if not live:
            return None
        period = self._reap_period
        earliest = min(live)
        k = math.ceil(earliest / period)
        while k * period < earliest:
            k += 1
        return max(k, self._swept + 1) * period

    def _sweep(self, when: float, events: list[ServerEvent]) -> None:
        self._now = when
        self._swept = self._last_sweep_index(when)
        for run_id, run in self._runs.items():
            if run.status not in FINAL_STATUSES and run.deadline <= when:
                reap = Reap(
                    time=when, run_id=run_id, status=run.status, deadline=run.deadline
                )
                run.status = LOST_STATUS
                self._reaps.append(reap)
                events.append(reap)

    def _signal(self, events: list[ServerEvent]) -> None:
        at, _, run_id, status = heapq.heappop(self._signals)
        self._now = at
        run = self._runs[run_id]
        old = run.status
        applied = status == old or status in TRANSITIONS[old]
        if applied:
            run.status = status
        events.append(
            ServerSignal(time=at, run_id=run_id, old=old, new=status, applied=applied)
        )


# ------------------------------------------------------------------------- network


@dataclass(frozen=True, slots=True, kw_only=True)
class OutageWindow:
    """The network is down for requests sent in `[start, end)` (seconds).

    Attributes:
        start: first instant of the outage (seconds).
        end: first instant after it (seconds).
        mode: "refuse": the connection is refused, and the client learns it one
            round trip later (`handle_failure`); "hang": no answer ever comes, and
            the client gives up at the request's deadline.
    """

    start: float
    end: float
    mode: Literal["refuse", "hang"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerErrorWindow:
    """Requests reaching the server in `[start, end)` (seconds) get an HTTP error.

    The heartbeat is not processed: the run's status and deadline are untouched.

    Attributes:
        start: first instant of the window (seconds).
        end: first instant after it (seconds).
        status_code: the HTTP status answered, 500 to 599 (typically 500 or 503).
        retry_after: the Retry-After header (seconds), or None for none.
    """

    start: float
    end: float
    status_code: int = 503
    retry_after: float | None = None


def _check_window(start: float, end: float) -> None:
    _finite("start", start)
    _finite("end", end)
    if not start < end:
        raise UsageError("end", end, f"must be later than start ({start!r})")


class SimNetwork:
    """A seeded network between the client and the server.

    Args:
        seed: seeds the network's `random.Random`; the same seed gives the same
            latencies and losses.
        latency_min: smallest one-way latency (seconds, >= 0).
        latency_max: largest one-way latency (seconds, >= latency_min); each leg's
            latency is drawn uniformly between the two.
        loss: probability (0 to 1) that a leg is lost, drawn for the request and
            for the answer separately. Either way the client sees a timeout; a lost
            answer means the server did process the heartbeat.
        outages: windows in which requests sent fail (see `OutageWindow`).
        server_errors: windows in which requests arriving get an HTTP error.

    Raises:
        UsageError: a setting breaks its rule; the message names it.
    """

    __slots__ = (
        "_latency_max",
        "_latency_min",
        "_loss",
        "_outages",
        "_rng",
        "_server_errors",
    )

    def __init__(
        self,
        *,
        seed: int,
        latency_min: float = 0.01,
        latency_max: float = 0.05,
        loss: float = 0.0,
        outages: Iterable[OutageWindow] = (),
        server_errors: Iterable[ServerErrorWindow] = (),
    ) -> None:
        latency_min = _finite("latency_min", latency_min)
        latency_max = _finite("latency_max", latency_max)
        if latency_min < 0:
            raise UsageError("latency_min", latency_min, "must be >= 0 seconds")
        if latency_max < latency_min:
            raise UsageError("latency_max", latency_max, "must be >= latency_min")
        if (
            isinstance(loss, bool)
            or not isinstance(loss, (int, float))
            or not 0 <= loss <= 1
        ):
            raise UsageError("loss", loss, "must be a probability from 0 to 1")
        outages = tuple(outages)
        for outage in outages:
            _check_window(outage.start, outage.end)
            if outage.mode not in ("refuse", "hang"):
                raise UsageError("mode", outage.mode, 'must be "refuse" or "hang"')
        server_errors = tuple(server_errors)
        for error in server_errors:
            _check_window(error.start, error.end)
            if not 500 <= error.status_code <= 599:
                raise UsageError("status_code", error.status_code, "must be 500 to 599")
            if (
                error.retry_after is not None
                and _finite("retry_after", error.retry_after) < 0
            ):
                raise UsageError("retry_after", error.retry_after, "must be >= 0")
        self._rng = random.Random(seed)
        self._latency_min = latency_min
        self._latency_max = latency_max
        self._loss = float(loss)
        self._outages = outages
        self._server_errors = server_errors

    def latency(self) -> float:
        """Draw one leg's latency (seconds)."""
        return self._rng.uniform(self._latency_min, self._latency_max)

    def lost(self) -> bool:
        """Draw whether one leg is lost (never draws when `loss` is 0)."""
        return self._loss > 0 and self._rng.random() < self._loss

    def outage_at(self, when: float) -> OutageWindow | None:
        """The first outage window covering time `when` (seconds), or None."""
        return next((o for o in self._outages if o.start <= when < o.end), None)

    def server_error_at(self, when: float) -> ServerErrorWindow | None:
        """The first server-error window covering time `when` (seconds), or None."""
        return next((e for e in self._server_errors if e.start <= when < e.end), None)


# ---------------------------------------------------------------------- simulation

EntryKind = Literal[
    "send",
    "server",
    "answer",
    "failure",
    "timeout",
    "lapsed",
    "restored",
    "status",
    "set_status",
    "stop",
    "signal",
    "reap",
]
"""What a timeline entry records.

send: the machine sent a beat; server: the server received one; answer / failure:
its outcome reached the machine; timeout: the machine gave up on a request at its
deadline; lapsed / restored / status: the machine's LeaseLapsed, LeaseRestored and
StatusChanged; set_status / stop: scheduled local inputs; signal / reap: the
server's own timers.
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class TimelineEntry:
    """One step of a simulation.

    Attributes:
        time: virtual time (seconds) at which it happened.
        kind: what happened (see `EntryKind`).
        detail: a human-readable description.
    """

    time: float
    kind: EntryKind
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulationResult:
    """The outcome of `Simulation.run`.

    Attributes:
        timeline: every step so far, in order.
        stats: the machine's counters at the end.
        reaps: every reap the server made (its reap log).
        client_status: the machine's `current_status` at the end.
        server_status: the status the server holds for the run at the end.
        end: the virtual time (seconds) the simulation ran to.
    """

    timeline: tuple[TimelineEntry, ...]
    stats: HeartbeatStats
    reaps: tuple[Reap, ...]
    client_status: str
    server_status: str
    end: float


@dataclass(frozen=True, slots=True)
class _Arrival:
    beat: SendHeartbeat


@dataclass(frozen=True, slots=True)
class _Answer:
    seq: int
    status: str


@dataclass(frozen=True, slots=True)
class _Failure:
    seq: int
    reason: str
    retry_after: float | None


@dataclass(frozen=True, slots=True)
class _SetStatus:
    status: str


@dataclass(frozen=True, slots=True)
class _Stop:
    pass


_Event = _Arrival | _Answer | _Failure | _SetStatus | _Stop


class Simulation:
    """Drive one `HeartbeatMachine` against a `SimServer` over a `SimNetwork`.

    Construct the machine at `clock.now`. The simulation registers `run_id` on
    the server at that time with the machine's status and increment, as Jobmon
    creates the run before its heartbeats begin.

    Args:
        machine: the machine under test; seed its `rng` for a reproducible run.
        clock: the virtual clock; only the simulation moves it.
        server: the simulated server.
        network: the simulated network.
        run_id: the run's id on the server.

    Raises:
        UsageError: the server already has `run_id`, or the machine's status is
            not one of `TRANSITIONS`.
    """

    __slots__ = (
        "_clock",
        "_machine",
        "_network",
        "_order",
        "_queue",
        "_requests",
        "_run_id",
        "_server",
        "_timeline",
    )

    def __init__(
        self,
        machine: HeartbeatMachine,
        *,
        clock: VirtualClock,
        server: SimServer,
        network: SimNetwork,
        run_id: int = 1,
    ) -> None:
        server.add_run(
            run_id,
            status=machine.current_status,
            next_report_increment=machine.next_report_increment,
            now=clock.now,
        )
        self._machine = machine
        self._clock = clock
        self._server = server
        self._network = network
        self._run_id = run_id
        self._queue: list[tuple[float, int, _Event]] = []
        self._order = count()
        self._requests: dict[int, SendHeartbeat] = {}
        self._timeline: list[TimelineEntry] = []

    def schedule_set_status(self, at: float, status: str) -> None:
        """Call `machine.set_status(status)` at time `at` (seconds).

        Raises:
            UsageError: `at` is in the past, or `status` is not a non-empty string.
        """
        if type(status) is not str or not status:
            raise UsageError("status", status, "must be a non-empty string")
        self._push(self._check_at(at), _SetStatus(status))

    def schedule_stop(self, at: float) -> None:
        """Call `machine.stop()` at time `at` (seconds); the server keeps reaping.

        Raises:
            UsageError: `at` is in the past.
        """
        self._push(self._check_at(at), _Stop())

    def schedule_signal(self, at: float, status: str) -> None:
        """Have the server try to move the run to `status` at time `at` (seconds).

        Raises:
            UsageError: `at` is in the past.
        """
        self._server.schedule_signal(self._run_id, status, self._check_at(at))

    def run(self, until: float) -> SimulationResult:
        """Run every event up to and including time `until` (seconds).

        May be called again with a later `until` to continue.

        Raises:
            UsageError: `until` is earlier than the clock.
            RuntimeError: the machine broke its contract (a `tick` that acted left
                `next_deadline` at or before `now`), which would loop forever.
        """
        until = self._check_at(until)
        while True:
            when = self._next_time()
            if when is None or when > until:
                break
            self._clock.advance_to(when)
            for event in self._server.advance(when):
                self._record_server_event(event)
            if self._queue and self._queue[0][0] <= when:
                _, _, queued = heapq.heappop(self._queue)
                self._handle(queued)
            else:
                deadline = self._machine.next_deadline
                if deadline is not None and deadline <= when:
                    self._tick()
        self._clock.advance_to(until)
        return SimulationResult(
            timeline=tuple(self._timeline),
            stats=self._machine.stats,
            reaps=self._server.reaps,
            client_status=self._machine.current_status,
            server_status=self._server.status(self._run_id),
            end=until,
        )

    # ---------------------------------------------------------------- internals

    def _check_at(self, at: float) -> float:
        at = _finite("at", at)
        if at < self._clock.now:
            raise UsageError(
                "at", at, f"must not be earlier than now ({self._clock.now!r})"
            )
        return at

    def _push(self, at: float, event: _Event) -> None:
        heapq.heappush(self._queue, (at, next(self._order), event))

    def _next_time(self) -> float | None:
        candidates = [self._server.next_event_time, self._machine.next_deadline]
        if self._queue:
            candidates.append(self._queue[0][0])
        times = [t for t in candidates if t is not None]
        # A wakeup already due is served now: the clock never goes back.
        return max(min(times), self._clock.now) if times else None

    def _record(self, kind: EntryKind, detail: str) -> None:
        self._timeline.append(
            TimelineEntry(time=self._clock.now, kind=kind, detail=detail)
        )

    def _record_server_event(self, event: ServerEvent) -> None:
        if isinstance(event, Reap):
            self._record(
                "reap",
                f"run {event.run_id} lost: {event.status} -> {LOST_STATUS}"
                f" (deadline {event.deadline:.0f} passed)",
            )
        elif event.applied:
            self._record(
                "signal", f"server moves run {event.run_id}: {event.old} -> {event.new}"
            )
        else:
            self._record(
                "signal",
                f"server refuses to move run {event.run_id}"
                f" from {event.old} to {event.new}",
            )

    def _handle(self, event: _Event) -> None:
        if isinstance(event, _Arrival):
            self._arrive(event.beat)
            return
        machine = self._machine
        now = self._clock.now
        before = machine.stats
        flight = machine.in_flight
        was_stopped = machine.stopped
        entry: tuple[EntryKind, str]
        if isinstance(event, _Answer):
            actions = machine.handle_response(event.seq, event.status, now)
            outcome = self._outcome(before, was_stopped)
            entry = ("answer", f"#{event.seq} {event.status}: {outcome}")
        elif isinstance(event, _Failure):
            actions = machine.handle_failure(event.seq, now, event.retry_after)
            outcome = self._outcome(before, was_stopped)
            suffix = f": {outcome}" if outcome else ""
            entry = ("failure", f"#{event.seq} {event.reason}{suffix}")
        elif isinstance(event, _SetStatus):
            actions = machine.set_status(event.status, now)
            entry = ("set_status", f"local status {event.status}")
        else:
            actions = machine.stop(now)
            entry = ("stop", "machine stopped; later answers are ignored")
        self._report(before, flight, actions, entry)

    def _tick(self) -> None:
        machine = self._machine
        now = self._clock.now
        before = machine.stats
        flight = machine.in_flight
        self._report(before, flight, machine.tick(now), None)
        deadline = machine.next_deadline
        if deadline is not None and deadline <= now:
            raise RuntimeError(
                f"machine left next_deadline={deadline!r} <= now={now!r}"
            )

    def _outcome(self, before: HeartbeatStats, was_stopped: bool) -> str:
        """How the machine took the answer or failure it was just given.

        Empty for the ordinary failure, which needs no comment.
        """
        after = self._machine.stats
        if was_stopped:
            return "ignored, machine stopped"
        if after.stale_responses > before.stale_responses:
            return "stale, no longer in flight"
        if after.renewals > before.renewals:
            return f"renewed, lease until {self._machine.lease_deadline:.3f}"
        if after.signals > before.signals:
            return "a signal, not a renewal"
        return ""

    def _report(
        self,
        before: HeartbeatStats,
        flight: int | None,
        actions: tuple[Action, ...],
        entry: tuple[EntryKind, str] | None,
    ) -> None:
        """Record one machine input, in causal order, and carry out its actions.

        Order: a timeout and a lapse (what the passage of time caused, which the
        machine applies first), then the input itself, then what it caused.
        """
        if flight is not None and self._machine.stats.timeouts > before.timeouts:
            deadline = self._requests[flight].deadline
            self._record("timeout", f"#{flight} no answer by {deadline:.3f}, given up")
        for action in actions:
            if isinstance(action, LeaseLapsed):
                self._record(
                    "lapsed",
                    f"lease ran out at {action.deadline:.3f}; the server may reap",
                )
        if entry is not None:
            self._record(*entry)
        for action in actions:
            if isinstance(action, SendHeartbeat):
                self._send(action)
            elif isinstance(action, StatusChanged):
                self._record(
                    "status", f"{action.old} -> {action.new}, signalled by the server"
                )
            elif isinstance(action, LeaseRestored):
                self._record(
                    "restored",
                    f"lease live again until {action.deadline:.3f}"
                    f" (lapsed at {action.lapsed_at:.3f})",
                )

    def _send(self, beat: SendHeartbeat) -> None:
        network = self._network
        now = self._clock.now
        self._requests[beat.seq] = beat
        fate = ""
        outage = network.outage_at(now)
        if outage is not None and outage.mode == "refuse":
            fate = " (network down: refused)"
            # The refusal comes back like an answer: one round trip later.
            rtt = network.latency() + network.latency()
            self._push(now + rtt, _Failure(beat.seq, "connection refused", None))
        elif outage is not None:
            fate = " (network down: no answer will come)"
        elif network.lost():
            fate = " (request lost)"
        else:
            self._push(now + network.latency(), _Arrival(beat))
        self._record(
            "send",
            f"#{beat.seq} {beat.status}, give up at {beat.deadline:.3f}{fate}",
        )

    def _arrive(self, beat: SendHeartbeat) -> None:
        network = self._network
        now = self._clock.now
        reply: _Event
        error = network.server_error_at(now)
        if error is not None:
            header = (
                ""
                if error.retry_after is None
                else f", Retry-After {error.retry_after:g} s"
            )
            detail = f"#{beat.seq} {beat.status}: HTTP {error.status_code}{header}"
            detail += ", not processed"
            reply = _Failure(
                beat.seq, f"HTTP {error.status_code}{header}", error.retry_after
            )
        else:
            held = self._server.status(self._run_id)
            answer = self._server.log_heartbeat(
                self._run_id, beat.status, beat.next_report_increment, now
            )
            if not answer.renewed:
                detail = (
                    f"#{beat.seq} {beat.status} refused, run holds {answer.status};"
                    f" deadline stays {answer.deadline:.0f}"
                )
            elif held != beat.status:
                detail = f"#{beat.seq} {held} -> {beat.status} accepted"
                detail += f", deadline {answer.deadline:.0f}"
            else:
                detail = f"#{beat.seq} {beat.status} accepted"
                detail += f", deadline {answer.deadline:.0f}"
            reply = _Answer(beat.seq, answer.status)
        if network.lost():
            detail += " (answer lost)"
        else:
            self._push(now + network.latency(), reply)
        self._record("server", detail)


def format_timeline(entries: Iterable[TimelineEntry]) -> str:
    """Render timeline entries one per line: time (seconds), kind, detail."""
    return "\n".join(f"{e.time:9.3f} s  {e.kind:<10} {e.detail}" for e in entries)
