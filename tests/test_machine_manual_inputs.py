"""The inputs drivers and the seed's API add: beat_now (a manual tick) and abandon
(a driver giving up a request it cancelled). Scripted, in virtual time."""

from __future__ import annotations

import random

import pytest

from sansbeat import HeartbeatMachine, SendHeartbeat, UsageError


def _send(actions: tuple[object, ...]) -> SendHeartbeat:
    (send,) = actions
    assert isinstance(send, SendHeartbeat)
    return send


def _machine() -> HeartbeatMachine:
    return HeartbeatMachine(
        interval=30.0,
        report_by_buffer=1.5,
        initial_status="R",
        now=0.0,
        rng=random.Random(0),
    )


def test_beat_now_sends_at_once_and_the_cadence_runs_from_it() -> None:
    machine = _machine()
    send = _send(machine.beat_now(5.0))
    assert send.status == "R"
    assert machine.handle_response(send.seq, "R", 5.2) == ()
    assert machine.next_deadline == 35.0
    assert machine.lease_deadline == 50.0


def test_beat_now_while_a_beat_is_in_flight_sends_nothing_more() -> None:
    machine = _machine()
    send = _send(machine.tick(30.0))
    assert machine.beat_now(31.0) == ()
    assert machine.in_flight == send.seq


def test_abandon_frees_the_slot_without_a_failure_and_beats_next_tick() -> None:
    machine = _machine()
    send = _send(machine.tick(30.0))
    assert machine.abandon(send.seq, 31.0) == ()
    assert machine.in_flight is None
    assert machine.stats.failures == 0
    assert machine.stats.timeouts == 0
    assert machine.next_deadline == 31.0
    again = _send(machine.tick(31.0))
    assert again.seq == send.seq + 1


def test_abandon_after_the_request_timed_out_leaves_its_retry_due() -> None:
    # The request (deadline 37.5 s) timed out before the abandon at 44 s, which
    # learns it: the retry fell due in between, and abandon, which never sends,
    # leaves it due (next_deadline before now), so the next tick sends it.
    machine = _machine()
    send = _send(machine.tick(30.0))
    assert send.deadline == 37.5
    assert machine.abandon(send.seq, 44.0) == ()
    assert machine.stats.timeouts == 1
    assert machine.in_flight is None
    due = machine.next_deadline
    assert due is not None
    assert 37.5 < due < 44.0
    retry = _send(machine.tick(44.0))
    assert retry.seq == send.seq + 1
    assert machine.stats.max_tick_lateness == 44.0 - due


def test_abandoning_a_request_no_longer_in_flight_changes_nothing() -> None:
    machine = _machine()
    send = _send(machine.tick(30.0))
    machine.handle_response(send.seq, "R", 30.1)
    deadline = machine.next_deadline
    assert machine.abandon(send.seq, 31.0) == ()
    assert machine.next_deadline == deadline
    assert machine.stats.renewals == 1


def test_abandon_refuses_a_sequence_number_never_issued() -> None:
    machine = _machine()
    with pytest.raises(UsageError) as raised:
        machine.abandon(1, 1.0)
    assert raised.value.field == "seq"
    assert machine.next_deadline == 30.0
