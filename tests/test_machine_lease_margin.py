"""lease_margin: the local lease ends early for servers that keep coarse deadlines.

Jobmon stores a run's deadline in whole seconds, so its reaper may act up to 1 s
before `send time + next_report_increment`; the client must learn of the lapse
no later than the reaper acts.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sansbeat import HeartbeatMachine, LeaseLapsed, SendHeartbeat, UsageError


def _machine(margin: float, interval: float = 30.0) -> HeartbeatMachine:
    return HeartbeatMachine(
        interval=interval,
        report_by_buffer=1.5,
        initial_status="R",
        now=0.0,
        lease_margin=margin,
        rng=random.Random(0),
    )


def test_the_lease_ends_the_margin_before_send_plus_increment() -> None:
    machine = _machine(1.0)
    assert machine.lease_deadline == 44.0
    (send,) = machine.tick(30.0)
    assert isinstance(send, SendHeartbeat)
    assert send.next_report_increment == 45.0  # the server is asked for all of it
    machine.handle_response(send.seq, "R", 30.2)
    assert machine.lease_deadline == 30.0 + 45.0 - 1.0


@given(
    margin=st.floats(min_value=0.0, max_value=14.0),
    within=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_lapse_comes_no_later_than_a_whole_second_reaper(
    margin: float, within: float
) -> None:
    # The server's deadline is floor(receipt + increment): never earlier than
    # send + increment - 1. With a margin of 1 s the local lapse is never later.
    machine = _machine(max(margin, 1.0))
    (send,) = machine.tick(30.0)
    assert isinstance(send, SendHeartbeat)
    # The answer comes before the request's deadline; the server received the
    # beat no later than that.
    receipt = 30.0 + within * (send.deadline - 30.0)
    machine.handle_response(send.seq, "R", receipt)
    server_deadline = float(int(receipt + send.next_report_increment))
    assert machine.lease_deadline <= server_deadline
    # Ticking when the reaper may act finds the lapse already reported, or reports it.
    actions = machine.tick(server_deadline)
    assert machine.lapsed
    assert [type(a) for a in actions][:1] == [LeaseLapsed]


@pytest.mark.parametrize("margin", [-0.5, 15.5, float("nan")])
def test_a_margin_that_leaves_less_than_an_interval_is_refused(margin: float) -> None:
    with pytest.raises(UsageError) as raised:
        _machine(margin)
    assert raised.value.field == "lease_margin"
