"""Fault injection: every driver against a hostile server, on real loopback sockets.

Strategy: one harness, `run_scenario`, runs a driver (the thread driver, or the
anyio driver on asyncio or on trio) against `HostileServer` for a bounded real
time, with a script that picks a fault for each request by when it arrives. It
keeps three records of what happened:

- the machine's: every input the driver gave it, with the state before and after
  and the actions it returned (`RecordingMachine` only records, it changes
  nothing);
- the gateway's: every exchange the driver started, when it ended and how
  (`RecordingGateway` around `HttpGateway`);
- the wire's: every request the server read (`HostileServer.requests`).

`check_run` then checks the invariants on those records:

- the loop survives: nothing raised out of the driver, nothing was logged as an
  error, a beat went out at least every interval to the end, and stopping was
  prompt and left no task, thread or socket behind (nor a ResourceWarning);
- single flight: the machine never sent with a request in flight, no two
  exchanges overlapped (not even a cancelled one still closing its connection
  and the next), and the server never saw two requests at once;
- deadlines: each request's deadline follows rule 5, falls inside a live lease,
  and every exchange (on both ends of the wire) ended by it;
- backoff: each retry went out when rule 6 says, replayed exactly with a twin of
  the machine's seeded random generator (no earlier, and no later than the
  driver's wake-up slack);
- the lapse is reported exactly once per outage, on time, and the recovery
  exactly once; the application heard exactly what the machine said;
- no lost local status: a status set during the faults went out at once (or as
  soon as the request in flight ended), every later beat carried it, and it is
  the last status the server saw;
- memory stays bounded against an endless body (the tracemalloc peak of each
  exchange), and the client gave up on it at once.

The matrix (`SCENARIOS` x `ADAPTERS`): every fault of the hostile server on the
thread driver and on the async driver under asyncio and under trio. A failing
fault runs from the start for 0.7 s, so the lease lapses once and comes back
once; healthy variations (keep-alive, idle drops, 1xx, chunked, HTTP/1.0) run
together and must never fail; outage-then-recovery is the server stopping and
starting on its port; flapping alternates quick errors, refusals and a hang.

Times: intervals of 0.2 s and a lease of 0.6 s (lease_margin=0: this server does
not round deadlines), so a fault window of 0.7 s after the last renewal always
lapses the lease, whatever the scheduling. The slack for lateness of threads and
event loops is 0.1 s; nothing waits on a bare sleep: the harness lets the driver
run until set times, and the server's waits end on socket events.
"""

from __future__ import annotations

import bisect
import gc
import itertools
import logging
import os
import random
import threading
import time
import tracemalloc
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import anyio
import pytest

from sansbeat import (
    Action,
    HeartbeatMachine,
    HeartbeatStats,
    LeaseLapsed,
    LeaseRestored,
    SendHeartbeat,
)
from sansbeat.adapters import HeartbeatRequestFailed
from sansbeat.adapters._gateway import InterruptibleGateway
from sansbeat.adapters.asyncio import AsyncHeartbeatDriver
from sansbeat.adapters.http import HttpGateway
from sansbeat.adapters.sync import SyncHeartbeatDriver
from tests.hostile_server import (
    Answer,
    BadBody,
    Chunked,
    CloseBeforeResponse,
    Drip,
    EndlessBody,
    EndlessInterim,
    Fault,
    Garbage,
    HostileServer,
    Http10,
    HttpError,
    Interim,
    NeverAnswer,
    Request,
    ResetMidResponse,
)

RUN_ID = 7
INTERVAL = 0.2
BUFFER = 3.0
#: The lease (seconds): no margin, the hostile server keeps no deadline at all.
LEASE = INTERVAL * BUFFER
REQUEST_TIMEOUT = 0.3
#: The longest a request may take: min(request_timeout, interval).
BUDGET = min(REQUEST_TIMEOUT, INTERVAL)
BACKOFF = 0.05
SEED = 1729
#: Lateness allowed to a thread or an event loop on a loaded machine (seconds).
SLACK = 0.1
#: A fault window this long after the last renewal always lapses the lease: a
#: renewal needs a request answered after it, later than the lease's end.
OUTAGE = LEASE + 0.1
#: Healthy time after the last fault window: the next beat comes within an
#: interval, and then some more renewals.
TAIL = 0.4
#: The status the application sets during the faults.
NEW_STATUS = "D"
SET_STATUS_AT = 0.35
#: The most memory (bytes) one exchange with an endless body may trace at its
#: peak: the body limit is 64 KiB, reads take up to 256 KiB at a time.
MEMORY_LIMIT = 2 * 1024 * 1024

Adapter = Literal["sync", "asyncio", "trio"]
ADAPTERS: tuple[Adapter, ...] = ("sync", "asyncio", "trio")

# ------------------------------------------------------------------ recording


@dataclass(frozen=True, slots=True)
class MachineState:
    """What the harness reads of the machine around each input."""

    in_flight: int | None
    status: str
    lease_deadline: float
    lapsed: bool
    stats: HeartbeatStats


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One input to the machine: its kind and arguments, and what it did."""

    kind: str
    now: float
    before: MachineState
    after: MachineState
    actions: tuple[Action, ...]
    seq: int | None = None
    status: str | None = None
    retry_after: float | None = None

    @property
    def sends(self) -> list[SendHeartbeat]:
        return [a for a in self.actions if isinstance(a, SendHeartbeat)]

    @property
    def events(self) -> list[Action]:
        return [a for a in self.actions if not isinstance(a, SendHeartbeat)]

    @property
    def ended_attempt(self) -> bool:
        """Whether this input ended the attempt in flight (any outcome)."""
        b, a = self.before.stats, self.after.stats
        return (
            a.timeouts > b.timeouts
            or a.failures > b.failures
            or a.renewals > b.renewals
            or a.signals > b.signals
            or (self.kind == "abandon" and self.after.in_flight is None)
        )


class RecordingMachine(HeartbeatMachine):
    """The machine of every run, recording each input (and changing nothing)."""

    __slots__ = ("steps",)

    def __init__(self, now: float) -> None:
        super().__init__(
            interval=INTERVAL,
            report_by_buffer=BUFFER,
            initial_status="R",
            now=now,
            request_timeout=REQUEST_TIMEOUT,
            backoff_initial=BACKOFF,
            beat_at_start=True,
            rng=random.Random(SEED),
        )
        self.steps: list[Step] = []

    def _state(self) -> MachineState:
        return MachineState(
            in_flight=self.in_flight,
            status=self.current_status,
            lease_deadline=self.lease_deadline,
            lapsed=self.lapsed,
            stats=self.stats,
        )

    def _log(
        self,
        kind: str,
        now: float,
        before: MachineState,
        actions: tuple[Action, ...],
        *,
        seq: int | None = None,
        status: str | None = None,
        retry_after: float | None = None,
    ) -> tuple[Action, ...]:
        self.steps.append(
            Step(
                kind=kind,
                now=now,
                before=before,
                after=self._state(),
                actions=actions,
                seq=seq,
                status=status,
                retry_after=retry_after,
            )
        )
        return actions

    def tick(self, now: float) -> tuple[Action, ...]:
        before = self._state()
        return self._log("tick", now, before, super().tick(now))

    def handle_response(self, seq: int, status: str, now: float) -> tuple[Action, ...]:
        before = self._state()
        actions = super().handle_response(seq, status, now)
        return self._log("response", now, before, actions, seq=seq, status=status)

    def handle_failure(
        self, seq: int, now: float, retry_after: float | None = None
    ) -> tuple[Action, ...]:
        before = self._state()
        actions = super().handle_failure(seq, now, retry_after)
        return self._log(
            "failure", now, before, actions, seq=seq, retry_after=retry_after
        )

    def set_status(self, status: str, now: float) -> tuple[Action, ...]:
        before = self._state()
        actions = super().set_status(status, now)
        return self._log("set_status", now, before, actions, status=status)

    def abandon(self, seq: int, now: float) -> tuple[Action, ...]:
        before = self._state()
        return self._log("abandon", now, before, super().abandon(seq, now), seq=seq)

    def stop(self, now: float) -> tuple[Action, ...]:
        before = self._state()
        return self._log("stop", now, before, super().stop(now))


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    """One exchange the driver asked of the gateway, as the client saw it.

    `outcome` is "ok", the failure's reason, "cancelled" (async: the driver's
    deadline or its stop), or the type of any other exception. `memory` is the
    peak of traced memory during the exchange (bytes), when traced.
    """

    status: str
    started: float
    ended: float
    outcome: str
    http_status: int | None = None
    retry_after: float | None = None
    memory: int | None = None


class RecordingGateway(InterruptibleGateway):
    """`HttpGateway`, recording each exchange with its start, end and outcome."""

    def __init__(self, inner: HttpGateway, clock: Callable[[], float]) -> None:
        self.inner = inner
        self.calls: list[Call] = []
        self._clock = clock
        self._memory_base = 0

    def _begin(self) -> float:
        if tracemalloc.is_tracing():
            tracemalloc.reset_peak()
            self._memory_base = tracemalloc.get_traced_memory()[0]
        return self._clock()

    def _memory(self) -> int | None:
        if not tracemalloc.is_tracing():
            return None
        return tracemalloc.get_traced_memory()[1] - self._memory_base

    def _record(self, status: str, started: float, error: BaseException | None) -> None:
        if error is None:
            outcome, http_status, retry_after = "ok", None, None
        elif isinstance(error, HeartbeatRequestFailed):
            outcome, http_status = error.reason, error.http_status
            retry_after = error.retry_after
        else:
            outcome, http_status, retry_after = type(error).__name__, None, None
        self.calls.append(
            Call(
                status=status,
                started=started,
                ended=self._clock(),
                outcome=outcome,
                http_status=http_status,
                retry_after=retry_after,
                memory=self._memory(),
            )
        )

    def log_heartbeat_sync(
        self, status: str, next_report_increment: float, *, timeout: float | None = None
    ) -> object:
        started = self._begin()
        try:
            answer = self.inner.log_heartbeat_sync(
                status, next_report_increment, timeout=timeout
            )
        except Exception as error:
            self._record(status, started, error)
            raise
        self._record(status, started, None)
        return answer

    async def log_heartbeat(self, status: str, next_report_increment: float) -> object:
        started = self._begin()
        try:
            answer = await self.inner.log_heartbeat(status, next_report_increment)
        except anyio.get_cancelled_exc_class():
            self.calls.append(
                Call(
                    status=status,
                    started=started,
                    ended=self._clock(),
                    outcome="cancelled",
                    memory=self._memory(),
                )
            )
            raise
        except Exception as error:
            self._record(status, started, error)
            raise
        self._record(status, started, None)
        return answer

    def interrupt(self) -> None:
        self.inner.interrupt()


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


# ------------------------------------------------------------------ scenarios

#: Picks the fault for a request, given the seconds since the run began.
Picker = Callable[[Request, float], Fault]


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """A fault script and what the checks expect of it.

    Attributes:
        name: the test id.
        script: makes a fresh picker for each run.
        duration: seconds the driver runs.
        lapses: lapses (each followed by one recovery) expected.
        refuse: windows (seconds from the start) in which the server is
            stopped, so connections are refused.
        allowed: failure outcomes of exchanges that may occur.
        required: for each set, some exchange failed with one of its outcomes.
        fast: every failed exchange ended at once (within SLACK of its start).
        trace_memory: measure the peak of traced memory during each exchange.
        http: (status code, Retry-After) pairs the client must have seen.
        served: faults the server must have served at least once.
        reuse: some request came on a kept-alive connection, and one such
            connection was dropped while idle.
    """

    name: str
    script: Callable[[], Picker]
    duration: float
    lapses: int
    refuse: tuple[tuple[float, float], ...] = ()
    allowed: frozenset[str] = frozenset()
    required: tuple[frozenset[str], ...] = ()
    fast: bool = False
    trace_memory: bool = False
    http: frozenset[tuple[int, float | None]] = frozenset()
    served: tuple[Fault, ...] = ()
    reuse: bool = False


def phases(*windows: tuple[float, float, Sequence[Fault]]) -> Callable[[], Picker]:
    """A script: requests arriving in a window [start, end) get its faults in
    turn; any other request gets a healthy answer."""

    def make() -> Picker:
        turns = [itertools.cycle(faults) for _, _, faults in windows]

        def pick(request: Request, elapsed: float) -> Fault:
            for (start, end, _), turn in zip(windows, turns, strict=True):
                if start <= elapsed < end:
                    return next(turn)
            return Answer()

        return pick

    return make


class _DropReusedThenHang:
    """Keep-alive, but a request on a kept connection is dropped without a byte
    after 0.18 s, and the resend on a new connection is never answered."""

    def __init__(self) -> None:
        self._previous: Fault | None = None

    def __call__(self, request: Request, elapsed: float) -> Fault:
        fault: Fault
        if isinstance(self._previous, CloseBeforeResponse):
            fault = NeverAnswer()
        elif request.on_connection:
            fault = CloseBeforeResponse(delay=0.18)
        else:
            fault = Answer(keep_alive=True)
        self._previous = fault
        return fault


TIMEOUTS = frozenset({"timeout", "cancelled"})
#: What a request caught by the server's stop may see, besides a refusal.
CUT_OFF = frozenset({"closed_before_response", "closed_early", "network"})


def _one_fault(
    name: str,
    fault: Fault,
    outcomes: frozenset[str],
    *,
    fast: bool = True,
    trace_memory: bool = False,
) -> Scenario:
    """`fault` for every request from the start for OUTAGE seconds, then health."""
    return Scenario(
        name=name,
        script=phases((0.0, OUTAGE, [fault])),
        duration=OUTAGE + TAIL,
        lapses=1,
        allowed=outcomes,
        required=(outcomes,),
        fast=fast,
        trace_memory=trace_memory,
        served=(fault,),
    )


HTTP_ERRORS = (
    HttpError(500),
    HttpError(502, retry_after="1"),
    HttpError(503),
    HttpError(503, retry_after="1"),
    HttpError(429, retry_after="1"),
    HttpError(404),
)
BENIGN = (
    Answer(),
    Answer(keep_alive=True),
    Interim(then=Answer(keep_alive=True)),
    Chunked(keep_alive=True),
    Answer(keep_alive=True, idle_timeout=0.05),
    Http10(),
    Chunked(),
    Interim(codes=(103,)),
)
_HANG = (1.95, 2.65)

SCENARIOS = (
    # Outage then recovery: the server stops (refusing connections) after a
    # healthy start and comes back on the same port.
    Scenario(
        name="refused-then-recovers",
        script=phases(),
        duration=0.25 + OUTAGE + TAIL,
        lapses=1,
        refuse=((0.25, 0.25 + OUTAGE),),
        allowed=CUT_OFF | {"connect"},
        required=(frozenset({"connect"}),),
        fast=True,
    ),
    _one_fault("never-answers", NeverAnswer(), TIMEOUTS, fast=False),
    _one_fault("one-byte-per-second", Drip(period=1.0), TIMEOUTS, fast=False),
    # A byte every 50 ms: each read is quick, the whole answer takes 15 s.
    _one_fault(
        "trickles-past-the-deadline",
        Drip(period=0.05, padding=200),
        TIMEOUTS,
        fast=False,
    ),
    _one_fault(
        "resets-mid-response",
        ResetMidResponse(),
        frozenset({"network", "closed_early"}),
    ),
    _one_fault(
        "closes-before-any-byte",
        CloseBeforeResponse(),
        frozenset({"closed_before_response"}),
    ),
    _one_fault("sends-garbage", Garbage(), frozenset({"protocol_error"})),
    _one_fault(
        "endless-chunked-body",
        EndlessBody("chunked"),
        frozenset({"body_too_large"}),
        trace_memory=True,
    ),
    _one_fault(
        "huge-content-length",
        EndlessBody("length"),
        frozenset({"body_too_large"}),
        trace_memory=True,
    ),
    _one_fault(
        "endless-body-until-close",
        EndlessBody("eof"),
        frozenset({"body_too_large"}),
        trace_memory=True,
    ),
    # 1xx after 1xx, never a final answer: bytes keep coming until the deadline.
    _one_fault("endless-interim-responses", EndlessInterim(), TIMEOUTS, fast=False),
    _one_fault(
        "invalid-json", BadBody(b'{"status": "R"'), frozenset({"malformed_body"})
    ),
    _one_fault(
        "json-without-status",
        BadBody(b'{"state":"R"}\n'),
        frozenset({"malformed_body"}),
    ),
    Scenario(
        name="http-errors-with-and-without-retry-after",
        script=phases((0.0, 0.9, HTTP_ERRORS)),
        duration=0.9 + TAIL,
        lapses=1,
        allowed=frozenset({"http_status"}),
        required=(frozenset({"http_status"}),),
        fast=True,
        http=frozenset(
            {(500, None), (502, 1.0), (503, None), (503, 1.0), (429, 1.0), (404, None)}
        ),
        served=HTTP_ERRORS,
    ),
    # Keep-alive and Connection: close, idle drops, 1xx, chunked, HTTP/1.0:
    # all healthy answers, none may fail.
    Scenario(
        name="healthy-answers-in-every-framing",
        script=phases((0.0, 10.0, BENIGN)),
        duration=1.75,
        lapses=0,
        fast=True,
        served=BENIGN,
        reuse=True,
    ),
    # A kept-alive connection dropped while a request waits on it: the gateway
    # sends once more on a new connection, within the same deadline.
    Scenario(
        name="keep-alive-dropped-mid-request",
        script=_DropReusedThenHang,
        duration=1.2,
        lapses=0,
        allowed=TIMEOUTS,
        required=(TIMEOUTS,),
    ),
    # Flapping: quick alternation (no lapse), then refusals, health, a hang and
    # health again: two lapses, two recoveries.
    Scenario(
        name="flapping",
        script=phases(
            (0.3, 0.9, [HttpError(503), Answer()]),
            (_HANG[0], _HANG[1], [NeverAnswer()]),
        ),
        duration=_HANG[1] + 0.45,
        lapses=2,
        refuse=((0.9, 0.9 + OUTAGE),),
        allowed=TIMEOUTS | CUT_OFF | {"http_status", "connect"},
        required=(frozenset({"http_status"}), frozenset({"connect"}), TIMEOUTS),
    ),
)

# -------------------------------------------------------------------- harness


@dataclass(kw_only=True)
class Run:
    """Everything one run recorded. Times are on the driver's clock, except the
    server's, which are `time.monotonic()` (add `offset`)."""

    adapter: Adapter
    scenario: Scenario
    t0: float
    offset: float
    stop_at: float
    stopped_in: float
    steps: list[Step]
    calls: list[Call]
    events: list[tuple[float, Action]]
    errors: list[BaseException]
    alive: bool
    final_status: str
    leftover_tasks: list[str] = field(default_factory=list)
    requests: tuple[Request, ...] = ()
    idle_drops: int = 0
    logs: list[logging.LogRecord] = field(default_factory=list)
    leaked_threads: list[str] = field(default_factory=list)
    leaked_sockets: set[str] = field(default_factory=set)
    resource_warnings: list[str] = field(default_factory=list)

    @property
    def sends(self) -> list[tuple[float, SendHeartbeat, Step]]:
        return [(s.now, send, s) for s in self.steps for send in s.sends]


def _timeline(
    scenario: Scenario, server: HostileServer, set_status: Callable[[str], None]
) -> list[tuple[float, Callable[[], None]]]:
    """What the harness does during a run, at seconds from the start."""
    actions: list[tuple[float, Callable[[], None]]] = [
        (SET_STATUS_AT, lambda: set_status(NEW_STATUS))
    ]
    for start, end in scenario.refuse:
        actions += [(start, server.stop), (end, server.start)]
    return sorted(actions, key=lambda action: action[0])


def _run_sync(scenario: Scenario, server: HostileServer) -> Run:
    clock = time.monotonic
    t0 = clock()
    pick = scenario.script()
    server.set_script(lambda request: pick(request, request.arrived_at - t0))
    machine = RecordingMachine(t0)
    inner = HttpGateway(server.base_url, RUN_ID)
    gateway = RecordingGateway(inner, clock)
    events: list[tuple[float, Action]] = []
    driver = SyncHeartbeatDriver(
        machine, gateway, on_event=lambda event: events.append((clock(), event))
    )
    stop = threading.Event()
    errors: list[BaseException] = []

    def heartbeat() -> None:
        try:
            driver.run(stop)
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=heartbeat, name="faults-driver")
    thread.start()
    meanwhile = threading.Event()  # never set: waiting on it lets the driver run
    for at, action in _timeline(scenario, server, driver.set_status):
        meanwhile.wait(max(0.0, t0 + at - clock()))
        action()
    meanwhile.wait(max(0.0, t0 + scenario.duration - clock()))
    stop_at = clock()
    stop.set()
    thread.join(timeout=5.0)
    stopped_in = clock() - stop_at
    inner.close()
    return Run(
        adapter="sync",
        scenario=scenario,
        t0=t0,
        offset=0.0,
        stop_at=stop_at,
        stopped_in=stopped_in,
        steps=machine.steps,
        calls=gateway.calls,
        events=events,
        errors=errors,
        alive=thread.is_alive(),
        final_status=machine.current_status,
    )


async def _run_async(
    scenario: Scenario, server: HostileServer, adapter: Adapter
) -> Run:
    clock = anyio.current_time  # the framework's own clock (offset under trio)
    t0 = clock()
    monotonic_t0 = time.monotonic()
    pick = scenario.script()
    server.set_script(lambda request: pick(request, request.arrived_at - monotonic_t0))
    machine = RecordingMachine(t0)
    inner = HttpGateway(server.base_url, RUN_ID)
    gateway = RecordingGateway(inner, clock)
    events: list[tuple[float, Action]] = []
    driver = AsyncHeartbeatDriver(
        machine, gateway, on_event=lambda event: events.append((clock(), event))
    )
    stop = anyio.Event()
    done = anyio.Event()
    errors: list[BaseException] = []
    tasks_before = {task.id for task in anyio.get_running_tasks()}

    async def heartbeat() -> None:
        try:
            await driver.run(stop)
        except Exception as error:
            errors.append(error)
        finally:
            done.set()

    async with anyio.create_task_group() as group:
        group.start_soon(heartbeat)
        for at, action in _timeline(scenario, server, driver.set_status):
            await anyio.sleep_until(t0 + at)
            action()
        await anyio.sleep_until(t0 + scenario.duration)
        stop_at = clock()
        stop.set()
        with anyio.move_on_after(5.0):
            await done.wait()
        stopped_in = clock() - stop_at
    leftover = [
        str(task.name)
        for task in anyio.get_running_tasks()
        if task.id not in tasks_before
    ]
    await inner.aclose()
    return Run(
        adapter=adapter,
        scenario=scenario,
        t0=t0,
        offset=t0 - monotonic_t0,
        stop_at=stop_at,
        stopped_in=stopped_in,
        steps=machine.steps,
        calls=gateway.calls,
        events=events,
        errors=errors,
        alive=not done.is_set(),
        final_status=machine.current_status,
        leftover_tasks=leftover,
    )


def _open_sockets() -> set[str]:
    """This process's open sockets, as "fd:socket:[inode]" (empty without /proc)."""
    found: set[str] = set()
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return found
    for fd in fds:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(f"{fd}:{target}")
    return found


def _warm_up(adapter: Adapter) -> None:
    """One healthy exchange on `adapter`, so that lazy imports are not traced."""

    async def exchange(gateway: HttpGateway) -> None:
        await gateway.log_heartbeat("R", LEASE)
        await gateway.aclose()

    with HostileServer() as server:
        gateway = HttpGateway(server.base_url, RUN_ID)
        if adapter == "sync":
            with gateway:
                gateway.log_heartbeat_sync("R", LEASE, timeout=5.0)
        else:
            anyio.run(exchange, gateway, backend=adapter)


def run_scenario(adapter: Adapter, scenario: Scenario) -> Run:
    """Run `scenario` on `adapter` against a fresh hostile server; record it all."""
    gc.collect()
    threads_before = set(threading.enumerate())
    sockets_before = _open_sockets()
    logs = _Collect()
    logger = logging.getLogger("sansbeat")
    logger.addHandler(logs)
    server = HostileServer()
    server.start()
    try:
        if scenario.trace_memory:
            _warm_up(adapter)
            tracemalloc.start()
        try:
            if adapter == "sync":
                run = _run_sync(scenario, server)
            else:
                run = anyio.run(_run_async, scenario, server, adapter, backend=adapter)
        finally:
            if scenario.trace_memory:
                tracemalloc.stop()
    finally:
        server.stop()
        logger.removeHandler(logs)
    run.requests = server.requests
    run.idle_drops = server.idle_drops
    run.logs = logs.records
    run.leaked_threads = [
        thread.name for thread in threading.enumerate() if thread not in threads_before
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    run.resource_warnings = [
        str(w.message) for w in caught if issubclass(w.category, ResourceWarning)
    ]
    run.leaked_sockets = _open_sockets() - sockets_before
    return run


# --------------------------------------------------------------------- checks


def _rel(run: Run, when: float) -> str:
    return f"{when - run.t0:.3f}"


def _deadline_of(now: float, lease_deadline: float) -> tuple[float, bool]:
    """Rule 5: a request's deadline, and whether the lease window capped it."""
    budget = BUDGET
    half = (lease_deadline - now) / 2
    capped = half >= BACKOFF / 2
    if BACKOFF / 2 <= half < budget:
        budget = half
    return now + budget, capped


def _resolution(run: Run, seq: int) -> Step | None:
    """The input that ended request `seq`'s attempt, if any did."""
    for step in run.steps:
        if step.before.in_flight == seq and step.after.in_flight != seq:
            return step
    return None


def _check_survival(run: Run, problems: list[str]) -> None:
    if run.errors:
        problems.append(f"the driver raised {run.errors!r}")
    if run.alive:
        problems.append("the driver still ran 5 s after it was stopped")
    if run.stopped_in > 0.5:
        problems.append(f"stopping took {run.stopped_in:.3f} s")
    if run.leftover_tasks:
        problems.append(f"tasks left after the task group: {run.leftover_tasks}")
    errors = [r.getMessage() for r in run.logs if r.levelno >= logging.ERROR]
    if errors:
        problems.append(f"errors logged: {errors}")
    times = [when for when, _, _ in run.sends]
    for earlier, later in itertools.pairwise(times):
        if later - earlier > INTERVAL + SLACK:
            problems.append(
                f"no beat from {_rel(run, earlier)} to {_rel(run, later)}: the loop "
                "stalled"
            )
    if not times or run.stop_at - times[-1] > INTERVAL + SLACK:
        problems.append("no beat in the last interval: the loop died")


def _check_sends(run: Run, problems: list[str]) -> None:
    """Single flight, rule 4 and rule 5, and each attempt ended in time."""
    for step in run.steps:
        if len(step.sends) > 1:
            problems.append(f"{len(step.sends)} beats from one input at {step.now}")
        for send in step.sends:
            at = _rel(run, step.now)
            if step.before.in_flight is not None and not step.ended_attempt:
                problems.append(
                    f"beat #{send.seq} at {at} with #{step.before.in_flight} in flight"
                )
            if send.next_report_increment != INTERVAL * BUFFER:
                problems.append(f"beat #{send.seq} asked {send.next_report_increment}")
            lease = step.after.lease_deadline
            deadline, capped = _deadline_of(step.now, lease)
            if abs(send.deadline - deadline) > 1e-9:
                problems.append(
                    f"beat #{send.seq} at {at}: deadline {_rel(run, send.deadline)}, "
                    f"rule 5 says {_rel(run, deadline)}"
                )
            if not step.after.lapsed and capped and send.deadline > lease + 1e-9:
                problems.append(
                    f"beat #{send.seq} at {at} may outlive the live lease "
                    f"({_rel(run, send.deadline)} > {_rel(run, lease)})"
                )
            ended = _resolution(run, send.seq)
            if ended is None:
                problems.append(f"beat #{send.seq} never ended")
            elif ended.now > send.deadline + SLACK and not (
                ended.kind == "abandon" and run.stop_at <= send.deadline + SLACK
            ):
                problems.append(
                    f"beat #{send.seq} ended at {_rel(run, ended.now)} ({ended.kind}), "
                    f"past its deadline {_rel(run, send.deadline)}"
                )


def _check_schedule(run: Run, problems: list[str]) -> None:
    """Rules 2 and 6: each beat goes out when due, replayed with a twin rng."""
    twin = random.Random(SEED)
    failed = 0
    flights: dict[int, tuple[float, SendHeartbeat]] = {}
    last_sent = run.t0
    # (earliest time, time the cause was learnt, why) of the next beat.
    due: tuple[float, float, str] | None = (run.t0, run.t0, "first beat")
    hurried = False  # a new status goes out at once, no backoff

    def after_failure(
        step: Step, at: float, retry_after: float | None, flight: int
    ) -> tuple[float, float, str]:
        nonlocal failed
        failed += 1
        _, send = flights[flight]
        if step.before.status != send.status:
            return at, step.now, "a new status"
        delay = min(BACKOFF * 2.0 ** min(failed - 1, 64), INTERVAL)
        delay *= 0.5 + 0.5 * twin.random()
        if retry_after is not None:
            delay = max(delay, min(retry_after, INTERVAL))
        half = (step.before.lease_deadline - at) / 2
        if half >= BACKOFF / 2:
            delay = min(delay, half)
        why = f"backoff after {failed} failure(s)"
        return min(at + delay, last_sent + INTERVAL), step.now, why

    for step in run.steps:
        before, after = step.before.stats, step.after.stats
        flight = step.before.in_flight
        if flight is not None and after.timeouts > before.timeouts:
            due = after_failure(step, flights[flight][1].deadline, None, flight)
        elif flight is not None and after.failures > before.failures:
            due = after_failure(step, step.now, step.retry_after, flight)
        elif after.renewals + after.signals > before.renewals + before.signals:
            failed = 0
            due = (last_sent + INTERVAL, step.now, "the cadence")
        if step.kind == "set_status" and step.after.status != step.before.status:
            hurried = True
        if step.kind == "abandon" and flight is not None:
            hurried = True
        for send in step.sends:
            if due is not None and not hurried:
                earliest, learnt, why = due
                at = _rel(run, step.now)
                if step.now < earliest - 1e-9:
                    problems.append(
                        f"beat #{send.seq} at {at}, before {why} allows "
                        f"({_rel(run, earliest)})"
                    )
                if step.now > max(earliest, learnt) + SLACK:
                    problems.append(
                        f"beat #{send.seq} at {at}, late for {why} "
                        f"({_rel(run, max(earliest, learnt))})"
                    )
            due, hurried = None, False
            last_sent = step.now
            flights[send.seq] = (step.now, send)
    if due is not None and not hurried and max(due[0], due[1]) + SLACK < run.stop_at:
        problems.append(f"{due[2]} was due at {_rel(run, due[0])}, nothing went out")


def _check_events(run: Run, problems: list[str]) -> None:
    """Rule 8: one lapse per outage, on time, and one recovery; all heard."""
    said = [event for step in run.steps for event in step.events]
    heard = [event for _, event in run.events]
    if said != heard:
        problems.append(f"the machine said {said}, the application heard {heard}")
    kinds = [type(event).__name__ for event in heard]
    expected = ["LeaseLapsed", "LeaseRestored"] * run.scenario.lapses
    if kinds != expected:
        problems.append(f"events {kinds}, expected {expected}")
    # The thread driver learns of a lapse when a request that may outlive the
    # lease (less than backoff_initial was left) ends: at most BUDGET late.
    allowed = SLACK + (BUDGET if run.adapter == "sync" else 0.0)
    for step in run.steps:
        for event in step.events:
            if isinstance(event, LeaseLapsed):
                if event.deadline != step.before.lease_deadline:
                    problems.append(f"{event} but the lease was {step.before}")
                if step.now - event.deadline > allowed:
                    problems.append(
                        f"lapse at {_rel(run, event.deadline)} reported at "
                        f"{_rel(run, step.now)}"
                    )
            elif isinstance(event, LeaseRestored):
                if step.after.stats.renewals <= step.before.stats.renewals:
                    problems.append(f"{event} without a renewal at {step.now}")
                if event.deadline <= step.now:
                    problems.append(f"{event} restored a lease already over")
            else:
                problems.append(f"unexpected {event}: the server echoes the status")


def _check_local_status(run: Run, problems: list[str]) -> None:
    """Rule 9: the status set during the faults goes out at once and stays."""
    index = next(
        (
            i
            for i, step in enumerate(run.steps)
            if step.kind == "set_status" and step.status == NEW_STATUS
        ),
        None,
    )
    if index is None:
        problems.append("the status was never set")
        return
    set_step = run.steps[index]
    later = [(step, send) for step in run.steps[index:] for send in step.sends]
    if not later:
        problems.append("no beat after the status was set")
        return
    stale = [send.seq for _, send in later if send.status != NEW_STATUS]
    if stale:
        problems.append(f"beats {stale} after set_status carried an old status")
    in_flight = set_step.after.in_flight
    by = set_step if in_flight is None else _resolution(run, in_flight)
    first = later[0][0]
    if by is not None and first.now > by.now + SLACK:
        problems.append(
            f"the new status went out at {_rel(run, first.now)}, not at "
            f"{_rel(run, by.now)}"
        )
    if run.final_status != NEW_STATUS:
        problems.append(f"the status ended as {run.final_status}, not {NEW_STATUS}")
    if run.requests and run.requests[-1].status != NEW_STATUS:
        problems.append(f"the server last saw {run.requests[-1].status}")


def _send_before(
    sends: list[tuple[float, SendHeartbeat, Step]], when: float
) -> tuple[float, SendHeartbeat] | None:
    times = [sent_at for sent_at, _, _ in sends]
    i = bisect.bisect_right(times, when + 1e-6) - 1
    return None if i < 0 else (sends[i][0], sends[i][1])


def _check_calls(run: Run, problems: list[str]) -> None:
    """The exchanges as the client saw them: one at a time, each in time."""
    scenario = run.scenario
    calls = sorted(run.calls, key=lambda call: call.started)
    sends = run.sends
    for earlier, later in itertools.pairwise(calls):
        # Even a cancelled exchange still closing its connection counts: the
        # next one must wait for it (they share the gateway's connection).
        if later.started < earlier.ended:
            problems.append(
                f"exchanges overlap: {_rel(run, earlier.started)}-"
                f"{_rel(run, earlier.ended)} and {_rel(run, later.started)}"
            )
    per_send: dict[int, int] = {}
    for call in calls:
        found = _send_before(sends, call.started)
        if found is None:
            problems.append(f"an exchange at {_rel(run, call.started)} before any beat")
            continue
        sent_at, send = found
        per_send[send.seq] = per_send.get(send.seq, 0) + 1
        span = f"{_rel(run, call.started)}-{_rel(run, call.ended)} ({call.outcome})"
        if call.status != send.status:
            problems.append(f"exchange {span} carried {call.status}, not {send.status}")
        if call.started - sent_at > SLACK:
            problems.append(f"exchange {span} began long after beat #{send.seq}")
        if call.ended > send.deadline + SLACK:
            problems.append(
                f"exchange {span} of beat #{send.seq} outlived its deadline "
                f"{_rel(run, send.deadline)}"
            )
    for sent_at, send, _ in sends:
        count = per_send.get(send.seq, 0)
        if count > 1 or (count == 0 and sent_at < run.stop_at - SLACK):
            problems.append(f"beat #{send.seq} was carried out {count} times")
    finished = [call for call in calls if call.ended < run.stop_at]
    outcomes = {call.outcome for call in finished} - {"ok"}
    for call in finished:
        found = _send_before(sends, call.started)
        if found is None or call.outcome == "ok":
            continue
        sent_at, send = found
        # Near the end of a lease the machine gives a request as little as
        # backoff_initial / 2: on a loaded machine any exchange may run out of
        # such a budget, whatever the fault. Running to the deadline is allowed
        # then; a fault that is known at once must still fail at once.
        short = send.deadline - sent_at < SLACK
        timed_out = call.outcome in TIMEOUTS and call.ended >= send.deadline - 0.01
        if call.outcome not in scenario.allowed and not (short and timed_out):
            problems.append(
                f"exchange at {_rel(run, call.started)}: unexpected {call.outcome}"
            )
        if scenario.fast and call.ended - call.started > SLACK and not short:
            took = call.ended - call.started
            problems.append(f"{call.outcome} took {took:.3f} s, not at once")
    for group in scenario.required:
        if not outcomes & group:
            problems.append(f"no exchange failed with any of {sorted(group)}")
    seen = {
        (call.http_status, call.retry_after)
        for call in finished
        if call.outcome == "http_status" and call.http_status is not None
    }
    if scenario.http - seen:
        problems.append(f"never saw (status, Retry-After) {scenario.http - seen}")


def _check_wire(run: Run, problems: list[str]) -> None:
    """The requests as the server saw them."""
    requests, offset = run.requests, run.offset
    if not requests:
        problems.append("the server saw no request")
        return
    for request in requests:
        name = f"request {request.index} ({request.fault})"
        if request.request_line != b"POST /workflow_run/7/log_heartbeat HTTP/1.1":
            problems.append(f"{name}: {request.request_line!r}")
        if request.unexpected:
            problems.append(f"{name}: pipelined bytes {request.unexpected[:40]!r}")
        if request.ended_at is None:
            problems.append(f"{name} never ended")
            continue
        found = _send_before(run.sends, request.arrived_at + offset)
        if found is None:
            problems.append(f"{name} before any beat")
            continue
        _, send = found
        if request.status != send.status:
            problems.append(f"{name} carried {request.status}, beat had {send.status}")
        if request.ended_at + offset > send.deadline + SLACK:
            problems.append(
                f"{name} ended at {_rel(run, request.ended_at + offset)} "
                f"({request.ending}), past the deadline {_rel(run, send.deadline)}"
            )
    for earlier, later in itertools.pairwise(requests):
        if earlier.ended_at is not None and later.started_at < earlier.ended_at - SLACK:
            problems.append(
                f"requests {earlier.index} and {later.index} overlap on the wire"
            )
    for fault in run.scenario.served:
        if all(request.fault != fault for request in requests):
            problems.append(f"{fault} was never served")
    if run.scenario.reuse:
        if not any(request.on_connection for request in requests):
            problems.append("no request came on a kept-alive connection")
        if not run.idle_drops:
            problems.append("no kept-alive connection was dropped while idle")


def _check_resources(run: Run, problems: list[str]) -> None:
    if run.leaked_threads:
        problems.append(f"threads left: {run.leaked_threads}")
    if run.leaked_sockets:
        problems.append(f"sockets left: {sorted(run.leaked_sockets)}")
    if run.resource_warnings:
        problems.append(f"ResourceWarnings: {run.resource_warnings}")
    if run.scenario.trace_memory:
        for call in run.calls:
            if call.memory is None or call.memory > MEMORY_LIMIT:
                problems.append(
                    f"exchange at {_rel(run, call.started)} ({call.outcome}): "
                    f"traced memory peaked at {call.memory} bytes"
                )
        for request in run.requests:
            if isinstance(request.fault, EndlessBody) and request.bytes_sent > 2**26:
                problems.append(f"the client read {request.bytes_sent} bytes of body")


def check_run(run: Run) -> list[str]:
    """Every invariant, checked on the records of `run`; returns the violations."""
    problems: list[str] = []
    _check_survival(run, problems)
    _check_sends(run, problems)
    _check_schedule(run, problems)
    _check_events(run, problems)
    _check_local_status(run, problems)
    _check_calls(run, problems)
    _check_wire(run, problems)
    _check_resources(run, problems)
    return problems


def _describe(action: Action) -> str:
    if isinstance(action, SendHeartbeat):
        return f"send #{action.seq} {action.status}"
    return type(action).__name__


def report(run: Run, problems: list[str]) -> str:
    """The violations, then the run's records, for a failure message."""
    lines = [f"{run.adapter}, {run.scenario.name}: {len(problems)} problem(s)"]
    lines += [f"  - {problem}" for problem in problems[:30]]
    lines.append(
        "machine inputs (seconds from the start; ticks that did nothing left out):"
    )
    for step in run.steps:
        if step.kind == "tick" and not step.actions:
            continue
        lines.append(
            f"  {_rel(run, step.now):>7} {step.kind:<10} flight "
            f"{step.before.in_flight}->{step.after.in_flight} lease "
            f"{_rel(run, step.after.lease_deadline)} "
            f"{', '.join(_describe(action) for action in step.actions)}"
        )
    lines.append("exchanges:")
    lines += [
        f"  {_rel(run, c.started):>7}-{_rel(run, c.ended)} {c.status} {c.outcome}"
        for c in run.calls
    ]
    lines.append("wire:")
    for r in run.requests:
        ended = "-" if r.ended_at is None else _rel(run, r.ended_at + run.offset)
        lines.append(
            f"  {_rel(run, r.started_at + run.offset):>7}-{ended} conn "
            f"{r.connection_id}.{r.on_connection} {r.status} {r.fault} {r.ending}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------- tests


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.name)
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_driver_survives_fault(adapter: Adapter, scenario: Scenario) -> None:
    run = run_scenario(adapter, scenario)
    problems = check_run(run)
    assert not problems, report(run, problems)


def test_hostile_server_stops_promptly_and_restarts_on_its_port() -> None:
    threads_before = set(threading.enumerate())
    server = HostileServer([NeverAnswer()])
    server.start()
    port = server.port
    outcomes: list[str] = []
    with HttpGateway(server.base_url, RUN_ID) as hung:

        def beat() -> None:
            try:
                hung.log_heartbeat_sync("R", 1.0, timeout=10.0)
            except HeartbeatRequestFailed as error:
                outcomes.append(error.reason)

        waiter = threading.Thread(target=beat)
        waiter.start()
        server.wait_for(lambda requests: len(requests) == 1, timeout=5.0)
        began = time.monotonic()
        server.stop()  # ends the hung exchange, joins every thread
        assert time.monotonic() - began < 0.5
        waiter.join(timeout=5.0)
        assert not waiter.is_alive()
    assert outcomes == ["closed_before_response"]
    (hung_request,) = server.requests
    assert hung_request.ending == "stopped"
    with HttpGateway(server.base_url, RUN_ID) as refused:
        with pytest.raises(HeartbeatRequestFailed) as raised:
            refused.log_heartbeat_sync("R", 1.0, timeout=1.0)
        assert raised.value.reason == "connect"
        server.start()
        assert server.port == port
        server.set_script([], default=Answer(status="H"))
        assert refused.log_heartbeat_sync("R", 1.0, timeout=1.0).status == "H"
    server.stop()
    assert set(threading.enumerate()) == threads_before
    assert [r.ending for r in server.requests] == ["stopped", "served"]
