"""Soak: hours of random faults in simulated time, every invariant at every step.

Strategy: `sansbeat.sim` runs one machine against its Jobmon-like server (whole
second deadlines, a reaper) over a faulty network: outage windows that refuse or
hang, server-error windows (500, 502, 503, with and without Retry-After), lost
packets and random latency, all drawn from a fixed list of seeds. The machine is
a `CheckedMachine`: after every input it compares what the machine did with a
reference model of the timing rules written from docs/timing-rules.md (`Model`):
the exact actions (lapses, recoveries, status changes, beats and their request
deadlines), the next wakeup, the lease, the status and the flight, with the
backoff replayed by a twin of the machine's seeded random generator.
It also checks, at every step, the safety property the lease exists for: while
the client believes its lease live, the server's deadline for the run is no
earlier than the client's.

After each simulated hour: lapses and recoveries alternated, one of each, and
the lease ended live; the lease was lapsed at the end of every outage long
enough to lapse it (on a network without loss: lapsed exactly once inside it,
and never without a fault to cause it); every reap found the client already
lapsed; the status set locally near the end is the one the server holds; the
counters are the rules' counts and no wakeup was late.

SANSBEAT_SOAK_SECONDS sets the simulated seconds per seed (default 7200: two
hours, a few seconds of real time for all seeds); they run as one-hour
simulations, each with a fresh server, so that a reaped run does not end the
story.
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass, field

import pytest

from sansbeat import (
    Action,
    HeartbeatMachine,
    LeaseLapsed,
    LeaseRestored,
    SendHeartbeat,
    StatusChanged,
)
from sansbeat.sim import (
    FINAL_STATUSES,
    OutageWindow,
    ServerErrorWindow,
    SimNetwork,
    SimServer,
    Simulation,
    VirtualClock,
    format_timeline,
)

SECONDS = float(os.environ.get("SANSBEAT_SOAK_SECONDS", "7200"))
SEEDS = (11, 23, 37, 41, 59)
#: Simulated seconds of one simulation (a fresh server, machine and network).
SEGMENT = 3600.0
RUN_ID = 1
#: Jobmon keeps whole seconds: the client's lease ends this much early.
MARGIN = 1.0
#: The status the application sets near the end of each simulation.
FINAL = "D"


@dataclass(frozen=True, slots=True)
class Config:
    """One simulation's settings, drawn from its seed."""

    interval: float
    buffer: float
    request_timeout: float
    backoff: float
    beat_at_start: bool
    latency_max: float
    loss: float
    reap_period: float

    @property
    def lease(self) -> float:
        """The client's lease (seconds): increment less the margin."""
        return self.interval * self.buffer - MARGIN


def draw_config(rng: random.Random) -> Config:
    interval = rng.choice([1.0, 2.0, 5.0, 10.0])
    # A lease of at least two intervals, even after the margin.
    buffer = rng.choice([2.0, 3.0, 4.0]) + MARGIN / interval
    request_timeout = rng.choice([0.5, 2.0, 10.0])
    # An on-time beat gets min(timeout, interval, half the lease it has left):
    # its round trip stays well within that, so slowness alone is no fault.
    lease = interval * buffer - MARGIN
    budget = min(request_timeout, interval, (lease - interval) / 2)
    return Config(
        interval=interval,
        buffer=buffer,
        request_timeout=request_timeout,
        backoff=rng.choice([0.1, 0.5, 1.0]),
        beat_at_start=rng.random() < 0.5,
        latency_max=rng.uniform(0.01, min(0.5, budget / 4)),
        loss=rng.choice([0.0, 0.0, 0.01, 0.03]),
        reap_period=rng.choice([1.0, 60.0, 600.0, 3600.0]),
    )


@dataclass(frozen=True, slots=True)
class Window:
    """A fault window: an outage or server errors in [start, end)."""

    start: float
    end: float
    kind: str

    def long_enough_to_lapse(self, config: Config) -> bool:
        """Whether no beat can renew the lease from its start to its end."""
        return self.end - self.start >= config.lease + 2 * config.latency_max + 0.01


def draw_windows(
    rng: random.Random, config: Config, end: float
) -> tuple[list[Window], list[OutageWindow], list[ServerErrorWindow]]:
    """Non-overlapping fault windows up to 90% of `end`, with recoveries between."""
    windows: list[Window] = []
    outages: list[OutageWindow] = []
    errors: list[ServerErrorWindow] = []
    lease = config.lease
    at = rng.uniform(2.0, 5.0) * lease
    while True:
        if rng.random() < 0.4:
            duration = rng.uniform(1.0, 3.0) * lease + 1.0
        else:
            duration = rng.uniform(0.05, 0.5) * lease
        if at + duration > 0.9 * end:
            break
        kind = rng.choice(["refuse", "hang", "error"])
        windows.append(Window(at, at + duration, kind))
        if kind == "refuse":
            outages.append(OutageWindow(start=at, end=at + duration, mode="refuse"))
        elif kind == "hang":
            outages.append(OutageWindow(start=at, end=at + duration, mode="hang"))
        else:
            errors.append(
                ServerErrorWindow(
                    start=at,
                    end=at + duration,
                    status_code=rng.choice([500, 502, 503]),
                    retry_after=rng.choice([None, None, 1.0, 5.0, 120.0]),
                )
            )
        at += duration + rng.uniform(3.0, 20.0) * lease + 1.0
    return windows, outages, errors


# ------------------------------------------------------------ the reference


@dataclass(slots=True)
class _Flight:
    seq: int
    status: str
    sent_at: float
    deadline: float


@dataclass(slots=True)
class _Counts:
    beats: int = 0
    renewals: int = 0
    signals: int = 0
    failures: int = 0
    timeouts: int = 0
    stale: int = 0
    lapses: int = 0
    max_gap: float = 0.0


class Model:
    """The timing rules of docs/timing-rules.md, for the inputs the simulation
    makes: what the machine must do, computed on the side."""

    def __init__(self, config: Config, now: float, seed: int) -> None:
        self.interval = config.interval
        self.increment = config.interval * config.buffer
        self.length = self.increment - MARGIN
        self.budget = min(config.request_timeout, config.interval)
        self.backoff = config.backoff
        self.rng = random.Random(seed)
        self.status = "R"
        self.renewed_at = now
        self.lease_deadline = now + self.length
        self.lapsed = False
        self.lapsed_at = 0.0
        self.cadence_from = now
        self.next_beat = now if config.beat_at_start else now + config.interval
        self.failed = 0
        self.next_seq = 1
        self.flight: _Flight | None = None
        self.stopped = False
        self.counts = _Counts()

    @property
    def wake(self) -> float | None:
        """Rule 3: the machine's next_deadline."""
        if self.stopped:
            return None
        wake = self.flight.deadline if self.flight is not None else self.next_beat
        if not self.lapsed and self.lease_deadline < wake:
            wake = self.lease_deadline
        return wake

    # Each input returns the actions the machine must return.

    def tick(self, now: float) -> list[Action]:
        out: list[Action] = []
        wake = self.wake
        if wake is None or now < wake:
            return out
        self._advance(now, out)
        self._finish(now, out)
        return out

    def response(self, seq: int, status: str, now: float) -> list[Action]:
        out: list[Action] = []
        if self.stopped:
            return out
        self._advance(now, out)
        flight = self.flight
        if flight is None or seq != flight.seq:
            self.counts.stale += 1
        else:
            self.flight = None
            self.failed = 0
            if status == flight.status:  # rule 7: a renewal, from the send
                self.counts.renewals += 1
                self._renew(flight.sent_at, now, out)
                self.next_beat = self.cadence_from + self.interval
            else:  # rule 10: a signal, adopted unless the status changed here
                self.counts.signals += 1
                if self.status == flight.status:
                    out.append(StatusChanged(old=self.status, new=status))
                    self.status = status
            if self.status != flight.status:  # rule 9: a new status goes at once
                self.next_beat = now
        self._finish(now, out)
        return out

    def failure(self, seq: int, now: float, retry_after: float | None) -> list[Action]:
        out: list[Action] = []
        if self.stopped:
            return out
        self._advance(now, out)
        if self.flight is None or seq != self.flight.seq:
            self.counts.stale += 1
        else:
            self.counts.failures += 1
            self._fail(now, retry_after)
        self._finish(now, out)
        return out

    def set_status(self, status: str, now: float) -> list[Action]:
        out: list[Action] = []
        if self.stopped:
            return out
        self._advance(now, out)
        if status != self.status:
            self.status = status
            if self.flight is None:
                self.next_beat = now
        self._finish(now, out)
        return out

    def stop(self) -> list[Action]:
        self.stopped = True
        self.flight = None
        return []

    def _advance(self, now: float, out: list[Action]) -> None:
        """What time caused: an expired request (rule 5), then a lapse (rule 8)."""
        if self.flight is not None and now >= self.flight.deadline:
            self.counts.timeouts += 1
            self._fail(self.flight.deadline, None)
        if not self.lapsed and now >= self.lease_deadline:
            self.lapsed = True
            self.lapsed_at = self.lease_deadline
            self.counts.lapses += 1
            out.append(LeaseLapsed(deadline=self.lease_deadline))

    def _fail(self, at: float, retry_after: float | None) -> None:
        """Rule 6: the retry, with capped, jittered backoff inside the lease."""
        assert self.flight is not None
        sent_status = self.flight.status
        self.flight = None
        self.failed += 1
        if self.status != sent_status:
            self.next_beat = at
            return
        delay = min(self.backoff * 2.0 ** min(self.failed - 1, 64), self.interval)
        delay *= 0.5 + 0.5 * self.rng.random()
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.interval))
        half = (self.lease_deadline - at) / 2
        if half >= self.backoff / 2:
            delay = min(delay, half)
        self.next_beat = min(at + delay, self.cadence_from + self.interval)

    def _renew(self, sent_at: float, now: float, out: list[Action]) -> None:
        if sent_at > self.renewed_at:
            self.counts.max_gap = max(self.counts.max_gap, sent_at - self.renewed_at)
            self.renewed_at = sent_at
            self.lease_deadline = sent_at + self.length
        if self.lapsed and self.lease_deadline > now:
            self.lapsed = False
            out.append(
                LeaseRestored(lapsed_at=self.lapsed_at, deadline=self.lease_deadline)
            )

    def _finish(self, now: float, out: list[Action]) -> None:
        """Send the beat if one is due (rules 1, 4, 5)."""
        if self.flight is not None or now < self.next_beat:
            return
        budget = self.budget
        half = (self.lease_deadline - now) / 2
        if self.backoff / 2 <= half < budget:
            budget = half
        send = SendHeartbeat(
            seq=self.next_seq,
            status=self.status,
            next_report_increment=self.increment,
            deadline=now + budget,
        )
        self.next_seq += 1
        self.flight = _Flight(send.seq, send.status, now, send.deadline)
        self.cadence_from = now
        self.counts.beats += 1
        out.append(send)


@dataclass(slots=True)
class Watch:
    """What the checked machine keeps for the checks after the run."""

    server: SimServer | None = None
    #: (time, "lapsed" or "restored"), in order.
    transitions: list[tuple[float, str]] = field(default_factory=list)
    last_send: float | None = None
    inputs: list[str] = field(default_factory=list)


class CheckedMachine(HeartbeatMachine):
    """A machine that checks itself against `Model` after every input."""

    __slots__ = ("config", "model", "watch")

    def __init__(self, config: Config, now: float, seed: int) -> None:
        super().__init__(
            interval=config.interval,
            report_by_buffer=config.buffer,
            initial_status="R",
            now=now,
            request_timeout=config.request_timeout,
            backoff_initial=config.backoff,
            beat_at_start=config.beat_at_start,
            lease_margin=MARGIN,
            rng=random.Random(seed),
        )
        self.config = config
        self.model = Model(config, now, seed)
        self.watch = Watch()

    def tick(self, now: float) -> tuple[Action, ...]:
        expected = self.model.tick(now)
        return self._check(f"tick({now})", now, super().tick(now), expected)

    def handle_response(self, seq: int, status: str, now: float) -> tuple[Action, ...]:
        expected = self.model.response(seq, status, now)
        actions = super().handle_response(seq, status, now)
        return self._check(f"response(#{seq}, {status}, {now})", now, actions, expected)

    def handle_failure(
        self, seq: int, now: float, retry_after: float | None = None
    ) -> tuple[Action, ...]:
        expected = self.model.failure(seq, now, retry_after)
        actions = super().handle_failure(seq, now, retry_after)
        return self._check(
            f"failure(#{seq}, {now}, {retry_after})", now, actions, expected
        )

    def set_status(self, status: str, now: float) -> tuple[Action, ...]:
        expected = self.model.set_status(status, now)
        actions = super().set_status(status, now)
        return self._check(f"set_status({status}, {now})", now, actions, expected)

    def stop(self, now: float) -> tuple[Action, ...]:
        expected = self.model.stop()
        return self._check(f"stop({now})", now, super().stop(now), expected)

    def _check(
        self, name: str, now: float, actions: tuple[Action, ...], expected: list[Action]
    ) -> tuple[Action, ...]:
        model, watch = self.model, self.watch
        watch.inputs.append(f"{name} -> {actions}")
        del watch.inputs[:-20]
        problems = []
        if actions != tuple(expected):
            problems.append(f"actions {actions}, the rules say {tuple(expected)}")
        flight = None if model.flight is None else model.flight.seq
        state = (
            self.next_deadline,
            self.lease_deadline,
            self.lapsed,
            self.current_status,
            self.in_flight,
        )
        want = (model.wake, model.lease_deadline, model.lapsed, model.status, flight)
        if state != want:
            problems.append(
                f"(next_deadline, lease, lapsed, status, flight) = {state}, "
                f"the rules say {want}"
            )
        deadline = self.next_deadline
        if deadline is not None and not deadline > now:  # rule 3
            problems.append(f"next_deadline {deadline} is not after now {now}")
        for action in actions:
            if isinstance(action, SendHeartbeat):
                self._check_send(action, now, problems)
            elif isinstance(action, LeaseLapsed):
                watch.transitions.append((now, "lapsed"))
                if now != action.deadline:  # the simulation wakes it exactly then
                    problems.append(f"{action} learnt at {now}")
            elif isinstance(action, LeaseRestored):
                watch.transitions.append((now, "restored"))
        if self.stopped and actions:  # rule 13
            problems.append(f"{actions} after stop")
        server = watch.server
        # Safety: a lease the client counts on is one the server grants.
        if server is not None and not self.lapsed:
            granted = server.deadline(RUN_ID)
            if granted < self.lease_deadline:
                problems.append(
                    f"the client counts on its lease until {self.lease_deadline}, "
                    f"the server's deadline is {granted}"
                )
        if problems:
            raise AssertionError("\n".join([*problems, "last inputs:", *watch.inputs]))
        return actions

    def _check_send(self, send: SendHeartbeat, now: float, problems: list[str]) -> None:
        config, watch = self.config, self.watch
        if send.next_report_increment != config.interval * config.buffer:  # rule 4
            problems.append(f"{send} asks for {send.next_report_increment}")
        half = (self.lease_deadline - now) / 2
        live = not self.lapsed and half >= config.backoff / 2
        if live and send.deadline > self.lease_deadline:  # rule 5, in the lease
            problems.append(f"{send} may outlive the lease {self.lease_deadline}")
        gap = 0.0 if watch.last_send is None else now - watch.last_send
        if gap > config.interval + 1e-9:  # rule 6's cadence cap (float rounding)
            problems.append(f"{send} came {gap} s after the last")
        watch.last_send = now


# ------------------------------------------------------------------ the runs


def simulate_hour(seed: int, end: float) -> None:
    """One simulation of `end` seconds from `seed`, checked throughout and after."""
    rng = random.Random(seed)
    config = draw_config(rng)
    windows, outages, errors = draw_windows(rng, config, end)
    clock = VirtualClock(0.0)
    machine = CheckedMachine(config, clock.now, seed)
    server = SimServer(reap_period=config.reap_period)
    network = SimNetwork(
        seed=seed,
        latency_min=0.001,
        latency_max=config.latency_max,
        loss=config.loss,
        outages=outages,
        server_errors=errors,
    )
    sim = Simulation(
        machine, clock=clock, server=server, network=network, run_id=RUN_ID
    )
    machine.watch.server = server
    sim.schedule_set_status(0.95 * end, FINAL)
    result = sim.run(until=end)
    story = f"seed {seed}, {config}\n" + format_timeline(result.timeline[-40:])
    transitions = machine.watch.transitions

    # Rule 8: lapse and restore alternate, the last outage is over.
    kinds = [kind for _, kind in transitions]
    assert kinds == ["lapsed", "restored"] * (len(kinds) // 2), story
    assert not machine.lapsed, story
    # The lease is lapsed at the end of every long window. On a network without
    # loss (where lost packets may lapse a lease too) each long window lapsed
    # it exactly once, no window twice, and no lapse came without a window.
    lapses = [when for when, kind in transitions if kind == "lapsed"]
    for window in windows:
        long = window.long_enough_to_lapse(config)
        if long:
            until_end = [kind for when, kind in transitions if when < window.end]
            assert until_end, (window, story)
            assert until_end[-1] == "lapsed", (window, story)
        if config.loss == 0:
            inside = [when for when in lapses if window.start <= when < window.end]
            assert len(inside) == 1 if long else len(inside) <= 1, (window, story)
    if config.loss == 0:
        for when in lapses:
            assert any(w.start <= when <= w.end + config.lease for w in windows), (
                when,
                story,
            )
    # The reaper only ever reaps a run whose client already knew it lapsed.
    for reap in result.reaps:
        before = [kind for when, kind in transitions if when < reap.time]
        assert before, (reap, story)
        assert before[-1] == "lapsed", (reap, story)
    # No lost local status: what was set last is what the server holds.
    assert result.client_status == result.server_status, story
    if not result.reaps:
        assert result.server_status == FINAL, story
    else:
        assert result.server_status in FINAL_STATUSES, story
    # Rule 14: the counters are the rules' counts; rule 3: no tick was late.
    counts, stats = machine.model.counts, result.stats
    assert (
        stats.beats_sent,
        stats.renewals,
        stats.signals,
        stats.failures,
        stats.timeouts,
        stats.stale_responses,
        stats.lapses,
    ) == (
        counts.beats,
        counts.renewals,
        counts.signals,
        counts.failures,
        counts.timeouts,
        counts.stale,
        counts.lapses,
    ), story
    assert stats.max_renewal_gap == counts.max_gap, story
    assert stats.max_tick_lateness == 0.0, story
    assert stats.beats_sent >= end / config.interval - 1, story


@pytest.mark.soak
@pytest.mark.parametrize("seed", SEEDS)
def test_hours_of_random_faults_keep_every_rule(seed: int) -> None:
    hours = max(1, math.ceil(SECONDS / SEGMENT))
    for hour in range(hours):
        end = min(SEGMENT, SECONDS - hour * SEGMENT) if SECONDS > 0 else SEGMENT
        simulate_hour(seed * 1000 + hour, end)
