"""A Hypothesis state machine that drives `HeartbeatMachine` with every input.

Rules interleave ticks (early, exactly at `next_deadline`, or far too late), answers
and failures for the request in flight or for earlier ones, local status changes,
`reset_timer`, `beat_now` and `stop`, at arbitrary nondecreasing times. After every
step the invariants of the timing rules must hold, checked against `RuleModel`,
which learns the same calls from the outside.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from sansbeat import LeaseLapsed, LeaseRestored, StatusChanged
from tests.machine_strategies import (
    MACHINE_SETTINGS,
    STATUSES,
    BeatNow,
    Expected,
    Fail,
    MachineConfig,
    Player,
    ResetTimer,
    Respond,
    RuleModel,
    SetStatus,
    Step,
    Stop,
    Tick,
    at_most,
    machine_configs,
    sends_in,
    waits,
)

fractions = st.floats(0.0, 1.0, exclude_max=True)
#: For the request in flight: when the answer comes, as a fraction of its time
#: left (above 1: after its deadline).
latencies = st.floats(0.0, 1.25)
answer_statuses = st.none() | st.none() | st.sampled_from(STATUSES)
retry_afters = st.none() | st.floats(0.0, 2.0) | st.just(1000.0)


class HeartbeatMachineRules(RuleBasedStateMachine):
    """Every input at any time; the rules' invariants after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.player: Player | None = None
        self.model: RuleModel | None = None
        self.observed = 0
        self.lapses_seen = 0
        self.restores_seen = 0
        self.stopped_at: int | None = None

    # ------------------------------------------------------------ set-up

    @initialize(config=machine_configs())
    def start(self, config: MachineConfig) -> None:
        self.player = Player(config)
        self.model = RuleModel(config)

    @property
    def live(self) -> tuple[Player, RuleModel]:
        assert self.player is not None
        assert self.model is not None
        return self.player, self.model

    def play(self, step: Step) -> None:
        player, _ = self.live
        player.step(step)
        self.learn()

    def learn(self) -> None:
        """Give the model every new call and check what each one returned."""
        player, model = self.live
        for call in player.calls[self.observed :]:
            self.check_call(model.observe(call))
        self.observed = len(player.calls)

    def check_call(self, expected: Expected) -> None:
        _, model = self.live
        call = expected.call
        sent = sends_in(call)
        if expected.stopped_before or call.kind == "stop":
            assert call.actions == (), "nothing is sent or reported after stop"
            if self.stopped_at is None:
                self.stopped_at = call.index
            return
        assert len(sent) <= 1
        if sent:
            assert expected.flight_at_send is None, "single flight"
            assert sent[0].seq == model.last_seq
            assert sent[0].status == model.status
        lapses = [a for a in call.actions if isinstance(a, LeaseLapsed)]
        restores = [a for a in call.actions if isinstance(a, LeaseRestored)]
        changes = [a for a in call.actions if isinstance(a, StatusChanged)]
        assert lapses == ([] if expected.lapse is None else [expected.lapse])
        assert restores == ([] if expected.restore is None else [expected.restore])
        assert changes == (
            [] if expected.status_changed is None else [expected.status_changed]
        )
        self.lapses_seen += len(lapses)
        self.restores_seen += len(restores)

    # ------------------------------------------------------------ inputs

    @rule(wait=waits)
    def tick(self, wait: float) -> None:
        self.play(Step(wait=wait, op=Tick()))

    @rule()
    def tick_at_next_deadline(self) -> None:
        player, _ = self.live
        deadline = player.machine.next_deadline
        if deadline is None:
            player.tick(player.now)
        else:
            before = player.machine.stats.timeouts
            actions = player.tick(deadline, punctual=True)
            # Whatever was due then happened.
            assert actions or player.machine.stats.timeouts == before + 1
        self.learn()

    @rule(late=st.floats(0.0, 1.0) | st.floats(1.0, 500.0))
    def tick_late(self, late: float) -> None:
        player, _ = self.live
        deadline = player.machine.next_deadline
        start = player.now if deadline is None else deadline
        actions = player.tick(start + late * player.config.interval)
        assert len(sends_in(player.calls[-1])) <= 1, actions
        self.learn()

    @rule(wait=waits, latency=latencies, status=answer_statuses)
    def answer_request_in_flight(
        self, wait: float, latency: float, status: str | None
    ) -> None:
        self.play(
            Step(wait=wait, op=Respond(pick=None, status=status, latency=latency))
        )

    @rule(wait=waits, pick=fractions, status=answer_statuses)
    def answer_earlier_request(
        self, wait: float, pick: float, status: str | None
    ) -> None:
        self.play(Step(wait=wait, op=Respond(pick=pick, status=status, latency=None)))

    @rule(wait=waits, latency=latencies, retry_after=retry_afters)
    def fail_request_in_flight(
        self, wait: float, latency: float, retry_after: float | None
    ) -> None:
        op = Fail(pick=None, retry_after=retry_after, latency=latency)
        self.play(Step(wait=wait, op=op))

    @rule(wait=waits, pick=fractions, retry_after=retry_afters)
    def fail_earlier_request(
        self, wait: float, pick: float, retry_after: float | None
    ) -> None:
        op = Fail(pick=pick, retry_after=retry_after, latency=None)
        self.play(Step(wait=wait, op=op))

    @rule(wait=waits, status=st.sampled_from(STATUSES), during=st.none() | latencies)
    def set_status(self, wait: float, status: str, during: float | None) -> None:
        self.play(Step(wait=wait, op=SetStatus(status=status, latency=during)))

    @rule(wait=waits, during=st.none() | latencies)
    def reset_timer(self, wait: float, during: float | None) -> None:
        self.play(Step(wait=wait, op=ResetTimer(latency=during)))

    @rule(wait=waits, during=st.none() | latencies)
    def beat_now(self, wait: float, during: float | None) -> None:
        self.play(Step(wait=wait, op=BeatNow(latency=during)))

    @rule(wait=waits, chance=st.integers(0, 9))
    def stop(self, wait: float, chance: int) -> None:
        # One time in ten that this rule is chosen, so that most runs go on a while.
        if chance == 0:
            self.play(Step(wait=wait, op=Stop()))

    # ------------------------------------------------------------ invariants

    @invariant()
    def single_flight(self) -> None:
        player, model = self.live
        want = None if model.flight is None else model.flight.seq
        assert player.machine.in_flight == want

    @invariant()
    def next_deadline_is_after_the_last_time_unless_stopped(self) -> None:
        player, model = self.live
        deadline = player.machine.next_deadline
        if player.machine.stopped:
            assert deadline is None
            return
        assert deadline is not None
        if player.calls:
            assert deadline > player.now
        # ... and no later than anything scheduled.
        if model.flight is not None:
            assert deadline <= model.flight.deadline
        if not model.lapsed:
            assert deadline <= model.lease_deadline
        assert at_most(deadline, model.cadence_from + player.config.interval)

    @invariant()
    def lease_runs_from_the_last_renewed_send(self) -> None:
        player, model = self.live
        machine = player.machine
        lease = player.config.lease_length
        assert machine.lease_deadline == machine.last_heartbeat_time + lease
        assert machine.last_heartbeat_time == model.renewed_at
        assert machine.next_report_increment == player.config.increment

    @invariant()
    def lapsed_until_restored(self) -> None:
        player, model = self.live
        assert player.machine.lapsed == (self.lapses_seen > self.restores_seen)
        assert player.machine.lapsed == model.lapsed

    @invariant()
    def counters_match_what_was_observed(self) -> None:
        player, model = self.live
        stats = player.machine.stats
        assert stats == model.stats()
        sends = sum(len(sends_in(c)) for c in player.calls)
        lapses = sum(
            isinstance(a, LeaseLapsed) for c in player.calls for a in c.actions
        )
        assert stats.beats_sent == sends
        assert stats.lapses == lapses

    @invariant()
    def no_status_waits_unsent_while_idle(self) -> None:
        player, model = self.live
        if not model.stopped and model.flight is None:
            assert player.machine.current_status == model.last_sent_status

    @invariant()
    def stopped_means_silent(self) -> None:
        player, _ = self.live
        machine = player.machine
        if machine.stopped:
            assert machine.next_deadline is None
            assert machine.in_flight is None
            assert not machine.is_heartbeat_due(player.now)
            assert self.stopped_at is not None
            assert all(c.actions == () for c in player.calls[self.stopped_at :])


HeartbeatMachineRules.TestCase.settings = settings(
    MACHINE_SETTINGS, max_examples=100, stateful_step_count=40
)
TestHeartbeatMachineRules = HeartbeatMachineRules.TestCase
