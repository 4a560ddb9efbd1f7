"""Tests of sansbeat.sim, and end-to-end properties of the machine run through it."""

from __future__ import annotations

import ast
import dataclasses
import itertools
import math
import random
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sansbeat
import sansbeat.__main__
from sansbeat import HeartbeatMachine, UsageError
from sansbeat.sim import (
    FINAL_STATUSES,
    LOST_STATUS,
    TRANSITIONS,
    EntryKind,
    OutageWindow,
    Reap,
    ServerErrorWindow,
    ServerSignal,
    SimNetwork,
    SimServer,
    Simulation,
    SimulationResult,
    TimelineEntry,
    VirtualClock,
    format_timeline,
)

CORE = Path(sansbeat.__file__).resolve().parent


def build(
    *,
    interval: float = 30.0,
    report_by_buffer: float = 1.5,
    seed: int = 0,
    latency_min: float = 0.01,
    latency_max: float = 0.05,
    loss: float = 0.0,
    outages: Iterable[OutageWindow] = (),
    server_errors: Iterable[ServerErrorWindow] = (),
    reap_period: float = 1.0,
    request_timeout: float = 10.0,
    backoff_initial: float = 1.0,
) -> tuple[Simulation, HeartbeatMachine, SimServer]:
    """A simulation at t=0 of one machine reporting "R", seeded throughout."""
    clock = VirtualClock()
    machine = HeartbeatMachine(
        interval=interval,
        report_by_buffer=report_by_buffer,
        initial_status="R",
        now=clock.now,
        request_timeout=request_timeout,
        backoff_initial=backoff_initial,
        rng=random.Random(seed),
    )
    server = SimServer(reap_period=reap_period)
    network = SimNetwork(
        seed=seed,
        latency_min=latency_min,
        latency_max=latency_max,
        loss=loss,
        outages=outages,
        server_errors=server_errors,
    )
    return (
        Simulation(machine, clock=clock, server=server, network=network),
        machine,
        server,
    )


def entries(result: SimulationResult, kind: EntryKind) -> list[TimelineEntry]:
    return [e for e in result.timeline if e.kind == kind]


def seq_of(entry: TimelineEntry) -> int:
    """The request number an entry is about: its detail starts with "#<seq>"."""
    return int(entry.detail.split()[0].lstrip("#").rstrip(":"))


# --------------------------------------------------------------------- the parts


def test_virtual_clock_only_moves_forward() -> None:
    clock = VirtualClock(5.0)
    clock.advance_to(5.0)
    clock.advance_to(7.5)
    with pytest.raises(UsageError) as info:
        clock.advance_to(7.0)
    assert info.value.field == "when"
    assert clock.now == 7.5


def test_server_deadline_is_receipt_plus_increment_floored_to_whole_seconds() -> None:
    server = SimServer()
    server.add_run(1, status="R", next_report_increment=45.0, now=0.4)
    assert server.deadline(1) == 45
    answer = server.log_heartbeat(1, "R", 45.0, now=10.7)
    assert (answer.status, answer.renewed, answer.deadline) == ("R", True, 55)
    assert server.log_heartbeat(1, "R", 37.5, now=20.6).deadline == 58


def test_server_refusal_answers_the_held_status_and_does_not_renew() -> None:
    server = SimServer()
    server.add_run(1, status="R", next_report_increment=45.0, now=0.0)
    server.schedule_signal(1, "C", at=5.0)
    assert server.advance(5.0) == (
        ServerSignal(time=5.0, run_id=1, old="R", new="C", applied=True),
    )
    refused = server.log_heartbeat(1, "R", 45.0, now=10.0)
    assert (refused.status, refused.renewed, refused.deadline) == ("C", False, 45)
    assert server.deadline(1) == 45
    accepted = server.log_heartbeat(1, "C", 45.0, now=11.0)
    assert (accepted.status, accepted.renewed, accepted.deadline) == ("C", True, 56)


@pytest.mark.parametrize(
    ("held", "sent", "allowed"),
    [
        ("R", "R", True),
        ("R", "D", True),
        ("R", "C", True),
        ("R", "H", True),
        ("C", "T", True),
        ("H", "H", True),
        ("O", "R", True),
        ("G", "R", False),
        ("C", "R", False),
        ("D", "R", False),
        ("E", "R", False),
        ("T", "C", False),
        ("R", "X", False),
    ],
)
def test_heartbeat_moves_follow_the_transition_table(
    held: str, sent: str, allowed: bool
) -> None:
    server = SimServer()
    server.add_run(7, status=held, next_report_increment=45.0, now=0.0)
    answer = server.log_heartbeat(7, sent, 45.0, now=1.0)
    assert answer.renewed is allowed
    assert server.status(7) == (sent if allowed else held)
    assert server.deadline(7) == (46 if allowed else 45)


def test_final_statuses_are_those_no_move_leaves() -> None:
    assert frozenset("ADEST") == FINAL_STATUSES
    assert LOST_STATUS in FINAL_STATUSES
    assert all(moves <= TRANSITIONS.keys() for moves in TRANSITIONS.values())


def test_reaper_marks_a_run_lost_at_the_first_sweep_at_or_after_its_deadline() -> None:
    server = SimServer(reap_period=10.0)
    server.add_run(1, status="R", next_report_increment=45.0, now=0.0)
    assert server.next_event_time == 50.0
    assert server.advance(49.9) == ()
    reap = Reap(time=50.0, run_id=1, status="R", deadline=45)
    assert server.advance(50.0) == (reap,)
    assert server.status(1) == LOST_STATUS
    assert server.reaps == (reap,)
    assert server.next_event_time is None
    assert server.advance(1000.0) == ()


def test_reaper_sweeps_on_the_deadline_itself_when_it_is_a_multiple() -> None:
    server = SimServer(reap_period=0.1)
    server.add_run(1, status="R", next_report_increment=0.7, now=0.3)
    server.log_heartbeat(1, "R", 2.0, now=0.35)  # deadline floor(2.35) = 2
    events = server.advance(3.0)
    assert events == (Reap(time=events[0].time, run_id=1, status="R", deadline=2),)
    assert math.isclose(events[0].time, 2.0)


def test_reaper_ignores_runs_in_a_final_status() -> None:
    server = SimServer()
    server.add_run(1, status="R", next_report_increment=45.0, now=0.0)
    server.log_heartbeat(1, "D", 45.0, now=10.0)
    assert server.next_event_time is None
    assert server.advance(500.0) == ()
    assert server.status(1) == "D"


def test_a_signal_to_a_reaped_run_is_refused() -> None:
    server = SimServer()
    server.add_run(1, status="R", next_report_increment=45.0, now=0.0)
    server.schedule_signal(1, "C", at=60.0)
    events = server.advance(60.0)
    assert events == (
        Reap(time=45.0, run_id=1, status="R", deadline=45),
        ServerSignal(time=60.0, run_id=1, old="E", new="C", applied=False),
    )
    assert server.status(1) == "E"


def test_server_refuses_time_going_backwards_and_changes_nothing() -> None:
    server = SimServer()
    server.add_run(1, status="R", next_report_increment=45.0, now=10.0)
    with pytest.raises(UsageError):
        server.log_heartbeat(1, "R", 45.0, now=9.0)
    with pytest.raises(UsageError):
        server.schedule_signal(1, "C", at=9.0)
    assert server.deadline(1) == 55
    with pytest.raises(KeyError):
        server.log_heartbeat(2, "R", 45.0, now=11.0)


@pytest.mark.parametrize(
    "settings_",
    [
        {"latency_min": -0.1},
        {"latency_min": 0.2, "latency_max": 0.1},
        {"loss": 1.5},
        {"outages": [OutageWindow(start=5.0, end=5.0, mode="hang")]},
        {"server_errors": [ServerErrorWindow(start=0.0, end=1.0, status_code=404)]},
        {"server_errors": [ServerErrorWindow(start=0.0, end=1.0, retry_after=-1.0)]},
    ],
)
def test_network_refuses_broken_settings(settings_: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        SimNetwork(seed=0, **settings_)  # type: ignore[arg-type]


def test_network_draws_are_seeded_and_within_bounds() -> None:
    one = SimNetwork(seed=3, latency_min=0.1, latency_max=0.2, loss=0.5)
    two = SimNetwork(seed=3, latency_min=0.1, latency_max=0.2, loss=0.5)
    draws = [(one.latency(), one.lost()) for _ in range(50)]
    assert draws == [(two.latency(), two.lost()) for _ in range(50)]
    assert all(0.1 <= latency <= 0.2 for latency, _ in draws)
    assert {lost for _, lost in draws} == {True, False}


# ------------------------------------------------------------- the simulation


def test_steady_network_renews_every_beat_at_the_cadence() -> None:
    simulation, _, _ = build()
    result = simulation.run(until=610.0)
    sends = entries(result, "send")
    assert [e.time for e in sends] == pytest.approx([30.0 * k for k in range(1, 21)])
    assert result.stats.beats_sent == result.stats.renewals == 20
    assert result.stats.lapses == result.stats.timeouts == 0
    assert result.reaps == ()
    assert (result.client_status, result.server_status, result.end) == ("R", "R", 610.0)


def test_server_refusal_does_not_renew_end_to_end() -> None:
    simulation, machine, server = build(latency_min=0.05, latency_max=0.05)
    simulation.schedule_signal(75.0, "H")
    simulation.run(until=90.07)  # beat #3 ("R") reached the server, was refused
    assert server.status(1) == "H"
    assert server.deadline(1) == 105  # from beat #2, received at 60.05
    result = simulation.run(until=90.1)  # its answer "H" reached the client
    assert machine.lease_deadline == 105.0  # not renewed by the refused beat
    assert result.stats.signals == 1
    assert result.stats.renewals == 2
    assert [e.detail for e in entries(result, "status")] == [
        "R -> H, signalled by the server"
    ]
    result = simulation.run(until=91.0)  # the "H" beat went out at once, renewed
    assert server.deadline(1) == 135
    assert machine.lease_deadline == pytest.approx(135.1)
    assert result.stats.renewals == 3


def test_late_answer_is_still_delivered_and_counted_stale() -> None:
    # A 10 s round trip against a 7.5 s request budget: every answer is late.
    simulation, _, _ = build(latency_min=5.0, latency_max=5.0)
    result = simulation.run(until=60.0)
    timeouts = entries(result, "timeout")
    stale = [e for e in entries(result, "answer") if "stale" in e.detail]
    assert timeouts[0].time == 37.5
    assert seq_of(timeouts[0]) == 1
    assert stale[0].time == 40.0
    assert seq_of(stale[0]) == 1
    assert result.stats.stale_responses == len(stale) > 0


def test_lost_legs_surface_as_timeouts() -> None:
    simulation, _, _ = build(loss=0.3, seed=11)
    result = simulation.run(until=3000.0)
    timed_out = {seq_of(e) for e in entries(result, "timeout")}
    answered = {seq_of(e) for e in entries(result, "answer")}
    reached = {seq_of(e) for e in entries(result, "server")}
    requests_lost = {
        seq_of(e) for e in entries(result, "send") if "request lost" in e.detail
    }
    answers_lost = {
        seq_of(e) for e in entries(result, "server") if "answer lost" in e.detail
    }
    assert requests_lost
    assert answers_lost
    assert not requests_lost & reached
    assert requests_lost | answers_lost == timed_out
    assert not timed_out & answered
    assert result.stats.timeouts == len(timed_out)


def test_refused_connections_fail_after_one_round_trip() -> None:
    outage = OutageWindow(start=100.0, end=200.0, mode="refuse")
    simulation, _, _ = build(latency_min=0.1, latency_max=0.3, outages=[outage])
    result = simulation.run(until=300.0)
    sent = {seq_of(e): e.time for e in entries(result, "send") if "refused" in e.detail}
    failed = {seq_of(e): e.time for e in entries(result, "failure")}
    assert sent.keys() == failed.keys()
    assert len(sent) > 3
    assert all(100.0 <= t < 200.0 for t in sent.values())
    assert all(0.2 <= failed[seq] - sent[seq] <= 0.6 for seq in sent)
    assert result.stats.failures == len(sent)
    assert result.stats.timeouts == 0


def test_hung_requests_are_given_up_exactly_at_their_deadline() -> None:
    outage = OutageWindow(start=100.0, end=200.0, mode="hang")
    simulation, _, _ = build(outages=[outage])
    result = simulation.run(until=300.0)
    deadlines = {
        seq_of(e): float(e.detail.split("give up at ")[1].split()[0])
        for e in entries(result, "send")
        if "no answer" in e.detail
    }
    given_up = {seq_of(e): e.time for e in entries(result, "timeout")}
    assert len(deadlines) > 3
    assert given_up == pytest.approx(deadlines, abs=0.0005)  # detail shows ms
    assert result.stats.failures == 0


def test_server_errors_pass_retry_after_to_the_machine() -> None:
    def gaps_after_lapse(retry_after: float | None) -> list[float]:
        error = ServerErrorWindow(start=0.0, end=400.0, retry_after=retry_after)
        simulation, _, _ = build(server_errors=[error])
        result = simulation.run(until=400.0)
        (lapse,) = entries(result, "lapsed")
        assert all("HTTP 503" in e.detail for e in entries(result, "failure"))
        sends = [e.time for e in entries(result, "send") if e.time > lapse.time]
        return [later - earlier for earlier, later in itertools.pairwise(sends)]

    # Once the lease has lapsed nothing caps the delay below Retry-After (29 s)
    # but the interval (30 s); jittered backoff alone would often retry sooner.
    assert min(gaps_after_lapse(29.0)) >= 29.0
    assert min(gaps_after_lapse(None)) < 29.0


def test_scheduled_local_status_goes_out_at_once_and_moves_the_server() -> None:
    simulation, _, server = build()
    simulation.schedule_set_status(100.0, "D")
    simulation.schedule_stop(110.0)
    result = simulation.run(until=1000.0)
    sends = entries(result, "send")
    assert (sends[-1].time, sends[-1].detail.split()[1]) == (100.0, "D,")
    assert [e.kind for e in result.timeline if e.time >= 100.0][:2] == [
        "set_status",
        "send",
    ]
    assert server.status(1) == "D"
    assert result.reaps == ()  # a finished run is never reaped


def test_after_stop_nothing_is_sent_answers_are_ignored_and_the_run_is_reaped() -> None:
    simulation, _, _ = build(latency_min=0.05, latency_max=0.05)
    simulation.schedule_stop(30.01)  # beat #1 is in flight
    result = simulation.run(until=200.0)
    assert [e.time for e in entries(result, "send")] == [30.0]
    (answer,) = entries(result, "answer")
    assert answer.detail == "#1 R: ignored, machine stopped"
    assert result.reaps == (Reap(time=75.0, run_id=1, status="R", deadline=75),)


def test_schedules_in_the_past_are_refused() -> None:
    simulation, _, _ = build()
    simulation.run(until=50.0)
    with pytest.raises(UsageError):
        simulation.schedule_set_status(49.0, "D")
    with pytest.raises(UsageError):
        simulation.schedule_signal(49.0, "C")
    with pytest.raises(UsageError):
        simulation.run(until=49.0)


def test_timeline_entries_are_frozen_and_format_one_line_each() -> None:
    simulation, _, _ = build()
    result = simulation.run(until=100.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.timeline[0].time = 1.0  # type: ignore[misc]
    lines = format_timeline(result.timeline).splitlines()
    assert len(lines) == len(result.timeline)
    assert lines[0] == "   30.000 s  send       #1 R, give up at 37.500"


# ------------------------------------------------------------ the properties

# Why a live client is never reaped when latencies stay within the bound below.
#
# Write s_k for the send time of beat k, r_k >= s_k for its receipt, lam for the
# largest one-way latency, nri = interval * report_by_buffer, slack = nri - interval.
# (1) The client keeps its cadence only if every answer beats its request's
#     deadline. At each send the lease has exactly `slack` left (it runs from the
#     previous send), so the machine's request budget is min(request_timeout,
#     interval), lowered to slack / 2 when that is smaller (and not under
#     backoff_initial / 2): at least min(request_timeout, interval, slack / 2).
#     With 2 * lam below that, s_{k+1} = s_k + interval exactly.
# (2) The server's deadline after beat k is floor(r_k + nri) > r_k + nri - 1
#     >= s_k + nri - 1 (flooring can cost up to one second). Beat k+1 arrives at
#     r_{k+1} <= s_k + interval + lam, before that deadline when lam <= slack - 1,
#     so no sweep (reaping at deadline <= sweep time) can fall in between. The
#     run's registration at t=0 counts as beat 0 received at 0.
# Both together: lam < min(request_timeout / 2, interval / 2, slack / 4, slack - 1).


def smallest_request_budget(machine: HeartbeatMachine, request_timeout: float) -> float:
    slack = machine.next_report_increment - machine.interval
    return min(request_timeout, machine.interval, slack / 2)


@st.composite
def calm_sessions(draw: st.DrawFn) -> tuple[Simulation, HeartbeatMachine, float]:
    interval = draw(st.floats(1.0, 120.0))
    slack = draw(st.floats(1.05, 2 * interval + 1.5))
    timeout = draw(st.floats(0.5, 30.0))
    backoff = draw(st.floats(0.01, 5.0))
    buffer = 1.0 + slack / interval
    probe = HeartbeatMachine(
        interval=interval, report_by_buffer=buffer, initial_status="R", now=0.0
    )
    true_slack = probe.next_report_increment - probe.interval
    budget = smallest_request_budget(probe, timeout)
    bound = min(budget / 2, true_slack - 1)
    latency_max = bound * draw(st.floats(0.0, 0.99))
    latency_min = latency_max * draw(st.floats(0.0, 1.0))
    simulation, machine, _ = build(
        interval=interval,
        report_by_buffer=buffer,
        seed=draw(st.integers(0, 2**32)),
        latency_min=latency_min,
        latency_max=latency_max,
        reap_period=draw(st.floats(0.05, 100.0)),
        request_timeout=timeout,
        backoff_initial=backoff,
    )
    # Run past the 20th answer but not to the 21st beat:
    # round trip < this margin < budget <= interval.
    return simulation, machine, 20 * interval + (2 * latency_max + budget) / 2


@settings(max_examples=150, deadline=None)
@given(calm_sessions())
def test_round_trips_within_the_slack_never_get_a_live_client_reaped(
    session: tuple[Simulation, HeartbeatMachine, float],
) -> None:
    simulation, machine, until = session
    result = simulation.run(until=until)
    assert result.reaps == ()
    assert result.server_status == "R"
    assert result.stats.lapses == result.stats.timeouts == 0
    assert result.stats.beats_sent == result.stats.renewals == 20
    sends = [e.time for e in entries(result, "send")]
    assert sends == pytest.approx(
        [machine.interval * k for k in range(1, len(sends) + 1)]
    )


def test_under_a_second_of_slack_is_reaped_even_on_a_perfect_network() -> None:
    # Term (2) of the bound: the deadline of the registration is floor(30.5) = 30,
    # and beat 1, sent at 30 s with no latency at all, arrives just too late.
    simulation, _, _ = build(
        report_by_buffer=30.5 / 30, latency_min=0.0, latency_max=0.0
    )
    result = simulation.run(until=100.0)
    assert result.reaps[0] == Reap(time=30.0, run_id=1, status="R", deadline=30)


def test_a_request_slower_than_the_slack_gets_the_run_reaped() -> None:
    # The counterpart of the bound above: beat 1 leaves at 30 s and arrives at
    # 45.5 s, after the deadline of the registration (45 s).
    simulation, _, _ = build(latency_min=15.5, latency_max=15.5)
    result = simulation.run(until=100.0)
    assert result.reaps[0] == Reap(time=45.0, run_id=1, status="R", deadline=45)


@st.composite
def outage_sessions(
    draw: st.DrawFn,
) -> tuple[Simulation, HeartbeatMachine, OutageWindow]:
    interval = draw(st.floats(5.0, 60.0))
    buffer = draw(st.floats(1.3, 3.0))
    increment = interval * buffer
    start = draw(st.floats(interval, 4 * interval))
    end = start + draw(st.floats(increment, 4 * increment))
    outage = OutageWindow(
        start=start, end=end, mode=draw(st.sampled_from(["refuse", "hang"]))
    )
    simulation, machine, _ = build(
        interval=interval,
        report_by_buffer=buffer,
        seed=draw(st.integers(0, 2**32)),
        latency_min=0.0,
        latency_max=0.1,  # within the bound for these settings (see above)
        outages=[outage],
        reap_period=draw(st.floats(1.0, 120.0)),
    )
    return simulation, machine, outage


@settings(max_examples=150, deadline=None)
@given(outage_sessions())
def test_an_outage_past_the_lease_is_learnt_once_and_recovered_from_once(
    session: tuple[Simulation, HeartbeatMachine, OutageWindow],
) -> None:
    simulation, machine, outage = session
    result = simulation.run(until=outage.end + 3 * machine.interval)
    (lapsed,) = entries(result, "lapsed")
    (restored,) = entries(result, "restored")
    assert outage.start < lapsed.time <= outage.end  # equal only by rounding
    # The first beat after the outage leaves within an interval of the last one
    # before its end; if the run was reaped its answer is "E", and the "E" beat
    # that follows at once renews: at most two round trips of 0.2 s.
    assert outage.end <= restored.time <= outage.end + machine.interval + 0.4
    assert result.stats.lapses == 1
    for reap in result.reaps:
        # The server keeps whole seconds: it may reap up to 1 s before the
        # client's lease (which runs from a send time) has run out, never more.
        assert lapsed.time < reap.time + 1.0
    statuses = [e.detail for e in entries(result, "status")]
    if result.reaps:
        assert statuses == ["R -> E, signalled by the server"]
        assert (result.client_status, result.server_status) == ("E", "E")
    else:
        assert statuses == []
        assert (result.client_status, result.server_status) == ("R", "R")


@st.composite
def rough_sessions(draw: st.DrawFn) -> dict[str, object]:
    window = st.tuples(st.floats(0.0, 500.0), st.floats(1.0, 200.0))
    outages = [
        OutageWindow(start=s, end=s + d, mode=draw(st.sampled_from(["refuse", "hang"])))
        for s, d in draw(st.lists(window, max_size=2))
    ]
    errors = [
        ServerErrorWindow(
            start=s,
            end=s + d,
            status_code=draw(st.sampled_from([500, 503])),
            retry_after=draw(st.none() | st.floats(0.0, 60.0)),
        )
        for s, d in draw(st.lists(window, max_size=2))
    ]
    latency_min = draw(st.floats(0.0, 2.0))
    return {
        "seed": draw(st.integers(0, 2**32)),
        "interval": draw(st.floats(1.0, 60.0)),
        "report_by_buffer": draw(st.floats(1.0, 3.0)),
        "latency_min": latency_min,
        "latency_max": latency_min + draw(st.floats(0.0, 10.0)),
        "loss": draw(st.floats(0.0, 0.5)),
        "outages": outages,
        "server_errors": errors,
        "reap_period": draw(st.floats(0.5, 60.0)),
    }


@settings(max_examples=60, deadline=None)
@given(rough_sessions(), st.floats(0.0, 600.0), st.sampled_from(["C", "H", "D"]))
def test_same_seed_same_timeline(
    config: dict[str, object], signal_at: float, signal: str
) -> None:
    results = []
    for _ in range(2):
        simulation, _, _ = build(**config)  # type: ignore[arg-type]
        simulation.schedule_signal(signal_at, signal)
        results.append(simulation.run(until=600.0))
    assert results[0] == results[1]


def test_another_seed_gives_another_timeline() -> None:
    one, _, _ = build(seed=1, loss=0.2)
    two, _, _ = build(seed=2, loss=0.2)
    assert one.run(until=600.0).timeline != two.run(until=600.0).timeline


# ----------------------------------------------------------- the main job, purity


def test_main_tells_the_whole_story_in_under_80_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert sansbeat.__main__.main() == 0
    first = capsys.readouterr().out
    assert sansbeat.__main__.main() == 0
    assert capsys.readouterr().out == first
    lines = first.splitlines()
    assert len(lines) < 80
    kinds = {
        line.split()[2] for line in lines if line[:9].strip().replace(".", "").isdigit()
    }
    assert {
        "signal",
        "status",
        "failure",
        "timeout",
        "lapsed",
        "reap",
        "restored",
    } <= kinds
    assert "final status: client E, server E" in lines


@pytest.mark.parametrize("module", ["sim.py", "__main__.py"])
def test_simulation_modules_import_no_clock_socket_thread_or_loop(module: str) -> None:
    forbidden = {"time", "socket", "select", "threading", "asyncio", "trio", "anyio"}
    tree = ast.parse((CORE / module).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
    }
    assert not imported & forbidden
