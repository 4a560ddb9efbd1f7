"""One property test per timing rule of `HeartbeatMachine`.

The rules are those of DESIGN.md ("Timing rules to guarantee"), with the exact
semantics the machine's docstrings give them. Each test draws a valid configuration
and a random timed sequence of inputs (`machine_strategies.scripts`), plays it like
a driver would, and checks the recorded trace against `RuleModel`, which derives
from the rules alone what every call must have done. All time is virtual.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from dataclasses import replace
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from sansbeat import (
    MAX_TIME,
    MIN_DURATION,
    Action,
    HeartbeatMachine,
    LeaseLapsed,
    LeaseRestored,
    SansbeatError,
    SendHeartbeat,
    StatusChanged,
    UsageError,
)
from tests.machine_strategies import (
    MACHINE_SETTINGS,
    STATUSES,
    Call,
    MachineConfig,
    Player,
    Script,
    Step,
    at_least,
    at_most,
    close,
    expected_request_deadline,
    healthy_ops,
    machine_configs,
    observed,
    outage_ops,
    play,
    scripts,
    sends_in,
    snapshot,
    steps,
    without_probes,
)

any_scripts = scripts() | scripts(ops=healthy_ops) | scripts(ops=outage_ops)
punctual_scripts = (
    scripts(punctual=True)
    | scripts(ops=healthy_ops, punctual=True)
    | scripts(ops=outage_ops, punctual=True)
)
live_scripts = (
    scripts(stop=False)
    | scripts(ops=healthy_ops, stop=False)
    | scripts(ops=outage_ops, stop=False)
)


def replay(calls: list[Call]) -> list[tuple[object, ...]]:
    """What a sequence of calls did, comparable across players."""
    return [
        (c.kind, c.now, c.seq, c.status, c.retry_after, c.actions, c.after)
        for c in calls
    ]


def continue_both(a: Player, b: Player, more: tuple[Step, ...]) -> None:
    """Play the same continuation on two players and require identical outcomes."""
    b.now = a.now
    start_a, start_b = len(a.calls), len(b.calls)
    a.run(more)
    b.run(more)
    assert replay(a.calls[start_a:]) == replay(b.calls[start_b:])


# ---------------------------------------------------------------- 1. single flight


@MACHINE_SETTINGS
@given(script=any_scripts)
def test_single_flight_at_most_one_request_outstanding(script: Script) -> None:
    for expected, model in observed(play(script)):
        call = expected.call
        sent = sends_in(call)
        assert len(sent) <= 1, f"call {call.index} sent {len(sent)} beats"
        if sent:
            # The previous request must have ended: answered, failed, or past its
            # deadline at this call.
            out = expected.flight_at_send
            assert out is None, f"beat {sent[0].seq} sent while beat {out} was out"
        in_flight = None if model.flight is None else model.flight.seq
        assert call.after.in_flight == in_flight


# ---------------------------------------------------------------- 2. cadence


@MACHINE_SETTINGS
@given(script=any_scripts)
def test_cadence_is_measured_from_the_send(script: Script) -> None:
    """After a renewal the next beat is due `interval` after the renewed beat was
    sent, however long its answer took (after `reset_timer`: one interval after
    it); a punctual driver sends it exactly then, and no driver sends it earlier."""
    interval = script.config.interval
    due: float | None = None
    for expected, model in observed(play(script)):
        call = expected.call
        sent = sends_in(call)
        changed_status = (
            call.kind == "set_status" and call.status != expected.status_before
        )
        if call.kind in ("reset_timer", "beat_now", "stop") or changed_status:
            due = None  # the schedule was taken over by another rule
        if due is not None:
            if sent:
                assert at_least(call.now, due), f"beat at {call.now}, due at {due}"
                if script.punctual:
                    assert close(call.now, due), f"beat at {call.now}, due at {due}"
                due = None
            else:
                assert call.now < due or model.stopped, (
                    f"no beat at {call.now} although one was due at {due}"
                )
        if sent or model.stopped or model.status != model.last_sent_status:
            continue  # a new status goes at once, by another rule
        if expected.renewal:
            # From the send (or a reset_timer while the beat was out).
            due = expected.cadence_before + interval
        elif call.kind == "reset_timer" and model.flight is None:
            due = call.now + interval


# ---------------------------------------------------------------- 3. exact wakeups


@MACHINE_SETTINGS
@given(
    script=any_scripts,
    where=st.floats(0.0, 1.0, exclude_max=True),
    more=steps(max_steps=10),
)
def test_tick_before_next_deadline_changes_nothing(
    script: Script, where: float, more: tuple[Step, ...]
) -> None:
    player = play(script)
    untouched = player.fork()
    deadline = player.machine.next_deadline
    horizon = player.now + script.config.interval if deadline is None else deadline
    assume(horizon > player.now)  # only beat_at_start leaves no time before it
    now = player.now + where * (horizon - player.now)
    if now >= horizon:  # rounding
        now = player.now
    before = snapshot(player.machine, now)
    assert player.tick(now) == ()
    assert snapshot(player.machine, now) == before
    continue_both(player, untouched, more)


@MACHINE_SETTINGS
@given(script=live_scripts)
def test_tick_at_next_deadline_acts_and_moves_deadline_forward(script: Script) -> None:
    player = play(script)
    for call in player.calls:
        assert call.after.stopped or (
            call.after.next_deadline is not None and call.after.next_deadline > call.now
        ), f"next_deadline {call.after.next_deadline} not after {call.now}"
        if call.punctual:
            assert (
                call.actions or call.after.stats.timeouts > call.before.stats.timeouts
            )
    deadline = player.machine.next_deadline
    assert deadline is not None
    timeouts = player.machine.stats.timeouts
    actions = player.tick(deadline)
    # Whatever was due then happened: a request expired, the lease lapsed, or a
    # beat went out.
    assert actions or player.machine.stats.timeouts == timeouts + 1
    later = player.machine.next_deadline
    assert later is not None
    assert later > deadline


@MACHINE_SETTINGS
@given(script=any_scripts)
def test_next_deadline_is_never_later_than_what_is_scheduled(script: Script) -> None:
    """`next_deadline` is no later than the request's deadline, the live lease's
    deadline, and one interval after the last beat (or reset_timer)."""
    interval = script.config.interval
    for expected, model in observed(play(script)):
        deadline = expected.call.after.next_deadline
        if model.stopped:
            assert deadline is None
            continue
        assert deadline is not None
        if model.flight is not None:
            assert deadline <= model.flight.deadline
        if not model.lapsed:
            assert deadline <= model.lease_deadline
        assert at_most(deadline, model.cadence_from + interval)


# ---------------------------------------------------------------- 4. increment


@MACHINE_SETTINGS
@given(script=any_scripts)
def test_next_report_increment_is_interval_times_buffer(script: Script) -> None:
    config = script.config
    player = play(script)
    assert (
        player.machine.next_report_increment
        == config.interval * config.report_by_buffer
    )
    for call in player.calls:
        for beat in sends_in(call):
            assert (
                beat.next_report_increment == config.interval * config.report_by_buffer
            )
            assert beat.next_report_increment == call.after.next_report_increment


# ---------------------------------------------------------------- 5. request deadlines


@MACHINE_SETTINGS
@given(script=any_scripts)
def test_every_request_has_a_deadline_inside_the_live_lease(script: Script) -> None:
    """deadline = send + min(request_timeout, interval, half of the remaining lease
    when that half is at least backoff_initial / 2)."""
    config = script.config
    for call in play(script).calls:
        for beat in sends_in(call):
            lease = call.after.lease_deadline  # a send never moves the lease
            assert math.isfinite(beat.deadline)
            assert beat.deadline > call.now
            assert at_most(
                beat.deadline, call.now + min(config.request_timeout, config.interval)
            )
            assert close(
                beat.deadline, expected_request_deadline(config, call.now, lease)
            )
            half = (lease - call.now) / 2
            if half >= config.backoff_initial / 2:
                # A retry after this request's timeout still fits in the lease.
                assert beat.deadline < lease


# ---------------------------------------------------------------- 6. retries


@MACHINE_SETTINGS
@given(script=any_scripts)
def test_retries_are_fresh_beats_with_capped_jittered_backoff(script: Script) -> None:
    last_seq = 0
    for expected, model in observed(play(script)):
        call = expected.call
        sent = sends_in(call)
        for beat in sent:
            assert beat.seq == last_seq + 1, "every beat gets the next sequence number"
            assert beat.status == model.status, "every beat carries the current status"
            last_seq = beat.seq
        window = expected.pending_retry
        if window is None or expected.flight_at_send is not None or model.stopped:
            continue
        if sent:
            assert at_least(call.now, window.earliest), (
                f"retry at {call.now}, before {window.earliest} ({window})"
            )
            if script.punctual:
                assert at_most(call.now, window.latest), (
                    f"retry at {call.now}, after {window.latest} ({window})"
                )
        else:
            assert at_most(call.now, window.latest), (
                f"no retry at {call.now} though due by {window.latest} ({window})"
            )


@MACHINE_SETTINGS
@given(script=punctual_scripts)
def test_retries_stay_inside_live_lease_window(script: Script) -> None:
    """While the lease is live, a retry takes at most half of what remains of it."""
    for expected, _model in observed(play(script)):
        call = expected.call
        window = expected.pending_retry
        if window is None or window.status_changed or not sends_in(call):
            continue
        cap = window.lease_cap
        if cap is not None:
            assert at_most(call.now, window.at + cap), (window, call.now)
            assert call.now < window.lease_deadline


@MACHINE_SETTINGS
@given(script=punctual_scripts)
def test_retries_continue_after_lapse_at_least_once_per_interval(
    script: Script,
) -> None:
    """Lapsed or not, a punctual driver sends a beat at least once per interval
    (measured from the previous beat or reset_timer), whatever the backoff."""
    interval = script.config.interval
    for expected, model in observed(play(script)):
        call = expected.call
        if expected.stopped_before or call.kind == "stop":
            continue
        if sends_in(call):
            assert at_most(call.now, expected.cadence_before + interval), (
                f"beat at {call.now}, more than {interval} after "
                f"{expected.cadence_before} (lapsed: {expected.lapsed_before})"
            )
        deadline = call.after.next_deadline
        assert deadline is not None
        assert at_most(deadline, model.cadence_from + interval)


@MACHINE_SETTINGS
@given(script=scripts(ops=outage_ops) | scripts(ops=outage_ops, punctual=True))
def test_retry_after_is_honoured_within_bounds(script: Script) -> None:
    """Retry-After raises the delay up to the interval; the lease cap and the
    once-per-interval rule still bound it."""
    interval = script.config.interval
    for expected, _model in observed(play(script)):
        call = expected.call
        window = expected.pending_retry
        if (
            window is None
            or window.retry_after is None
            or window.status_changed
            or expected.flight_at_send is not None
        ):
            continue
        honoured = window.at + min(window.retry_after, interval)
        bounds = [honoured, window.cadence_from + interval]
        if window.lease_cap is not None:
            bounds.append(window.at + window.lease_cap)
        if sends_in(call):
            assert at_least(call.now, min(bounds)), (call.now, window)
            if script.punctual:
                assert at_most(call.now, window.cadence_from + interval)
                assert at_most(call.now, window.latest)


# ---------------------------------------------------------------- 7. lease deadline


@MACHINE_SETTINGS
@given(script=any_scripts)
def test_lease_deadline_is_measured_from_the_send_of_the_renewed_beat(
    script: Script,
) -> None:
    """lease_deadline = send time of the last renewed beat (or reset_timer) +
    next_report_increment - lease_margin."""
    lease = script.config.lease_length
    for expected, model in observed(play(script)):
        call = expected.call
        assert call.after.last_heartbeat_time == model.renewed_at
        assert call.after.lease_deadline == model.lease_deadline
        assert call.after.lease_deadline == call.after.last_heartbeat_time + lease
        answered = expected.answered
        moved = call.after.last_heartbeat_time != call.before.last_heartbeat_time
        if expected.renewal and answered is not None and moved:
            # From the send of the renewed beat, never from the response time.
            assert call.after.last_heartbeat_time == answered.sent_at
            assert call.after.lease_deadline == answered.sent_at + lease


# ---------------------------------------------------------------- 8. lapse


@MACHINE_SETTINGS
@given(script=any_scripts)
def test_lapse_and_restore_reported_exactly_once_each(script: Script) -> None:
    history: list[Action] = []
    for expected, model in observed(play(script)):
        call = expected.call
        lapses = [a for a in call.actions if isinstance(a, LeaseLapsed)]
        restores = [a for a in call.actions if isinstance(a, LeaseRestored)]
        assert lapses == ([] if expected.lapse is None else [expected.lapse])
        assert restores == ([] if expected.restore is None else [expected.restore])
        kinds = [type(a) for a in call.actions]
        order = [LeaseLapsed, LeaseRestored, StatusChanged, SendHeartbeat]
        assert kinds == sorted(kinds, key=order.index), f"actions out of order: {kinds}"
        assert call.after.lapsed == model.lapsed
        history += [*lapses, *restores]
    for earlier, later in itertools.pairwise(history):
        assert type(earlier) is not type(later), "lapse and restore must alternate"
    if history:
        assert isinstance(history[0], LeaseLapsed)


# ---------------------------------------------------------------- 9. local writes


@MACHINE_SETTINGS
@given(script=any_scripts)
def test_response_never_overwrites_newer_local_status(script: Script) -> None:
    for expected, _model in observed(play(script)):
        call = expected.call
        answered = expected.answered
        if call.kind != "response" or answered is None:
            continue
        if expected.status_before != answered.status:
            # The application changed its status while this beat was out.
            assert not any(isinstance(a, StatusChanged) for a in call.actions)
            assert call.after.current_status == expected.status_before
            assert [b.status for b in sends_in(call)] == [expected.status_before]


@MACHINE_SETTINGS
@given(script=any_scripts)
def test_new_local_status_goes_out_at_once(script: Script) -> None:
    for expected, model in observed(play(script)):
        call = expected.call
        if model.stopped:
            continue
        if call.kind == "set_status" and call.status != expected.status_before:
            if expected.flight_at_send is None:
                assert [b.status for b in sends_in(call)] == [call.status]
            else:
                assert sends_in(call) == []
        # Never an unsent status while nothing is in flight.
        if model.flight is None:
            assert model.status == model.last_sent_status, (
                f"status {model.status!r} waits unsent after call {call.index}"
            )


# ---------------------------------------------------------------- 10. signals


@MACHINE_SETTINGS
@given(script=any_scripts)
def test_server_signals_surface_once_each_in_order(script: Script) -> None:
    seen: list[StatusChanged] = []
    wanted: list[StatusChanged] = []
    for expected, model in observed(play(script)):
        call = expected.call
        changes = [a for a in call.actions if isinstance(a, StatusChanged)]
        assert changes == (
            [] if expected.status_changed is None else [expected.status_changed]
        )
        seen += changes
        if expected.status_changed is not None:
            wanted.append(expected.status_changed)
            assert call.after.current_status == expected.status_changed.new
            assert [b.status for b in sends_in(call)] == [expected.status_changed.new]
        if expected.signal:
            # A signal is not a renewal.
            assert call.after.lease_deadline == call.before.lease_deadline
            assert expected.restore is None
        assert call.after.stats.signals == model.signals
    assert seen == wanted


# ---------------------------------------------------------------- 11. late ticks


@MACHINE_SETTINGS
@given(
    script=live_scripts,
    late=st.just(1.0) | st.floats(1.0, 1000.0) | st.integers(2, 10**5).map(float),
)
def test_late_tick_gives_at_most_one_beat(script: Script, late: float) -> None:
    player = play(script)
    lease = player.machine.lease_deadline
    was_lapsed = player.machine.lapsed
    now = player.now + late * script.config.interval
    actions = player.tick(now)
    kinds = [type(a) for a in actions]
    # At least one interval after the last input a beat is always due: exactly one.
    assert kinds.count(SendHeartbeat) == 1, actions
    if not was_lapsed and now >= lease:
        assert actions[0] == LeaseLapsed(deadline=lease)
    assert set(kinds) <= {LeaseLapsed, SendHeartbeat}
    deadline = player.machine.next_deadline
    assert deadline is not None
    assert deadline > now
    assert player.tick(now) == ()


# ---------------------------------------------------------------- 12. configuration

VALID = {
    "interval": 30.0,
    "report_by_buffer": 1.5,
    "initial_status": "R",
    "now": 0.0,
    "request_timeout": 10.0,
    "backoff_initial": 1.0,
    "beat_at_start": False,
    "rng": None,
}

NUMBER_ABUSE: list[object] = [math.nan, math.inf, -math.inf, True, "30", None]
DURATION_ABUSE: list[object] = [
    0.0,
    -1.0,
    MIN_DURATION / 2,
    MAX_TIME * 2,
    *NUMBER_ABUSE,
]
BAD_SETTINGS: list[tuple[str, object]] = [
    *(("interval", v) for v in DURATION_ABUSE),
    *(("report_by_buffer", v) for v in [0.999, 0.0, -1.0, *NUMBER_ABUSE]),
    *(("initial_status", v) for v in ["", None, 1, b"R"]),
    *(("now", v) for v in [MAX_TIME * 2, -MAX_TIME * 2, *NUMBER_ABUSE]),
    *(("request_timeout", v) for v in DURATION_ABUSE),
    *(("backoff_initial", v) for v in DURATION_ABUSE),
    *(("beat_at_start", v) for v in [1, 0, "yes", None]),
    *(("lease_margin", v) for v in [-1.0, -MIN_DURATION, *NUMBER_ABUSE]),
    *(("rng", v) for v in [42, "seed", object()]),
]


def _same(a: object, b: object) -> bool:
    return (
        a is b or a == b or (isinstance(a, float) and isinstance(b, float) and a != a)
    )


def _config_kwargs(config: MachineConfig) -> dict[str, Any]:
    return {
        "interval": config.interval,
        "report_by_buffer": config.report_by_buffer,
        "initial_status": config.initial_status,
        "now": config.start,
        "request_timeout": config.request_timeout,
        "backoff_initial": config.backoff_initial,
        "beat_at_start": config.beat_at_start,
        "lease_margin": config.lease_margin,
        "rng": random.Random(config.seed),
    }


@pytest.mark.parametrize(("name", "value"), BAD_SETTINGS, ids=repr)
@settings(MACHINE_SETTINGS, max_examples=10)
@given(config=machine_configs())
def test_invalid_configuration_refused_naming_field(
    name: str, value: object, config: MachineConfig
) -> None:
    kwargs = {**_config_kwargs(config), name: value}
    with pytest.raises(UsageError) as raised:
        HeartbeatMachine(**kwargs)
    error = raised.value
    assert isinstance(error, SansbeatError)
    assert isinstance(error, ValueError)
    assert error.field == name
    assert _same(error.value, value)
    assert error.rule
    assert name in str(error)
    assert error.rule in str(error)


@settings(MACHINE_SETTINGS, max_examples=20)
@given(config=machine_configs(), short=st.floats(0.001, 1.0))
def test_lease_margin_must_leave_a_lease_of_one_interval(
    config: MachineConfig, short: float
) -> None:
    margin = config.increment - config.interval * (1 - short)
    kwargs = {**_config_kwargs(config), "lease_margin": margin}
    with pytest.raises(UsageError) as raised:
        HeartbeatMachine(**kwargs)
    assert raised.value.field == "lease_margin"


def test_lease_beyond_max_time_refused_naming_both_fields() -> None:
    kwargs = {**VALID, "interval": 3600.0, "report_by_buffer": MAX_TIME}
    with pytest.raises(UsageError) as raised:
        HeartbeatMachine(**kwargs)  # type: ignore[arg-type]
    assert raised.value.field == "interval * report_by_buffer"


def test_valid_boundary_configuration_accepted() -> None:
    machine = HeartbeatMachine(
        interval=MIN_DURATION,
        report_by_buffer=1,
        initial_status="R",
        now=-MAX_TIME,
        request_timeout=MIN_DURATION,
        backoff_initial=MIN_DURATION,
    )
    assert machine.next_deadline == -MAX_TIME + MIN_DURATION
    assert machine.next_report_increment == MIN_DURATION


# ---------------------------------------------------------------- bad inputs

BadCall = Callable[[HeartbeatMachine, float, int], object]


def _earlier(now: float) -> float:
    return math.nextafter(now, -math.inf)


def _issued(next_seq: int) -> int:
    assume(next_seq > 1)  # a valid sequence number is needed to reach the check
    return next_seq - 1


BAD_INPUTS: dict[str, tuple[str, BadCall]] = {
    "tick earlier than last": ("now", lambda m, now, _: m.tick(_earlier(now))),
    "tick NaN": ("now", lambda m, now, _: m.tick(math.nan)),
    "tick inf": ("now", lambda m, now, _: m.tick(math.inf)),
    "tick -inf": ("now", lambda m, now, _: m.tick(-math.inf)),
    "tick beyond MAX_TIME": ("now", lambda m, now, _: m.tick(MAX_TIME * 2)),
    "tick bool": ("now", lambda m, now, _: m.tick(True)),
    "tick None": ("now", lambda m, now, _: m.tick(None)),  # type: ignore[arg-type]
    "tick str": ("now", lambda m, now, _: m.tick("1.0")),  # type: ignore[arg-type]
    "tick Fraction": ("now", lambda m, now, _: m.tick(Fraction(1, 2))),  # type: ignore[arg-type]
    "response earlier than last": (
        "now",
        lambda m, now, seq: m.handle_response(_issued(seq), "R", _earlier(now)),
    ),
    "response NaN time": (
        "now",
        lambda m, now, seq: m.handle_response(1, "R", math.nan),
    ),
    "response inf time": (
        "now",
        lambda m, now, seq: m.handle_response(1, "R", math.inf),
    ),
    "response bool time": ("now", lambda m, now, seq: m.handle_response(1, "R", True)),
    "response seq 0": ("seq", lambda m, now, _: m.handle_response(0, "R", now)),
    "response seq -1": ("seq", lambda m, now, _: m.handle_response(-1, "R", now)),
    "response seq never issued": (
        "seq",
        lambda m, now, seq: m.handle_response(seq, "R", now),
    ),
    "response seq bool": ("seq", lambda m, now, _: m.handle_response(True, "R", now)),
    "response seq float": ("seq", lambda m, now, _: m.handle_response(1.0, "R", now)),  # type: ignore[arg-type]
    "response seq str": ("seq", lambda m, now, _: m.handle_response("1", "R", now)),  # type: ignore[arg-type]
    "response status None": (
        "status",
        lambda m, now, seq: m.handle_response(_issued(seq), None, now),  # type: ignore[arg-type]
    ),
    "response status empty": (
        "status",
        lambda m, now, seq: m.handle_response(_issued(seq), "", now),
    ),
    "response status int": (
        "status",
        lambda m, now, seq: m.handle_response(_issued(seq), 1, now),  # type: ignore[arg-type]
    ),
    "response status bytes": (
        "status",
        lambda m, now, seq: m.handle_response(_issued(seq), b"R", now),  # type: ignore[arg-type]
    ),
    "failure earlier than last": (
        "now",
        lambda m, now, seq: m.handle_failure(_issued(seq), _earlier(now)),
    ),
    "failure NaN time": ("now", lambda m, now, seq: m.handle_failure(1, math.nan)),
    "failure seq never issued": ("seq", lambda m, now, seq: m.handle_failure(seq, now)),
    "failure seq bool": ("seq", lambda m, now, _: m.handle_failure(True, now)),
    "failure retry_after negative": (
        "retry_after",
        lambda m, now, seq: m.handle_failure(_issued(seq), now, -1.0),
    ),
    "failure retry_after NaN": (
        "retry_after",
        lambda m, now, seq: m.handle_failure(_issued(seq), now, math.nan),
    ),
    "failure retry_after inf": (
        "retry_after",
        lambda m, now, seq: m.handle_failure(_issued(seq), now, math.inf),
    ),
    "failure retry_after bool": (
        "retry_after",
        lambda m, now, seq: m.handle_failure(_issued(seq), now, True),
    ),
    "failure retry_after str": (
        "retry_after",
        lambda m, now, seq: m.handle_failure(_issued(seq), now, "5"),  # type: ignore[arg-type]
    ),
    "set_status earlier than last": (
        "now",
        lambda m, now, _: m.set_status("D", _earlier(now)),
    ),
    "set_status NaN time": ("now", lambda m, now, _: m.set_status("D", math.nan)),
    "set_status empty": ("status", lambda m, now, _: m.set_status("", now)),
    "set_status None": ("status", lambda m, now, _: m.set_status(None, now)),  # type: ignore[arg-type]
    "set_status int": ("status", lambda m, now, _: m.set_status(3, now)),  # type: ignore[arg-type]
    "reset_timer earlier than last": (
        "now",
        lambda m, now, _: m.reset_timer(_earlier(now)),
    ),
    "reset_timer NaN": ("now", lambda m, now, _: m.reset_timer(math.nan)),
    "reset_timer bool": ("now", lambda m, now, _: m.reset_timer(True)),
    "beat_now earlier than last": ("now", lambda m, now, _: m.beat_now(_earlier(now))),
    "beat_now NaN": ("now", lambda m, now, _: m.beat_now(math.nan)),
    "beat_now str": ("now", lambda m, now, _: m.beat_now("1")),  # type: ignore[arg-type]
    "stop earlier than last": ("now", lambda m, now, _: m.stop(_earlier(now))),
    "stop NaN": ("now", lambda m, now, _: m.stop(math.nan)),
    "stop None": ("now", lambda m, now, _: m.stop(None)),  # type: ignore[arg-type]
}

#: Start at zero and do nothing: the first deadline is then ahead of the clock, the
#: case in which an unchecked fast path would take `True` for one second.
AT_ZERO = Script(
    config=MachineConfig(
        interval=30.0,
        report_by_buffer=1.5,
        initial_status="R",
        start=0.0,
        request_timeout=10.0,
        backoff_initial=1.0,
        beat_at_start=False,
        lease_margin=0.0,
        seed=0,
    ),
    steps=(),
    punctual=False,
)


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=str)
@settings(MACHINE_SETTINGS, max_examples=10)
@example(script=AT_ZERO, more=())
@given(script=any_scripts, more=steps(max_steps=5))
def test_bad_input_refused_and_state_unchanged(
    case: str, script: Script, more: tuple[Step, ...]
) -> None:
    field, bad_call = BAD_INPUTS[case]
    player = play(script)
    untouched = player.fork()
    now = player.now
    next_seq = max(player.sent, default=0) + 1
    before = snapshot(player.machine, now)
    with pytest.raises(UsageError) as raised:
        bad_call(player.machine, now, next_seq)
    assert raised.value.field == field
    assert snapshot(player.machine, now) == before
    # Nothing hidden changed either: the same future unfolds as without the call.
    continue_both(player, untouched, more)


# ---------------------------------------------------------------- stale answers


@MACHINE_SETTINGS
@given(
    script=any_scripts,
    pick=st.floats(0.0, 1.0, exclude_max=True),
    at_deadline=st.booleans(),
    wait=st.floats(0.0, 2.0),
    status=st.none() | st.sampled_from(STATUSES),
    as_failure=st.booleans(),
    retry_after=st.none() | st.floats(0.0, 100.0),
)
def test_stale_answer_counted_and_changes_nothing(
    script: Script,
    pick: float,
    at_deadline: bool,
    wait: float,
    status: str | None,
    as_failure: bool,
    retry_after: float | None,
) -> None:
    """An answer or failure for a request no longer in flight (answered, failed, or
    past its deadline) adds one to stale_responses and is otherwise a no-op input."""
    player = play(script)
    assume(not player.machine.stopped)
    in_flight = player.machine.in_flight
    now = player.now + wait * script.config.interval
    if at_deadline and in_flight is not None:
        seq = in_flight
        now = max(now, player.sent[seq].deadline)  # expires first, then is stale
    else:
        stale = [seq for seq in player.sent if seq != in_flight]
        assume(stale)
        seq = stale[int(pick * len(stale))]
    reference = player.fork()
    if as_failure:
        actions = player.fail(seq, now, retry_after)
    else:
        actions = player.respond(
            seq, player.sent[seq].status if status is None else status, now
        )
    # The no-op input at the same time: setting the status it already has.
    expected = reference.set_status(reference.machine.current_status, now)
    assert actions == expected
    want = snapshot(reference.machine, now)
    counted = replace(want.stats, stale_responses=want.stats.stale_responses + 1)
    assert snapshot(player.machine, now) == replace(want, stats=counted)


# ---------------------------------------------------------------- 13. stop


@MACHINE_SETTINGS
@given(script=scripts(stop=True) | scripts(ops=outage_ops, stop=True))
def test_after_stop_nothing_is_sent(script: Script) -> None:
    player = play(script)
    stops = [c for c in player.calls if c.kind == "stop"]
    assert len(stops) == 1
    stop = stops[0]
    assert stop.actions == ()
    settled = without_probes(stop.after)
    assert settled.stopped
    assert settled.next_deadline is None
    assert settled.in_flight is None
    for call in player.calls[stop.index + 1 :]:
        assert call.actions == (), f"{call.kind} after stop returned {call.actions}"
        assert without_probes(call.after) == settled
        assert not call.after.is_heartbeat_due
    # Even the answer to the request that was out when it stopped changes nothing.
    for seq, beat in player.sent.items():
        assert player.respond(seq, beat.status, player.now) == ()
        assert player.fail(seq, player.now, None) == ()
    assert without_probes(snapshot(player.machine, player.now)) == settled


# ---------------------------------------------------------------- 14. counters


@MACHINE_SETTINGS
@given(script=any_scripts)
def test_counters_match_the_actions(script: Script) -> None:
    beats = lapses = 0
    for expected, model in observed(play(script)):
        call = expected.call
        beats += len(sends_in(call))
        lapses += sum(isinstance(a, LeaseLapsed) for a in call.actions)
        stats = call.after.stats
        assert stats.beats_sent == beats
        assert stats.lapses == lapses
        assert stats == model.stats(), f"after call {call.index} ({call.kind})"


# ---------------------------------------------------------------- determinism and ticks


@MACHINE_SETTINGS
@given(script=any_scripts)
def test_same_inputs_and_seed_give_same_outputs(script: Script) -> None:
    first = play(script)
    second = play(script, rng=random.Random(script.config.seed))
    assert replay(first.calls) == replay(second.calls)


@MACHINE_SETTINGS
@given(
    script=live_scripts,
    early=st.floats(0.0, 1.0, exclude_max=True),
    late=st.floats(0.0, 3.0),
)
def test_idle_tick_is_safe_early_late_and_twice(
    script: Script, early: float, late: float
) -> None:
    """As aioquic's adapter does, a driver may tick early, late, or twice."""
    player = play(script)
    deadline = player.machine.next_deadline
    assert deadline is not None
    # Early: nothing.
    now = player.now + early * (deadline - player.now)
    if now < deadline:
        before = snapshot(player.machine, now)
        assert player.tick(now) == ()
        assert snapshot(player.machine, now) == before
    # Late: acts once, and the deadline moves past now.
    now = deadline + late * script.config.interval
    player.tick(now)
    after = snapshot(player.machine, now)
    assert after.next_deadline is not None
    assert after.next_deadline > now
    # Twice: the second tick at the same time does nothing.
    assert player.tick(now) == ()
    assert snapshot(player.machine, now) == after


@MACHINE_SETTINGS
@given(script=any_scripts, wait=st.floats(0.0, 2.0))
def test_is_heartbeat_due_says_whether_a_beat_is_due_as_of_the_last_input(
    script: Script, wait: float
) -> None:
    """The docstring: true when no request is in flight (as of the last input) and
    the next beat's time has come, that is when `tick(now)` would send with no
    request to end first."""
    player = play(script)
    now = player.now + wait * script.config.interval
    due = player.machine.is_heartbeat_due(now)
    in_flight = player.machine.in_flight
    would_send = any(isinstance(a, SendHeartbeat) for a in player.fork().tick(now))
    assert due == (in_flight is None and would_send), (
        f"is_heartbeat_due({now}) is {due}; tick would send: {would_send}; "
        f"in flight: {in_flight}"
    )


@MACHINE_SETTINGS
@given(script=any_scripts)
def test_beat_now_sends_at_once_unless_one_is_in_flight(script: Script) -> None:
    interval = script.config.interval
    for expected, model in observed(play(script)):
        call = expected.call
        if call.kind != "beat_now" or model.stopped:
            continue
        sent = sends_in(call)
        if expected.flight_at_send is None:
            assert len(sent) == 1
            assert sent[0].status == call.after.current_status
            # The cadence runs from this beat: nothing else is due before the
            # request's deadline or one interval on.
            assert call.after.next_deadline is not None
            assert call.after.next_deadline <= call.now + interval
        else:
            assert sent == [], "the beat in flight is the one"


def test_tick_beyond_max_time_refused_near_the_limit() -> None:
    """MAX_TIME bounds every clock reading, also when a deadline lies past it."""
    machine = HeartbeatMachine(
        interval=3600.0, report_by_buffer=1.5, initial_status="R", now=MAX_TIME - 1
    )
    with pytest.raises(UsageError) as raised:
        machine.tick(MAX_TIME + 1)
    assert raised.value.field == "now"
