"""Hypothesis strategies, a recording driver and a rule model for HeartbeatMachine.

Strategy: the tests never look inside the machine. A `Script` is a valid
configuration plus a timed sequence of abstract inputs: a tick, an answer or a
failure for "the request in flight" or for some earlier one, a local status
change, `reset_timer`, `beat_now`, `stop`. `Player` plays it against a fresh
machine as a driver would, and records every call: its time, its arguments, the
actions it returned and a `Snapshot` of every public query before and after. A
punctual player also ticks at every `next_deadline` that falls before the next
input, as a real adapter that sleeps until exactly then.

`RuleModel` walks such a record and says, from the timing rules as the docstrings
state them, what each call must have done: which request expired, whether the lease
lapsed or was restored, which answer was a renewal or a signal, the window in which
a retry is due, and what every counter must read. The property tests compare the
recorded trace with it.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Literal

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from sansbeat import (
    MIN_DURATION,
    Action,
    HeartbeatMachine,
    HeartbeatStats,
    LeaseLapsed,
    LeaseRestored,
    SendHeartbeat,
    StatusChanged,
)

settings.register_profile(
    "sansbeat-machine",
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
#: The settings every machine property test uses (applied per test, never loaded
#: globally, so other test files keep their own).
MACHINE_SETTINGS = settings.get_profile("sansbeat-machine")

#: The statuses Jobmon knows; the machine treats them as opaque strings.
STATUSES = ("G", "L", "B", "A", "R", "D", "S", "E", "C", "H", "T", "I", "O")


# ------------------------------------------------------------------ float helpers


def _tolerance(*values: float) -> float:
    # A few units in the last place of the largest magnitude involved: the rules are
    # sums and halvings of a handful of floats.
    return 16 * math.ulp(max(1.0, *(abs(v) for v in values)))


def close(a: float, b: float) -> bool:
    """`a` equals `b` up to floating-point rounding."""
    return abs(a - b) <= _tolerance(a, b)


def at_most(a: float, b: float) -> bool:
    """`a <= b` up to floating-point rounding."""
    return a <= b + _tolerance(a, b)


def at_least(a: float, b: float) -> bool:
    """`a >= b` up to floating-point rounding."""
    return a >= b - _tolerance(a, b)


# ------------------------------------------------------------------ configuration


@dataclass(frozen=True, kw_only=True)
class MachineConfig:
    """A valid configuration; `seed` seeds the machine's jitter."""

    interval: float
    report_by_buffer: float
    initial_status: str
    start: float
    request_timeout: float
    backoff_initial: float
    beat_at_start: bool
    lease_margin: float
    seed: int

    @property
    def increment(self) -> float:
        """The lease the server is asked for (seconds)."""
        return self.interval * self.report_by_buffer

    @property
    def lease_length(self) -> float:
        """The local lease, from a renewed send: the increment less the margin."""
        return self.increment - self.lease_margin

    def build(self, rng: random.Random | None = None) -> HeartbeatMachine:
        """A fresh machine; its jitter comes from `rng` or from `Random(seed)`."""
        return HeartbeatMachine(
            interval=self.interval,
            report_by_buffer=self.report_by_buffer,
            initial_status=self.initial_status,
            now=self.start,
            request_timeout=self.request_timeout,
            backoff_initial=self.backoff_initial,
            beat_at_start=self.beat_at_start,
            lease_margin=self.lease_margin,
            rng=random.Random(self.seed) if rng is None else rng,
        )


#: Bytes that encode one configuration, see `_decode_config`.
CONFIG_BYTES = 19
NICE_INTERVALS = (30.0, 1.0, 5.0, 0.01, 3600.0)
NICE_BUFFERS = (1.5, 1.0, 2.0, 3.0)


def _fraction(two: bytes) -> float:
    return int.from_bytes(two, "big") / 65536


def _decode_config(data: bytes) -> MachineConfig:
    """A valid configuration decoded from CONFIG_BYTES random bytes.

    As for the steps, one draw of bytes is much cheaper than a draw per field, and
    zeros decode to the seed's usual setup: interval 30 s, buffer 1.5, timeout
    10 s, backoff 1 s, start 0, status "R". The bits of byte 0 switch each setting
    from a typical value to a random one over a realistic range: an interval from
    0.01 s to an hour (log-uniform), a buffer up to 5, a timeout from 0.001 to 2
    intervals, a backoff from 0.0005 to 1 interval (so that a backoff may need many
    doublings to reach the interval, or start at it), a start in +-1e6 s, and a
    lease margin up to all the buffer allows (the local lease must still cover
    an interval).
    """
    mode = data[0]
    if mode & 1:
        interval = 0.01 * 360_000 ** _fraction(data[2:4])
    else:
        interval = NICE_INTERVALS[data[1] % len(NICE_INTERVALS)]
    if mode & 2:
        buffer = 1.0 + 4.0 * _fraction(data[4:6])
    else:
        buffer = NICE_BUFFERS[data[1] // len(NICE_INTERVALS) % len(NICE_BUFFERS)]
    timeout = 10.0
    if mode & 4:
        timeout = max(MIN_DURATION, interval * (0.001 + 1.999 * _fraction(data[6:8])))
    backoff = 1.0
    if mode & 8:
        backoff = max(
            MIN_DURATION, interval * (0.0005 + 0.9995 * _fraction(data[8:10]))
        )
    start = (0.0, 1e6, -1e6 + 2e6 * _fraction(data[10:12]))[min((mode >> 4) & 3, 2)]
    status = STATUSES[(STATUSES.index("R") + data[12]) % len(STATUSES)]
    increment = interval * buffer
    margin = 0.0
    if mode & 128:
        margin = 0.999 * (increment - interval) * _fraction(data[17:19])
        if increment - margin < interval:  # rounding
            margin = 0.0
    return MachineConfig(
        interval=interval,
        report_by_buffer=buffer,
        initial_status=status,
        start=start,
        request_timeout=timeout,
        backoff_initial=backoff,
        beat_at_start=bool(mode & 64),
        lease_margin=margin,
        seed=int.from_bytes(data[13:17], "big"),
    )


@st.composite
def machine_configs(draw: st.DrawFn) -> MachineConfig:
    """Valid configurations over realistic ranges (intervals 0.01 s to an hour)."""
    # A composite rather than a map, so that a failing example shows the decoded
    # MachineConfig and not the bytes.
    return _decode_config(draw(st.binary(min_size=CONFIG_BYTES, max_size=CONFIG_BYTES)))


# ------------------------------------------------------------------ inputs


@dataclass(frozen=True, kw_only=True)
class Tick:
    """`tick(now)`."""


@dataclass(frozen=True, kw_only=True)
class Respond:
    """`handle_response`. `pick` None: the request in flight (or, when none is, the
    last one sent); otherwise a fraction in [0, 1) choosing among the sequence
    numbers issued so far. `status` None: the status that request carried.
    `latency`: for the request in flight, when the answer comes, as a fraction of
    the time left to its deadline (above 1: too late); None: after the step's wait.
    """

    pick: float | None
    status: str | None
    latency: float | None


@dataclass(frozen=True, kw_only=True)
class Fail:
    """`handle_failure`; `pick` and `latency` as for `Respond`; `retry_after` in
    intervals."""

    pick: float | None
    retry_after: float | None
    latency: float | None


@dataclass(frozen=True, kw_only=True)
class SetStatus:
    """`set_status(status, now)`; `latency` as for `Respond` (None: after the
    step's wait), so that the status often changes while a beat is out."""

    status: str
    latency: float | None


@dataclass(frozen=True, kw_only=True)
class ResetTimer:
    """`reset_timer(now)`; `latency` as for `SetStatus`."""

    latency: float | None


@dataclass(frozen=True, kw_only=True)
class BeatNow:
    """`beat_now(now)`; `latency` as for `SetStatus`."""

    latency: float | None


@dataclass(frozen=True, kw_only=True)
class Stop:
    """`stop(now)`."""


Op = Tick | Respond | Fail | SetStatus | ResetTimer | BeatNow | Stop


@dataclass(frozen=True, kw_only=True)
class Step:
    """Wait `wait` intervals after the previous input, then apply `op`."""

    wait: float
    op: Op


@dataclass(frozen=True, kw_only=True)
class Script:
    """A configuration and the inputs to play; `punctual` as for `Player`."""

    config: MachineConfig
    steps: tuple[Step, ...]
    punctual: bool


OpKind = Literal["tick", "answer", "fail", "status", "reset", "beat_now"]

#: Mixes of inputs (each kind as often as it is listed). Mixed: answers are the
#: most common input, as in a working deployment, with everything else around.
mixed_ops: tuple[OpKind, ...] = (
    "tick",
    "answer",
    "answer",
    "fail",
    "status",
    "status",
    "reset",
    "beat_now",
)
#: A healthy server: nearly every beat is answered.
healthy_ops: tuple[OpKind, ...] = (
    "tick",
    "answer",
    "answer",
    "answer",
    "answer",
    "status",
)
#: An outage: the server hardly ever answers.
outage_ops: tuple[OpKind, ...] = ("tick", "tick", "fail", "fail", "fail", "answer")


def _wait(u: float) -> float:
    """Intervals to wait, from u in [0, 1): a fifth of the inputs come at once,
    most within one and a half intervals, a fifth after a silence of up to six."""
    if u < 0.2:
        return 0.0
    if u < 0.8:
        return (u - 0.2) / 0.6 * 1.5
    return 1.5 + (u - 0.8) / 0.2 * 4.5


#: Bytes that encode one step, see `_decode_step`.
STEP_BYTES = 7


def _decode_step(ops: tuple[OpKind, ...], chunk: bytes) -> Step:
    """One timed input, decoded from STEP_BYTES random bytes.

    Steps come from one byte string per script rather than from a few draws per
    step: generation is then several times faster, and Hypothesis still shrinks
    the bytes towards zero, which decodes to a prompt tick (and answers to an
    echo of the request in flight). Byte 0 picks the kind from `ops`; bytes 1-2
    give the wait (see `_wait`), bytes 3-4 a fraction x in [0, 1), and the 16 bits
    of bytes 5-6 the choices:

    - bits 0-1: a quarter of the answers go to some earlier request (`pick` x);
    - bits 2-5, 6-7: a fifth of the answers carry a status of their own;
    - bits 8-9: three quarters of the answers, failures, status changes,
      reset_timer and beat_now come `latency` x * 1.25 into the request in
      flight (a fifth of those after its deadline), the others after the wait;
    - bits 10-11: `retry_after` None, 0, up to 2 intervals, or far beyond one.
    """
    kind = ops[chunk[0] % len(ops)]
    u = int.from_bytes(chunk[1:3], "big") / 65536
    x = int.from_bytes(chunk[3:5], "big") / 65536
    bits = int.from_bytes(chunk[5:7], "big")
    pick = x if bits & 0b11 == 0b11 else None
    index = (bits >> 2) & 0b1111
    own_status = STATUSES[index % len(STATUSES)]
    literal = (bits >> 6) & 0b11 == 0b11 and index < len(STATUSES)
    status = own_status if literal else None
    latency = None if (bits >> 8) & 0b11 == 0 else x * 1.25
    retry_after = (None, 0.0, x * 2.0, 1000.0)[(bits >> 10) & 0b11]
    op: Op
    if kind == "answer":
        op = Respond(pick=pick, status=status, latency=latency)
    elif kind == "fail":
        op = Fail(pick=pick, retry_after=retry_after, latency=latency)
    elif kind == "status":
        op = SetStatus(status=own_status, latency=latency)
    elif kind == "reset":
        op = ResetTimer(latency=latency)
    elif kind == "beat_now":
        op = BeatNow(latency=latency)
    else:
        op = Tick()
    return Step(wait=_wait(u), op=op)


#: Waits in intervals, as in `_wait`.
waits: st.SearchStrategy[float] = st.floats(0.0, 1.0, exclude_max=True).map(_wait)


@st.composite
def steps(
    draw: st.DrawFn,
    ops: tuple[OpKind, ...] = mixed_ops,
    max_steps: int = 40,
    stop: bool | None = None,
) -> tuple[Step, ...]:
    """Timed inputs; `stop` True: one `Stop` somewhere, None: sometimes one."""
    # The length is drawn first so that long runs are as common as short ones.
    size = draw(st.integers(0, max_steps))
    data = draw(st.binary(min_size=size * STEP_BYTES, max_size=size * STEP_BYTES))
    body = [
        _decode_step(ops, data[i : i + STEP_BYTES])
        for i in range(0, len(data), STEP_BYTES)
    ]
    with_stop = draw(st.integers(0, 3)) == 0 if stop is None else stop
    if with_stop:
        at = draw(st.integers(0, len(body)))
        body.insert(at, Step(wait=draw(waits), op=Stop()))
    return tuple(body)


@st.composite
def scripts(
    draw: st.DrawFn,
    ops: tuple[OpKind, ...] = mixed_ops,
    max_steps: int = 40,
    stop: bool | None = None,
    punctual: bool | None = None,
) -> Script:
    """A configuration and a timed sequence of inputs to play on it."""
    return Script(
        config=draw(machine_configs()),
        steps=draw(steps(ops=ops, max_steps=max_steps, stop=stop)),
        punctual=draw(st.booleans()) if punctual is None else punctual,
    )


# ------------------------------------------------------------------ recording


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """Every public query of a machine; the two that take a time use `probe`."""

    next_deadline: float | None
    interval: float
    report_by_buffer: float
    next_report_increment: float
    current_status: str
    last_heartbeat_time: float
    lease_deadline: float
    lapsed: bool
    stopped: bool
    in_flight: int | None
    stats: HeartbeatStats
    probe: float
    time_since_last_heartbeat: float
    is_heartbeat_due: bool


def snapshot(machine: HeartbeatMachine, probe: float) -> Snapshot:
    """All public state of `machine`, with the time-taking queries asked at `probe`."""
    return Snapshot(
        next_deadline=machine.next_deadline,
        interval=machine.interval,
        report_by_buffer=machine.report_by_buffer,
        next_report_increment=machine.next_report_increment,
        current_status=machine.current_status,
        last_heartbeat_time=machine.last_heartbeat_time,
        lease_deadline=machine.lease_deadline,
        lapsed=machine.lapsed,
        stopped=machine.stopped,
        in_flight=machine.in_flight,
        stats=machine.stats,
        probe=probe,
        time_since_last_heartbeat=machine.time_since_last_heartbeat(probe),
        is_heartbeat_due=machine.is_heartbeat_due(probe),
    )


Kind = Literal[
    "tick", "response", "failure", "set_status", "reset_timer", "beat_now", "stop"
]


@dataclass(frozen=True, kw_only=True)
class Call:
    """One recorded call: what was passed, what came back, the state around it.

    `before` and `after` are both probed at `now`. `punctual` marks a tick the
    player made at `next_deadline` on its own.
    """

    index: int
    kind: Kind
    now: float
    seq: int | None = None
    status: str | None = None
    retry_after: float | None = None
    punctual: bool = False
    before: Snapshot
    after: Snapshot
    actions: tuple[Action, ...]


def sends_in(call: Call) -> list[SendHeartbeat]:
    """The SendHeartbeat actions a call returned."""
    return [a for a in call.actions if isinstance(a, SendHeartbeat)]


#: Most ticks a punctual player may make between two inputs (at most six intervals
#: apart). The rules allow far fewer: the backoff doubles up to the interval, and
#: the half-lease caps need about log2(lease / backoff_initial) steps to run out.
MAX_PUNCTUAL_TICKS = 2_000


class Player:
    """Plays inputs on a machine the way a driver would, recording every call.

    Punctual: before each input the player ticks at every `next_deadline` earlier
    than that input's time, so every scheduled action happens on time.
    """

    def __init__(
        self,
        config: MachineConfig,
        *,
        punctual: bool = False,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.punctual = punctual
        self.machine = config.build(rng)
        self.now = config.start
        self.calls: list[Call] = []
        self.sent: dict[int, SendHeartbeat] = {}

    def fork(self) -> Player:
        """An independent copy, machine and record included."""
        return copy.deepcopy(self)

    # One method per input, each recorded.

    def tick(self, now: float, *, punctual: bool = False) -> tuple[Action, ...]:
        return self._record(
            "tick", now, lambda: self.machine.tick(now), punctual=punctual
        )

    def respond(self, seq: int, status: str, now: float) -> tuple[Action, ...]:
        return self._record(
            "response",
            now,
            lambda: self.machine.handle_response(seq, status, now),
            seq=seq,
            status=status,
        )

    def fail(
        self, seq: int, now: float, retry_after: float | None
    ) -> tuple[Action, ...]:
        return self._record(
            "failure",
            now,
            lambda: self.machine.handle_failure(seq, now, retry_after),
            seq=seq,
            retry_after=retry_after,
        )

    def set_status(self, status: str, now: float) -> tuple[Action, ...]:
        return self._record(
            "set_status",
            now,
            lambda: self.machine.set_status(status, now),
            status=status,
        )

    def reset_timer(self, now: float) -> tuple[Action, ...]:
        return self._record("reset_timer", now, lambda: self.machine.reset_timer(now))

    def beat_now(self, now: float) -> tuple[Action, ...]:
        return self._record("beat_now", now, lambda: self.machine.beat_now(now))

    def stop(self, now: float) -> tuple[Action, ...]:
        return self._record("stop", now, lambda: self.machine.stop(now))

    def _record(
        self,
        kind: Kind,
        now: float,
        invoke: Callable[[], tuple[Action, ...]],
        *,
        seq: int | None = None,
        status: str | None = None,
        retry_after: float | None = None,
        punctual: bool = False,
    ) -> tuple[Action, ...]:
        before = snapshot(self.machine, now)
        actions = invoke()
        assert isinstance(actions, tuple), f"{kind} returned {actions!r}, not a tuple"
        self.now = now
        for action in actions:
            if isinstance(action, SendHeartbeat):
                self.sent[action.seq] = action
        self.calls.append(
            Call(
                index=len(self.calls),
                kind=kind,
                now=now,
                seq=seq,
                status=status,
                retry_after=retry_after,
                punctual=punctual,
                before=before,
                after=snapshot(self.machine, now),
                actions=actions,
            )
        )
        return actions

    # Playing abstract steps.

    def catch_up(self, until: float) -> None:
        """Punctual ticks at every `next_deadline` before `until`."""
        for _ in range(MAX_PUNCTUAL_TICKS):
            deadline = self.machine.next_deadline
            if deadline is None or deadline >= until:
                return
            self.tick(deadline, punctual=True)
        raise AssertionError(
            f"next_deadline still before {until} after {MAX_PUNCTUAL_TICKS} ticks"
        )

    def pick_seq(self, pick: float | None) -> int | None:
        """The sequence number an abstract answer refers to (None: none issued)."""
        issued = sorted(self.sent)
        if not issued:
            return None
        if pick is None:
            in_flight = self.machine.in_flight
            return issued[-1] if in_flight is None else in_flight
        return issued[min(int(pick * len(issued)), len(issued) - 1)]

    def _await_request(self, now: float) -> int | None:
        """The request an answer "to the next request" is for: the one in flight,
        or, if none is, the next one sent (ticking at each next deadline)."""
        for _ in range(8):
            deadline = self.machine.next_deadline
            if deadline is None or self.machine.in_flight is not None:
                break
            self.tick(max(now, deadline), punctual=deadline >= now)
            now = self.now
        return self.machine.in_flight

    def step(self, step: Step) -> None:
        """Wait, then apply one abstract input (an answer with none issued: a tick)."""
        now = self.now + step.wait * self.config.interval
        if self.punctual:
            self.catch_up(now)
        op = step.op
        seq: int | None = None
        if isinstance(op, (Respond, Fail, SetStatus, ResetTimer, BeatNow)):
            pick = op.pick if isinstance(op, (Respond, Fail)) else None
            if pick is None and op.latency is not None:
                seq = self._await_request(now)
                now = max(now, self.now)
                if seq is not None:
                    now = self.now + op.latency * (self.sent[seq].deadline - self.now)
                    if self.punctual:
                        self.catch_up(now)
            if seq is None and isinstance(op, (Respond, Fail)):
                seq = self.pick_seq(op.pick)
        if isinstance(op, Respond) and seq is not None:
            status = self.sent[seq].status if op.status is None else op.status
            self.respond(seq, status, now)
        elif isinstance(op, Fail) and seq is not None:
            interval = self.config.interval
            retry_after = None if op.retry_after is None else op.retry_after * interval
            self.fail(seq, now, retry_after)
        elif isinstance(op, SetStatus):
            self.set_status(op.status, now)
        elif isinstance(op, ResetTimer):
            self.reset_timer(now)
        elif isinstance(op, BeatNow):
            self.beat_now(now)
        elif isinstance(op, Stop):
            self.stop(now)
        else:
            self.tick(now)

    def run(self, steps: tuple[Step, ...]) -> Player:
        for step in steps:
            self.step(step)
        return self


def play(script: Script, rng: random.Random | None = None) -> Player:
    """Play a script on a fresh machine; the player holds the record."""
    return Player(script.config, punctual=script.punctual, rng=rng).run(script.steps)


# ------------------------------------------------------------------ the rule model


@dataclass(frozen=True, kw_only=True)
class Flight:
    """A request the model knows to be outstanding."""

    seq: int
    status: str
    sent_at: float
    deadline: float


@dataclass(frozen=True, kw_only=True)
class RetryWindow:
    """When the beat after a failed attempt is due, by the rules.

    The jitter is unknown to the model, so the retry time lies between `earliest`
    (jitter factor 0.5) and `latest` (factor 1): the delay is monotone in it.
    """

    failed: Flight
    at: float
    attempts: int
    retry_after: float | None
    lease_deadline: float
    cadence_from: float
    status_changed: bool
    backoff_initial: float
    earliest: float
    latest: float

    @property
    def lease_cap(self) -> float | None:
        """Half of the live lease left at the failure, when the rules cap by it."""
        half = (self.lease_deadline - self.at) / 2
        return half if half >= self.backoff_initial / 2 else None


def retry_window(
    config: MachineConfig,
    *,
    failed: Flight,
    at: float,
    attempts: int,
    retry_after: float | None,
    lease_deadline: float,
    cadence_from: float,
    status_changed: bool,
) -> RetryWindow:
    """The retry rule of the docstrings.

    A status that changed while the request was out goes at once. Otherwise the
    delay is min(backoff_initial * 2**(attempts-1), interval) times a jitter in
    [0.5, 1), raised by retry_after (itself at most the interval), capped to half
    of the remaining live lease when that half is at least backoff_initial / 2;
    and the retry is never later than cadence_from + interval.
    """
    interval = config.interval

    def due(jitter: float) -> float:
        delay = min(config.backoff_initial * 2.0 ** (attempts - 1), interval) * jitter
        if retry_after is not None:
            delay = max(delay, min(retry_after, interval))
        half = (lease_deadline - at) / 2
        if half >= config.backoff_initial / 2:
            delay = min(delay, half)
        return min(at + delay, cadence_from + interval)

    earliest, latest = (at, at) if status_changed else (due(0.5), due(1.0))
    window = RetryWindow(
        failed=failed,
        at=at,
        attempts=attempts,
        retry_after=retry_after,
        lease_deadline=lease_deadline,
        cadence_from=cadence_from,
        status_changed=status_changed,
        backoff_initial=config.backoff_initial,
        earliest=earliest,
        latest=latest,
    )
    return window


def expected_request_deadline(
    config: MachineConfig, sent_at: float, lease: float
) -> float:
    """The request-deadline rule: send + min(request_timeout, interval), or half of
    the remaining lease when that half is smaller and at least backoff_initial/2."""
    budget = min(config.request_timeout, config.interval)
    half = (lease - sent_at) / 2
    if config.backoff_initial / 2 <= half < budget:
        budget = half
    return sent_at + budget


@dataclass(frozen=True, kw_only=True)
class Expected:
    """What the rules say one call did, apart from what it sent.

    `flight_at_send` is the request the rules say is still out when the call
    decides whether to send (after expiry and the answer). `pending_retry` is the
    retry window in force when the call decided whether to
    send (None if no failed attempt awaits its retry, or if a later input, such as
    a status change or `reset_timer`, took over the schedule).
    """

    call: Call
    stopped_before: bool
    flight_before: Flight | None
    expired: Flight | None
    answered: Flight | None
    renewal: bool
    signal: bool
    stale: bool
    lapse: LeaseLapsed | None
    restore: LeaseRestored | None
    status_changed: StatusChanged | None
    retry: RetryWindow | None
    flight_at_send: Flight | None
    pending_retry: RetryWindow | None
    status_before: str
    lease_before: float
    lapsed_before: bool
    cadence_before: float
    acted_tick: bool


class RuleModel:
    """The machine's state as the rules define it, learnt from a recorded trace.

    The model does not decide when to send (that is what the tests check); it
    learns sends from the SendHeartbeat actions and derives everything else.
    """

    def __init__(self, config: MachineConfig) -> None:
        self.config = config
        self.stopped = False
        self.flight: Flight | None = None
        self.status = config.initial_status
        self.last_sent_status = config.initial_status
        self.renewed_at = config.start
        self.lease_deadline = config.start + config.lease_length
        self.lapsed = False
        self.lapsed_at = 0.0
        self.cadence_from = config.start
        self.attempts = 0
        self.pending_retry: RetryWindow | None = None
        self.last_seq = 0
        self.beats_sent = 0
        self.renewals = 0
        self.signals = 0
        self.failures = 0
        self.timeouts = 0
        self.stale_responses = 0
        self.lapses = 0
        self.max_renewal_gap = 0.0
        self.max_tick_lateness = 0.0

    def stats(self) -> HeartbeatStats:
        """The counters the machine must report."""
        return HeartbeatStats(
            beats_sent=self.beats_sent,
            renewals=self.renewals,
            signals=self.signals,
            failures=self.failures,
            timeouts=self.timeouts,
            stale_responses=self.stale_responses,
            lapses=self.lapses,
            max_renewal_gap=self.max_renewal_gap,
            max_tick_lateness=self.max_tick_lateness,
        )

    def _fail_attempt(
        self, flight: Flight, at: float, retry_after: float | None
    ) -> RetryWindow:
        self.flight = None
        self.attempts += 1
        window = retry_window(
            self.config,
            failed=flight,
            at=at,
            attempts=self.attempts,
            retry_after=retry_after,
            lease_deadline=self.lease_deadline,
            cadence_from=self.cadence_from,
            status_changed=self.status != flight.status,
        )
        self.pending_retry = window
        return window

    def _renew(self, sent_at: float, now: float) -> LeaseRestored | None:
        if sent_at > self.renewed_at:
            self.max_renewal_gap = max(self.max_renewal_gap, sent_at - self.renewed_at)
            self.renewed_at = sent_at
            self.lease_deadline = sent_at + self.config.lease_length
        if self.lapsed and self.lease_deadline > now:
            self.lapsed = False
            return LeaseRestored(lapsed_at=self.lapsed_at, deadline=self.lease_deadline)
        return None

    def observe(self, call: Call) -> Expected:
        """Learn one call; say what the rules required of it."""
        now = call.now
        stopped_before = self.stopped
        flight_before = self.flight
        status_before = self.status
        lease_before = self.lease_deadline
        lapsed_before = self.lapsed
        cadence_before = self.cadence_from
        expired = answered = None
        renewal = signal = stale = acted_tick = False
        lapse: LeaseLapsed | None = None
        restore: LeaseRestored | None = None
        status_changed: StatusChanged | None = None
        retry: RetryWindow | None = None

        if not self.stopped and call.kind == "stop":
            self.stopped = True
            self.flight = None
            self.pending_retry = None
        elif not self.stopped:
            # First what time caused: the request past its deadline, then a lapse.
            if self.flight is not None and now >= self.flight.deadline:
                expired = self.flight
                self.timeouts += 1
                retry = self._fail_attempt(expired, expired.deadline, None)
            if not self.lapsed and now >= self.lease_deadline:
                self.lapsed = True
                self.lapsed_at = self.lease_deadline
                self.lapses += 1
                lapse = LeaseLapsed(deadline=self.lease_deadline)
            # Then the input itself.
            if call.kind == "tick":
                deadline = call.before.next_deadline
                if deadline is not None and now >= deadline:
                    acted_tick = True
                    self.max_tick_lateness = max(self.max_tick_lateness, now - deadline)
            elif call.kind in ("response", "failure"):
                if self.flight is None or call.seq != self.flight.seq:
                    stale = True
                    self.stale_responses += 1
                elif call.kind == "response":
                    answered = self.flight
                    self.flight = None
                    self.attempts = 0
                    self.pending_retry = None
                    if call.status == answered.status:
                        renewal = True
                        self.renewals += 1
                        restore = self._renew(answered.sent_at, now)
                    else:
                        signal = True
                        self.signals += 1
                        assert call.status is not None
                        if self.status == answered.status:
                            status_changed = StatusChanged(
                                old=self.status, new=call.status
                            )
                            self.status = call.status
                else:
                    answered = self.flight
                    self.failures += 1
                    retry = self._fail_attempt(answered, now, call.retry_after)
            elif call.kind == "set_status":
                assert call.status is not None
                if call.status != self.status:
                    self.status = call.status
                    self.pending_retry = None
            elif call.kind == "reset_timer":
                restore = self._renew(now, now)
                self.cadence_from = now
                self.attempts = 0
                self.pending_retry = None
            elif call.kind == "beat_now":
                self.pending_retry = None  # the beat goes now, not at its time

        flight_at_send = self.flight
        pending_retry = self.pending_retry
        for action in call.actions:
            if isinstance(action, SendHeartbeat):
                self.flight = Flight(
                    seq=action.seq,
                    status=action.status,
                    sent_at=now,
                    deadline=action.deadline,
                )
                self.last_seq = max(self.last_seq, action.seq)
                self.last_sent_status = action.status
                self.cadence_from = now
                self.beats_sent += 1
                self.pending_retry = None
        return Expected(
            call=call,
            stopped_before=stopped_before,
            flight_before=flight_before,
            expired=expired,
            answered=answered,
            renewal=renewal,
            signal=signal,
            stale=stale,
            lapse=lapse,
            restore=restore,
            status_changed=status_changed,
            retry=retry,
            flight_at_send=flight_at_send,
            pending_retry=pending_retry,
            status_before=status_before,
            lease_before=lease_before,
            lapsed_before=lapsed_before,
            cadence_before=cadence_before,
            acted_tick=acted_tick,
        )


def observed(player: Player) -> Iterator[tuple[Expected, RuleModel]]:
    """Walk a player's record with a fresh model: each call's expectations, and the
    model right after it."""
    model = RuleModel(player.config)
    for call in player.calls:
        yield model.observe(call), model


def without_probes(state: Snapshot) -> Snapshot:
    """A snapshot with the time-taking queries blanked, to compare across times."""
    return replace(
        state, probe=0.0, time_since_last_heartbeat=0.0, is_heartbeat_due=False
    )
