"""Fuzzing the machine's inputs: any value, any order, any time.

Every input gets arguments drawn from anything Python can pass (wrong types,
NaN, infinities, huge and negative numbers, bools, strings, None, containers)
mixed with plausible values. The promise checked: the only exception that ever
escapes is the documented `UsageError`, a refused call changes nothing, and the
machine's invariants hold after every call.
"""

from __future__ import annotations

import math
import random
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sansbeat import (
    MAX_TIME,
    HeartbeatMachine,
    LeaseLapsed,
    LeaseRestored,
    SendHeartbeat,
    StatusChanged,
    UsageError,
)

#: Examples per fuzz test (recorded in docs/testing.md).
FUZZ_EXAMPLES = 300

_junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.binary(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.fractions(max_denominator=10),
    st.just(object()),
)
_times = st.one_of(
    st.floats(min_value=0.0, max_value=1e6),
    st.floats(min_value=-MAX_TIME * 2, max_value=MAX_TIME * 2),
    _junk,
)
_statuses = st.one_of(st.sampled_from(["R", "D", "C", "H", "E"]), _junk)
_seqs = st.one_of(st.integers(min_value=-2, max_value=12), _junk)

_calls = st.one_of(
    st.tuples(st.just("tick"), st.tuples(_times)),
    st.tuples(st.just("handle_response"), st.tuples(_seqs, _statuses, _times)),
    st.tuples(st.just("handle_failure"), st.tuples(_seqs, _times, _junk | st.none())),
    st.tuples(st.just("set_status"), st.tuples(_statuses, _times)),
    st.tuples(st.just("beat_now"), st.tuples(_times)),
    st.tuples(st.just("reset_timer"), st.tuples(_times)),
    st.tuples(st.just("abandon"), st.tuples(_seqs, _times)),
    st.tuples(st.just("stop"), st.tuples(_times)),
    st.tuples(st.just("time_since_last_heartbeat"), st.tuples(_times)),
    st.tuples(st.just("is_heartbeat_due"), st.tuples(_times)),
)

_ACTIONS = (SendHeartbeat, StatusChanged, LeaseLapsed, LeaseRestored)


def _state(machine: HeartbeatMachine) -> tuple[Any, ...]:
    return (
        machine.next_deadline,
        machine.current_status,
        machine.last_heartbeat_time,
        machine.lease_deadline,
        machine.lapsed,
        machine.stopped,
        machine.in_flight,
        machine.stats,
    )


def _check_invariants(machine: HeartbeatMachine, last_now: float, last: str) -> None:
    deadline = machine.next_deadline
    if machine.stopped:
        assert deadline is None
        return
    assert deadline is not None
    assert math.isfinite(deadline)
    # Every acting input leaves its next deadline after `now`. `abandon` never
    # sends, so it may leave a beat due, even one that fell due before `now`
    # (a retry whose time passed with the abandoned request): W <= now, per
    # docs/protocol.md. Construction with beat_at_start leaves it due at once.
    if last == "abandon":
        assert deadline > last_now or machine.in_flight is None
    elif last == "new":
        assert deadline >= last_now
    else:
        assert deadline > last_now
    assert math.isclose(
        machine.lease_deadline - machine.last_heartbeat_time,
        machine.next_report_increment - machine.lease_margin,
        abs_tol=1e-9 + 1e-15 * abs(machine.lease_deadline),
    )
    stats = machine.stats
    answered = stats.renewals + stats.signals + stats.failures + stats.timeouts
    assert answered <= stats.beats_sent


_valid_config = st.fixed_dictionaries(
    {
        "interval": st.floats(0.01, 100.0),
        "report_by_buffer": st.floats(1.0, 4.0),
        "initial_status": st.sampled_from(["R", "G"]),
        "now": st.floats(0.0, 1e6),
    },
    optional={
        "request_timeout": st.floats(0.01, 20.0),
        "backoff_initial": st.floats(0.001, 5.0),
        "beat_at_start": st.booleans(),
    },
)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(
    config=st.fixed_dictionaries(
        {
            "interval": st.one_of(st.floats(0.01, 100.0), _junk),
            "report_by_buffer": st.one_of(st.floats(1.0, 4.0), _junk),
            "initial_status": _statuses,
            "now": _times,
        },
        optional={
            "request_timeout": st.one_of(st.floats(0.01, 20.0), _junk),
            "backoff_initial": st.one_of(st.floats(0.001, 5.0), _junk),
            "beat_at_start": st.one_of(st.booleans(), _junk),
            "lease_margin": st.one_of(st.floats(0.0, 1.0), _junk),
            "rng": _junk,
        },
    )
)
def test_construction_refuses_junk_with_a_usage_error_only(
    config: dict[str, Any],
) -> None:
    try:
        machine = HeartbeatMachine(**config)
    except UsageError as error:
        refused: UsageError | None = error
    else:
        refused = None
    if refused is not None:
        assert refused.field  # names the setting
        return
    assert machine.next_deadline is not None


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    config=_valid_config,
    calls=st.lists(_calls, max_size=40),
    seed=st.integers(0, 2**32),
)
def test_only_usage_errors_escape_and_invariants_hold(
    config: dict[str, Any], calls: list[tuple[str, tuple[Any, ...]]], seed: int
) -> None:
    machine = HeartbeatMachine(**config, rng=random.Random(seed))
    last_now, last = float(config["now"]), "new"
    for name, args in calls:
        before = _state(machine)
        refused: UsageError | None = None
        try:
            result = getattr(machine, name)(*args)
        except UsageError as error:
            refused = error
        if refused is not None:
            event("refused")
            assert refused.field  # names what was wrong
            assert _state(machine) == before, f"{name}{args!r} changed state"
            continue
        event("accepted")
        if isinstance(result, tuple):  # an input, not a query
            assert all(isinstance(action, _ACTIONS) for action in result)
            now = args[1] if name == "handle_failure" else args[-1]
            last_now, last = max(last_now, float(now)), name
        _check_invariants(machine, last_now, last)
