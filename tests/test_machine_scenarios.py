"""Scripted scenarios for `HeartbeatMachine`, each read as a timeline.

Every row is (time, input, the actions that input must return). Unless a scenario
says otherwise the machine has the seed's usual setup: interval 30 s, buffer 1.5
(so the lease is 45 s), request timeout 10 s, backoff 1 s, status "R", started at
0. The jitter is pinned with `FixedJitter` so every retry time is exact; the
expected values are worked out from the docstrings' rules in the comments.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from sansbeat import (
    Action,
    HeartbeatMachine,
    LeaseLapsed,
    LeaseRestored,
    SendHeartbeat,
    StatusChanged,
)


class FixedJitter(random.Random):
    """A random source whose `random()` always returns `value`: the machine's
    jitter factor is then 0.5 + 0.5 * value."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


@dataclass(frozen=True)
class Input:
    """One input of a timeline, applied at the row's time."""

    label: str
    apply: Callable[[HeartbeatMachine, float], tuple[Action, ...]]

    def __repr__(self) -> str:
        return self.label


def tick() -> Input:
    return Input("tick", lambda m, now: m.tick(now))


def answer(seq: int, status: str) -> Input:
    return Input(
        f"answer({seq}, {status!r})", lambda m, now: m.handle_response(seq, status, now)
    )


def fail(seq: int, retry_after: float | None = None) -> Input:
    return Input(
        f"fail({seq}, retry_after={retry_after})",
        lambda m, now: m.handle_failure(seq, now, retry_after),
    )


def set_status(status: str) -> Input:
    return Input(f"set_status({status!r})", lambda m, now: m.set_status(status, now))


def reset_timer() -> Input:
    return Input("reset_timer", lambda m, now: m.reset_timer(now))


def beat_now() -> Input:
    return Input("beat_now", lambda m, now: m.beat_now(now))


def stop() -> Input:
    return Input("stop", lambda m, now: m.stop(now))


def send(
    seq: int, status: str, deadline: float, increment: float = 45.0
) -> SendHeartbeat:
    return SendHeartbeat(
        seq=seq, status=status, next_report_increment=increment, deadline=deadline
    )


Row = tuple[float, Input, tuple[Action, ...]]


def machine(**overrides: object) -> HeartbeatMachine:
    settings: dict[str, object] = {
        "interval": 30.0,
        "report_by_buffer": 1.5,
        "initial_status": "R",
        "now": 0.0,
        "request_timeout": 10.0,
        "backoff_initial": 1.0,
        "rng": FixedJitter(0.0),
    }
    settings.update(overrides)
    return HeartbeatMachine(**settings)  # type: ignore[arg-type]


def play(subject: HeartbeatMachine, timeline: list[Row]) -> None:
    for now, step, want in timeline:
        got = step.apply(subject, now)
        assert got == want, f"at {now}: {step} gave {got}, expected {want}"
        deadline = subject.next_deadline
        assert deadline is None or deadline > now


def test_normal_cadence_beats_every_interval_from_the_send() -> None:
    subject = machine()
    assert subject.next_deadline == 30.0
    play(
        subject,
        [
            (29.9, tick(), ()),
            # Deadline: lease 45 - 30 leaves 15; half of it, 7.5, is under 10 s.
            (30.0, tick(), (send(1, "R", 37.5),)),
            (30.2, answer(1, "R"), ()),
            (59.9, tick(), ()),
            # Lease now 30 + 45 = 75: half of 15 again.
            (60.0, tick(), (send(2, "R", 67.5),)),
            (60.5, answer(2, "R"), ()),
            (90.0, tick(), (send(3, "R", 97.5),)),
        ],
    )
    assert subject.lease_deadline == 105.0
    assert subject.last_heartbeat_time == 60.0
    assert subject.next_deadline == 97.5
    assert subject.stats.beats_sent == 3
    assert subject.stats.renewals == 2
    assert subject.stats.max_renewal_gap == 30.0


def test_slow_response_does_not_shift_the_cadence() -> None:
    subject = machine()
    play(
        subject,
        [
            (30.0, tick(), (send(1, "R", 37.5),)),
            (37.4, answer(1, "R"), ()),  # 7.4 s round trip
        ],
    )
    # From the send at 30, not from the answer at 37.4.
    assert subject.next_deadline == 60.0
    assert subject.lease_deadline == 75.0
    play(subject, [(60.0, tick(), (send(2, "R", 67.5),))])


def test_answer_at_the_request_deadline_is_stale() -> None:
    subject = machine()
    play(
        subject,
        [
            (30.0, tick(), (send(1, "R", 37.5),)),
            # The request expires at 37.5 before the answer is looked at; its retry
            # after 0.5 s (1 s backoff, jitter 0.5) is due at 38.
            (37.5, answer(1, "R"), ()),
            (38.0, tick(), (send(2, "R", 41.5),)),
        ],
    )
    assert subject.stats.stale_responses == 1
    assert subject.stats.timeouts == 1
    assert subject.stats.renewals == 0
    assert subject.lease_deadline == 45.0


def test_outage_lapses_the_lease_and_recovery_restores_it() -> None:
    subject = machine(interval=10.0, report_by_buffer=2.0, request_timeout=4.0)
    play(
        subject,
        [
            # Lease 20. Request budget min(4, 10) and half of what the lease has left.
            (10.0, tick(), (send(1, "R", 14.0, 20.0),)),
            (13.9, tick(), ()),
            # Timeout. Retry: backoff 1 * jitter 0.5 = 0.5 s (half-lease cap 3).
            (14.0, tick(), ()),
            (14.5, tick(), (send(2, "R", 17.25, 20.0),)),  # half of 5.5 left
            (17.25, tick(), ()),  # timeout; backoff 2 * 0.5 = 1 s
            (18.25, tick(), (send(3, "R", 19.125, 20.0),)),  # half of 1.75 left
            # Timeout; backoff 4 * 0.5 = 2 s, and half of the 0.875 s left is under
            # backoff / 2, so no lease cap: retry at 21.125, after the lapse.
            (19.125, tick(), ()),
            (20.0, tick(), (LeaseLapsed(deadline=20.0),)),
            (21.125, tick(), (send(4, "R", 25.125, 20.0),)),  # lapsed: full 4 s
            (25.125, tick(), ()),  # backoff 8 * 0.5 = 4 s
            (29.125, tick(), (send(5, "R", 33.125, 20.0),)),
            # Renewed from the send at 29.125: lease 49.125.
            (30.0, answer(5, "R"), (LeaseRestored(lapsed_at=20.0, deadline=49.125),)),
        ],
    )
    assert not subject.lapsed
    assert subject.next_deadline == 39.125
    stats = subject.stats
    assert (stats.beats_sent, stats.timeouts, stats.renewals, stats.lapses) == (
        5,
        4,
        1,
        1,
    )
    assert stats.max_renewal_gap == 29.125


def test_retries_keep_to_once_per_interval_during_a_long_outage() -> None:
    # Lease = interval (buffer 1): it lapses with the first beat. Jitter near its
    # top (factor 0.995): the backoff 1, 2, 4, 8 s soon passes the interval, and
    # from then on each retry is due one interval after the previous send.
    subject = machine(
        interval=10.0, report_by_buffer=1.0, request_timeout=1.0, rng=FixedJitter(0.99)
    )
    sent_at: list[float] = []
    lapses = 0
    for _ in range(40):  # a driver that wakes exactly at next_deadline
        now = subject.next_deadline
        assert now is not None
        for action in subject.tick(now):
            if isinstance(action, SendHeartbeat):
                sent_at.append(now)
            lapses += isinstance(action, LeaseLapsed)
    gaps = [b - a for a, b in itertools.pairwise(sent_at)]
    # Sent at 10, timed out at 11, retried 0.995 s later; timed out at 12.995,
    # retried 1.99 s later; ...
    assert sent_at[:3] == [10.0, 11.995, 14.985]
    assert len(gaps) >= 10
    assert all(gap <= 10.0 + 1e-9 for gap in gaps), gaps
    assert all(math.isclose(gap, 10.0) for gap in gaps[-5:]), gaps
    assert lapses == 1
    assert subject.lapsed


def test_server_resume_signal_is_adopted_and_sent_at_once() -> None:
    subject = machine()
    play(
        subject,
        [
            (30.0, tick(), (send(1, "R", 37.5),)),
            # The server holds "C": a signal, not a renewal (the lease stays 45),
            # adopted and reported at once. Half of the 14 s left: deadline 38.
            (
                31.0,
                answer(1, "C"),
                (StatusChanged(old="R", new="C"), send(2, "C", 38.0)),
            ),
            (32.0, answer(2, "C"), ()),  # a renewal from the send at 31
        ],
    )
    assert subject.current_status == "C"
    assert subject.lease_deadline == 76.0
    assert subject.next_deadline == 61.0
    assert (subject.stats.signals, subject.stats.renewals) == (1, 1)


def test_status_set_during_flight_survives_the_answer() -> None:
    subject = machine()
    play(
        subject,
        [
            (30.0, tick(), (send(1, "R", 37.5),)),
            (31.0, set_status("D"), ()),  # waits for the request in flight
            # Renewed (lease 75); "D" goes at once, deadline min(10, 43 / 2).
            (32.0, answer(1, "R"), (send(2, "D", 42.0),)),
        ],
    )
    assert subject.current_status == "D"
    assert subject.lease_deadline == 75.0


def test_status_set_during_flight_goes_out_even_when_a_reset_timer_ends_it() -> None:
    # The request expires at 37.5, first thing in the reset_timer call; "D" is then
    # due at once (rule 9), and reset_timer postpones the regular cadence only.
    subject = machine()
    play(
        subject,
        [
            (30.0, tick(), (send(1, "R", 37.5),)),
            (31.0, set_status("D"), ()),
            # Lease from the reset: 82.5; half of 45 left > 10.
            (37.5, reset_timer(), (send(2, "D", 47.5),)),
        ],
    )


def test_server_signal_does_not_overwrite_a_newer_local_status() -> None:
    subject = machine()
    play(
        subject,
        [
            (30.0, tick(), (send(1, "R", 37.5),)),
            (31.0, set_status("D"), ()),
            # "C" answers the "R" beat; the application has moved on to "D".
            (32.0, answer(1, "C"), (send(2, "D", 38.5),)),
        ],
    )
    assert subject.current_status == "D"
    assert subject.lease_deadline == 45.0  # a signal is not a renewal
    assert subject.stats.signals == 1


def test_set_status_with_nothing_in_flight_goes_out_at_once() -> None:
    subject = machine()
    play(
        subject,
        [
            (5.0, set_status("R"), ()),  # no change, nothing to send
            (6.0, set_status("D"), (send(1, "D", 16.0),)),  # half of 39 left > 10
        ],
    )


def test_reset_timer_restarts_the_lease_and_the_cadence() -> None:
    subject = machine()
    play(
        subject,
        [
            (20.0, reset_timer(), ()),
            (49.9, tick(), ()),
            (50.0, tick(), (send(1, "R", 57.5),)),  # lease 65: half of 15 left
        ],
    )
    assert subject.stats.max_renewal_gap == 20.0


def test_reset_timer_restores_a_lapsed_lease() -> None:
    subject = machine()
    play(
        subject,
        [
            (30.0, tick(), (send(1, "R", 37.5),)),
            (37.5, tick(), ()),  # timeout; retry after 0.5 s
            (38.0, tick(), (send(2, "R", 41.5),)),
            (41.5, tick(), ()),  # retry after 1 s
            (42.5, tick(), (send(3, "R", 43.75),)),
            (43.75, tick(), ()),  # backoff 2 * 0.5 = 1, capped to half of 1.25 left
            (44.375, tick(), (send(4, "R", 54.375),)),  # 0.3125 < 0.5: full 10 s
            (45.0, tick(), (LeaseLapsed(deadline=45.0),)),
            (46.0, reset_timer(), (LeaseRestored(lapsed_at=45.0, deadline=91.0),)),
            # Beat 4 was sent before the reset: its renewal does not move the lease.
            (47.0, answer(4, "R"), ()),
        ],
    )
    assert subject.lease_deadline == 91.0
    assert subject.last_heartbeat_time == 46.0
    assert subject.next_deadline == 76.0  # one interval after the reset


def test_beat_at_start_sends_at_construction_time() -> None:
    subject = machine(now=100.0, beat_at_start=True)
    assert subject.next_deadline == 100.0
    play(
        subject,
        [
            (100.0, tick(), (send(1, "R", 110.0),)),  # half of 45 left > 10
            (101.0, answer(1, "R"), ()),
        ],
    )
    assert subject.lease_deadline == 145.0
    assert subject.next_deadline == 130.0


def test_beat_now_sends_early_and_the_cadence_follows() -> None:
    subject = machine()
    play(
        subject,
        [
            (12.0, beat_now(), (send(1, "R", 22.0),)),  # half of 33 left > 10
            (12.5, beat_now(), ()),  # the beat in flight is the one
            (13.0, answer(1, "R"), ()),
            (41.9, tick(), ()),
            (42.0, tick(), (send(2, "R", 49.5),)),  # lease 57: half of 15
        ],
    )


def test_retry_after_raises_the_delay_up_to_the_interval() -> None:
    # A long lease (buffer 10) keeps the half-lease cap out of the way.
    subject = machine(interval=10.0, report_by_buffer=10.0, request_timeout=4.0)
    play(
        subject,
        [
            (10.0, tick(), (send(1, "R", 14.0, 100.0),)),
            (11.0, fail(1, retry_after=3.0), ()),  # 3 s beats the 0.5 s backoff
            (13.9, tick(), ()),
            (14.0, tick(), (send(2, "R", 18.0, 100.0),)),
            # Retry-After 1000 s counts as the interval, and the retry is never
            # later than one interval after the previous send: 14 + 10.
            (15.0, fail(2, retry_after=1000.0), ()),
            (23.9, tick(), ()),
            (24.0, tick(), (send(3, "R", 28.0, 100.0),)),
            (24.5, fail(3, retry_after=0.0), ()),  # backoff 4 * 0.5 = 2 s stands
            (26.5, tick(), (send(4, "R", 30.5, 100.0),)),
            (27.0, answer(4, "R"), ()),
        ],
    )
    assert subject.lease_deadline == 126.5
    assert subject.next_deadline == 36.5
    assert subject.stats.failures == 3


def test_retry_after_yields_to_the_lease() -> None:
    subject = machine()
    play(
        subject,
        [
            (30.0, tick(), (send(1, "R", 37.5),)),
            # Retry-After 20 s, but only 14 s of lease are left: half of it, 7.
            (31.0, fail(1, retry_after=20.0), ()),
            (37.9, tick(), ()),
            (38.0, tick(), (send(2, "R", 41.5),)),
        ],
    )


def test_late_tick_after_a_suspend_lapses_then_beats_once() -> None:
    subject = machine()
    play(
        subject,
        [
            (30.0, tick(), (send(1, "R", 37.5),)),
            (31.0, answer(1, "R"), ()),  # lease 75, next beat at 60
            # Suspended for hours: one lapse, one beat (full 10 s budget), no burst.
            (10_000.0, tick(), (LeaseLapsed(deadline=75.0), send(2, "R", 10_010.0))),
            (10_000.0, tick(), ()),
        ],
    )
    assert subject.stats.max_tick_lateness == 10_000.0 - 60.0


def test_stop_abandons_the_request_in_flight() -> None:
    subject = machine()
    play(
        subject,
        [
            (30.0, tick(), (send(1, "R", 37.5),)),
            (31.0, stop(), ()),
            (32.0, answer(1, "R"), ()),
            (33.0, set_status("D"), ()),
            (1000.0, tick(), ()),
        ],
    )
    assert subject.next_deadline is None
    assert subject.in_flight is None
    assert subject.stats.renewals == 0
    assert subject.stats.beats_sent == 1
    assert subject.lease_deadline == 45.0


def first_retry_delay(rng: random.Random) -> float:
    subject = machine(rng=rng)
    subject.tick(30.0)
    subject.handle_failure(1, 31.0)
    deadline = subject.next_deadline
    assert deadline is not None
    return deadline - 31.0


def test_jitter_comes_from_the_given_rng_and_spreads() -> None:
    delays = [first_retry_delay(random.Random(seed)) for seed in range(20)]
    # Same seed, same delay: tests can be deterministic.
    assert delays == [first_retry_delay(random.Random(seed)) for seed in range(20)]
    # Backoff 1 s jittered to between half and all of it.
    assert all(0.5 <= d < 1.0 for d in delays), delays
    assert len(set(delays)) >= 15, "a fleet must spread out"
    assert first_retry_delay(FixedJitter(0.0)) == 0.5
    assert first_retry_delay(FixedJitter(0.5)) == 0.75
