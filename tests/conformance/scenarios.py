"""The conformance scenarios, written by hand: the source of the vectors file.

Each scenario is a configuration, the jitter values it fixes, and a sequence of
inputs. Every step states, by hand and from the formulas of docs/protocol.md, the
actions it must return (or the field of the UsageError, or the query's value), with
a note saying why, and any state worth stating. `make_vectors` runs sansbeat's
machine on each scenario, stops on any step where the machine disagrees with what
is stated here, and records the machine's full outputs into the vectors.

Times in the expectations are written as the formula that gives them (so
`31.75 + (45 - 31.75) / 2` is "half of what remains of a lease running to 45").
Unless a scenario says otherwise the configuration is `DEFAULTS`: interval 30,
report_by_buffer 1.5 (so the increment N is 45), request_timeout 10,
backoff_initial 1, lease_margin 0 (so the lease L is the last renewed send + 45),
built at time 0, first beat due at 30. With u = 0.5 the
jitter factor is 0.5 + 0.5 * 0.5 = 0.75.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["COVERAGE", "DEFAULTS", "SCENARIOS", "Refused", "Scenario", "Step", "Value"]

Json = Any

MAX_TIME = 2.0**40

#: Every tag a scenario may cover, with what it means. `make_vectors` fails unless
#: each one is covered by at least one scenario.
COVERAGE: dict[str, str] = {
    "rule 1": "single flight: at most one request outstanding",
    "rule 2": "the cadence runs from the send",
    "rule 3": "exact wakeups: next_deadline, early and late ticks",
    "rule 4": "next_report_increment = interval * report_by_buffer on every beat",
    "rule 5": "every request has a deadline: min(T, I, (L - s) / 2)",
    "rule 6": "retries: fresh beats, capped jittered exponential backoff",
    "rule 7": "the lease deadline is measured from the send",
    "rule 8": "lapse and restore are reported once each",
    "rule 9": "no lost local writes",
    "rule 10": "server signals surface once each, in order",
    "rule 11": "a tick far beyond the schedule: lapse, then one beat",
    "rule 12": "invalid configuration and arguments are refused",
    "rule 13": "after stop nothing is sent and nothing changes",
    "rule 14": "the counters",
    "config interval": "interval: a duration",
    "config report_by_buffer": "report_by_buffer: a number >= 1",
    "config increment": "interval * report_by_buffer: a duration",
    "config initial_status": "initial_status: a non-empty string",
    "config now": "now: a time",
    "config request_timeout": "request_timeout: a duration",
    "config backoff_initial": "backoff_initial: a duration",
    "config lease_margin": "lease_margin: a number >= 0 leaving N - M >= I",
    "config beat_at_start": "beat_at_start: a boolean",
    "config order": "configuration is checked field by field, in order",
    "config limits": "the limits themselves (MIN_DURATION, MAX_TIME) are accepted",
    "input now backwards": "every input refuses a now earlier than the last",
    "input now": "every input refuses a now that is not a time",
    "input seq": "seq: an integer, issued by this machine",
    "input status": "status: a non-empty string",
    "input retry_after": "retry_after: null or a number >= 0",
    "input order": "an input's arguments are checked in order",
    "input queries": "queries check that now is a time, and store nothing",
    "input after stop": "a stopped machine still validates every input",
    "edge stale at deadline": "an outcome at exactly the request deadline is stale",
    "edge signal vs local": "a signal is adopted only if the local status is unchanged",
    "edge abandon": "abandon frees the slot, counts nothing, never sends",
    "edge beat_now": "beat_now sends at once and restarts the cadence",
    "edge stop late answers": "stop, then late answers change nothing",
    "edge lapse and restore": "a lapse and its restore in one call",
    "edge huge late tick": "a huge late tick gives one beat",
    "edge retry_after bounds": "Retry-After only lengthens, up to the interval",
    "edge cadence cap": "a retry is never later than C + I",
    "edge halving floor": "below B / 2 of lease left, nothing is halved",
    "edge reset_timer": "reset_timer counts as a renewal sent at now",
    "edge buffer one": "report_by_buffer = 1 lapses at every beat",
    "edge is_heartbeat_due": "is_heartbeat_due runs no time step",
    "edge stale outcomes": "stale outcomes still run the time steps",
    "edge beat_at_start": "beat_at_start: the first beat comes from tick(now)",
    "edge numbers": "integer, negative and extreme times",
    "edge lease margin": "lease_margin shortens the local lease, not the one asked",
}

#: The configuration scenarios start from (every key is always written out).
DEFAULTS: dict[str, Json] = {
    "interval": 30.0,
    "report_by_buffer": 1.5,
    "initial_status": "R",
    "now": 0.0,
    "request_timeout": 10.0,
    "backoff_initial": 1.0,
    "beat_at_start": False,
    "lease_margin": 0.0,
}

# Non-finite numbers, as the vectors spell them.
NAN: Json = {"float": "nan"}
INF: Json = {"float": "inf"}
NEG_INF: Json = {"float": "-inf"}


@dataclass(frozen=True, slots=True)
class Refused:
    """The step must raise UsageError naming `field`, and change nothing."""

    field: str


@dataclass(frozen=True, slots=True)
class Value:
    """The query step must return `value`."""

    value: Json


@dataclass(frozen=True, slots=True)
class Step:
    """One input, what it must return, why, and state worth stating after it."""

    input: dict[str, Json]
    expect: list[dict[str, Json]] | Refused | Value
    note: str
    state: dict[str, Json]


@dataclass(frozen=True, slots=True)
class Scenario:
    """A configuration, its jitter, and the steps played on the machine."""

    name: str
    covers: tuple[str, ...]
    summary: str
    config: dict[str, Json]
    jitter: tuple[float, ...] = ()
    steps: tuple[Step, ...] = ()
    #: The field construction must refuse, or None if it must succeed.
    refused: str | None = None
    #: State worth stating right after construction.
    state: dict[str, Json] = field(default_factory=dict)


def config(**changes: Json) -> dict[str, Json]:
    """`DEFAULTS` with some settings changed."""
    unknown = changes.keys() - DEFAULTS.keys()
    assert not unknown, unknown
    return {**DEFAULTS, **changes}


def step(
    message: dict[str, Json],
    expect: list[dict[str, Json]] | Refused | Value,
    note: str,
    **state: Json,
) -> Step:
    """A step: `message`, the hand-stated `expect`ation and `state`, and why."""
    return Step(message, expect, note, state)


# Inputs, as the peer protocol writes them.
def tick(now: Json) -> dict[str, Json]:
    return {"op": "tick", "now": now}


def respond(seq: Json, status: Json, now: Json) -> dict[str, Json]:
    return {"op": "handle_response", "seq": seq, "status": status, "now": now}


def fail(seq: Json, now: Json, retry_after: Json = None) -> dict[str, Json]:
    return {"op": "handle_failure", "seq": seq, "now": now, "retry_after": retry_after}


def set_status(status: Json, now: Json) -> dict[str, Json]:
    return {"op": "set_status", "status": status, "now": now}


def beat_now(now: Json) -> dict[str, Json]:
    return {"op": "beat_now", "now": now}


def reset_timer(now: Json) -> dict[str, Json]:
    return {"op": "reset_timer", "now": now}


def abandon(seq: Json, now: Json) -> dict[str, Json]:
    return {"op": "abandon", "seq": seq, "now": now}


def stop(now: Json) -> dict[str, Json]:
    return {"op": "stop", "now": now}


def due(now: Json) -> dict[str, Json]:
    return {"op": "is_heartbeat_due", "now": now}


def since(now: Json) -> dict[str, Json]:
    return {"op": "time_since_last_heartbeat", "now": now}


# Actions, as the peer protocol writes them.
def send(
    seq: int, deadline: float, status: str = "R", increment: float = 45.0
) -> dict[str, Json]:
    return {
        "type": "SendHeartbeat",
        "seq": seq,
        "status": status,
        "next_report_increment": increment,
        "deadline": deadline,
    }


def lapsed(deadline: float) -> dict[str, Json]:
    return {"type": "LeaseLapsed", "deadline": deadline}


def restored(lapsed_at: float, deadline: float) -> dict[str, Json]:
    return {"type": "LeaseRestored", "lapsed_at": lapsed_at, "deadline": deadline}


def changed(old: str, new: str) -> dict[str, Json]:
    return {"type": "StatusChanged", "old": old, "new": new}


NONE: list[dict[str, Json]] = []
ZERO_STATS = {
    "beats_sent": 0,
    "renewals": 0,
    "signals": 0,
    "failures": 0,
    "timeouts": 0,
    "stale_responses": 0,
    "lapses": 0,
    "max_renewal_gap": 0.0,
    "max_tick_lateness": 0.0,
}

# ---------------------------------------------------------------- refused configs

# (name, changes to DEFAULTS, the field refused, coverage tag, why)
_REFUSED_CONFIGS: list[tuple[str, dict[str, Json], str, str, str]] = [
    ("interval_zero", {"interval": 0.0}, "interval", "config interval",
     "a zero interval would beat in a busy loop"),
    ("interval_negative", {"interval": -30.0}, "interval", "config interval",
     "a negative interval"),
    ("interval_below_min_duration", {"interval": 0.0009}, "interval",
     "config interval", "below MIN_DURATION = 0.001"),
    ("interval_above_max_time", {"interval": 2.0 * MAX_TIME}, "interval",
     "config interval", "above MAX_TIME = 2**40"),
    ("interval_nan", {"interval": NAN}, "interval", "config interval",
     "NaN is not finite"),
    ("interval_infinite", {"interval": INF}, "interval", "config interval",
     "infinity is not finite"),
    ("interval_boolean", {"interval": True}, "interval", "config interval",
     "a boolean is not a number of seconds"),
    ("interval_string", {"interval": "30"}, "interval", "config interval",
     "a string is not a number of seconds"),
    ("interval_null", {"interval": None}, "interval", "config interval",
     "null is not a number of seconds"),
    ("buffer_below_one", {"report_by_buffer": 0.99}, "report_by_buffer",
     "config report_by_buffer", "the lease must cover at least one interval"),
    ("buffer_nan", {"report_by_buffer": NAN}, "report_by_buffer",
     "config report_by_buffer", "NaN is not finite (and not >= 1)"),
    ("buffer_negative_infinity", {"report_by_buffer": NEG_INF}, "report_by_buffer",
     "config report_by_buffer", "-infinity is not finite"),
    ("buffer_boolean", {"report_by_buffer": True}, "report_by_buffer",
     "config report_by_buffer", "a boolean is not a number"),
    ("buffer_string", {"report_by_buffer": "1.5"}, "report_by_buffer",
     "config report_by_buffer", "a string is not a number"),
    ("increment_above_max_time", {"interval": MAX_TIME, "report_by_buffer": 2.0},
     "interval * report_by_buffer", "config increment",
     "each factor is valid, but the increment 2**41 is above MAX_TIME"),
    ("increment_infinite", {"interval": MAX_TIME, "report_by_buffer": 1e300},
     "interval * report_by_buffer", "config increment",
     "the product overflows to infinity"),
    ("status_empty", {"initial_status": ""}, "initial_status",
     "config initial_status", "an empty status"),
    ("status_number", {"initial_status": 5}, "initial_status",
     "config initial_status", "a number is not a status"),
    ("status_null", {"initial_status": None}, "initial_status",
     "config initial_status", "null is not a status"),
    ("now_above_max_time", {"now": 2.0 * MAX_TIME}, "now", "config now",
     "beyond +MAX_TIME"),
    ("now_below_minus_max_time", {"now": -2.0 * MAX_TIME}, "now", "config now",
     "beyond -MAX_TIME"),
    ("now_nan", {"now": NAN}, "now", "config now", "NaN is not a time"),
    ("now_string", {"now": "0"}, "now", "config now", "a string is not a time"),
    ("timeout_zero", {"request_timeout": 0.0}, "request_timeout",
     "config request_timeout", "a request must be given some time"),
    ("timeout_infinite", {"request_timeout": INF}, "request_timeout",
     "config request_timeout", "a request must not hang forever"),
    ("timeout_above_max_time", {"request_timeout": 2.0 * MAX_TIME},
     "request_timeout", "config request_timeout", "above MAX_TIME"),
    ("backoff_below_min_duration", {"backoff_initial": 0.0001}, "backoff_initial",
     "config backoff_initial", "below MIN_DURATION"),
    ("backoff_negative", {"backoff_initial": -1.0}, "backoff_initial",
     "config backoff_initial", "a negative backoff"),
    ("backoff_nan", {"backoff_initial": NAN}, "backoff_initial",
     "config backoff_initial", "NaN is not finite"),
    ("margin_negative", {"lease_margin": -0.5}, "lease_margin",
     "config lease_margin", "a negative margin would lengthen the lease"),
    ("margin_leaves_less_than_an_interval", {"lease_margin": 15.5},
     "lease_margin", "config lease_margin",
     "45 - 15.5 = 29.5 is less than the interval 30"),
    ("margin_huge", {"lease_margin": 1e300}, "lease_margin",
     "config lease_margin", "the lease left would be negative"),
    ("margin_nan", {"lease_margin": NAN}, "lease_margin", "config lease_margin",
     "NaN is not finite"),
    ("margin_infinite", {"lease_margin": INF}, "lease_margin",
     "config lease_margin", "infinity is not finite"),
    ("margin_boolean", {"lease_margin": True}, "lease_margin",
     "config lease_margin", "a boolean is not a number"),
    ("margin_string", {"lease_margin": "1"}, "lease_margin",
     "config lease_margin", "a string is not a number"),
    ("beat_at_start_number", {"beat_at_start": 1}, "beat_at_start",
     "config beat_at_start", "1 is not a boolean"),
    ("beat_at_start_string", {"beat_at_start": "true"}, "beat_at_start",
     "config beat_at_start", "a string is not a boolean"),
    ("beat_at_start_null", {"beat_at_start": None}, "beat_at_start",
     "config beat_at_start", "null is not a boolean"),
    ("order_interval_before_status", {"interval": 0.0, "initial_status": ""},
     "interval", "config order", "both are wrong: interval is checked first"),
    ("order_buffer_before_now", {"report_by_buffer": 0.5, "now": NAN},
     "report_by_buffer", "config order", "report_by_buffer is checked before now"),
    ("order_increment_before_status",
     {"interval": MAX_TIME, "report_by_buffer": 2.0, "initial_status": ""},
     "interval * report_by_buffer", "config order",
     "the increment is checked before initial_status"),
    ("order_status_before_now", {"initial_status": "", "now": NAN},
     "initial_status", "config order", "initial_status is checked before now"),
    ("order_timeout_before_backoff",
     {"request_timeout": 0.0, "backoff_initial": 0.0}, "request_timeout",
     "config order", "request_timeout is checked before backoff_initial"),
    ("order_backoff_before_margin",
     {"backoff_initial": 0.0, "lease_margin": -1.0}, "backoff_initial",
     "config order", "backoff_initial is checked before lease_margin"),
    ("order_margin_before_beat_at_start",
     {"lease_margin": -1.0, "beat_at_start": 1}, "lease_margin",
     "config order", "lease_margin is checked before beat_at_start"),
]  # fmt: skip

_REFUSED = [
    Scenario(
        name=f"config_{name}_refused",
        covers=("rule 12", tag),
        summary=f"Construction is refused, naming {refused!r}: {why}.",
        config=config(**changes),
        refused=refused,
    )
    for name, changes, refused, tag, why in _REFUSED_CONFIGS
]

# ---------------------------------------------------------------- construction

_CONSTRUCTION = [
    Scenario(
        name="construction_beat_at_start",
        covers=("edge beat_at_start", "rule 5"),
        summary="beat_at_start makes the first beat due at construction time; "
        "construction itself still sends nothing.",
        config=config(now=100.0, beat_at_start=True),
        state={"next_deadline": 100.0, "lease_deadline": 145.0, "stats": ZERO_STATS},
        steps=(
            step(
                tick(100.0),
                [send(1, 100.0 + 10.0)],
                "the first beat comes from tick(t0); (145 - 100) / 2 = 22.5 is not "
                "below T = 10, so D = 100 + 10",
                next_deadline=110.0,
            ),
        ),
    ),
    Scenario(
        name="construction_negative_clock",
        covers=("edge numbers", "rule 2"),
        summary="A monotonic clock may read negative (trio's clock is offset): "
        "times are plain numbers.",
        config=config(now=-1000.0),
        state={"next_deadline": -970.0, "lease_deadline": -955.0},
        steps=(
            step(tick(-970.0), [send(1, -970.0 + 7.5)], "due at t0 + I"),
            step(
                respond(1, "R", -969.0),
                NONE,
                "renewed: L = -970 + 45, next beat at -970 + 30",
                lease_deadline=-925.0,
                next_deadline=-940.0,
            ),
        ),
    ),
    Scenario(
        name="construction_integer_numbers",
        covers=("edge numbers", "rule 4"),
        summary="Numbers written without a fraction are numbers like any other.",
        config=config(
            interval=30,
            report_by_buffer=2,
            now=0,
            request_timeout=10,
            backoff_initial=1,
        ),
        state={"next_deadline": 30.0, "lease_deadline": 60.0},
        steps=(
            step(
                tick(30),
                [send(1, 30.0 + 10.0, increment=60.0)],
                "N = 30 * 2; (60 - 30) / 2 = 15 is not below T = 10",
            ),
            step(
                respond(1, "R", 31),
                NONE,
                "renewed from the send at 30",
                lease_deadline=90.0,
                next_deadline=60.0,
            ),
        ),
    ),
    Scenario(
        name="construction_smallest_values",
        covers=("config limits", "rule 12", "edge buffer one"),
        summary="Every duration at MIN_DURATION = 0.001 and report_by_buffer = 1 "
        "are accepted.",
        config=config(
            interval=0.001,
            report_by_buffer=1.0,
            request_timeout=0.001,
            backoff_initial=0.001,
        ),
        state={"next_deadline": 0.001, "lease_deadline": 0.001},
        steps=(
            step(
                tick(0.001),
                [lapsed(0.001), send(1, 0.001 + 0.001, increment=0.001)],
                "with b = 1 the lease ends when the beat is due: lapse first, then "
                "the beat, D = s + min(T, I) since h = 0",
            ),
        ),
    ),
    Scenario(
        name="construction_largest_values",
        covers=("config limits", "rule 12", "edge numbers", "edge huge late tick"),
        summary="Durations of MAX_TIME = 2**40 and times of -MAX_TIME and "
        "+MAX_TIME are accepted; a time beyond is refused.",
        config=config(
            interval=MAX_TIME,
            report_by_buffer=1.0,
            now=-MAX_TIME,
            request_timeout=MAX_TIME,
            backoff_initial=MAX_TIME,
        ),
        jitter=(0.5,),
        state={"next_deadline": 0.0, "lease_deadline": 0.0},
        steps=(
            step(
                tick(0.0),
                [lapsed(0.0), send(1, MAX_TIME, increment=MAX_TIME)],
                "L = -2**40 + 2**40 = 0 = the due time: lapse, then beat, "
                "D = 0 + min(T, I)",
            ),
            step(
                tick(MAX_TIME),
                [send(2, 2.0 * MAX_TIME, increment=MAX_TIME)],
                "request 1 times out at D = 2**40; its retry is capped by "
                "C + I = 2**40, so it is due at once",
                stats={"timeouts": 1},
                jitter_drawn=1,
            ),
            step(
                tick(MAX_TIME + 1.0),
                Refused("now"),
                "a time beyond MAX_TIME is refused, even before next_deadline",
            ),
        ),
    ),
]

# ---------------------------------------------------------------- rules 1 to 5

_RULES_1_TO_5 = [
    Scenario(
        name="rule01_single_flight",
        covers=("rule 1", "rule 5", "rule 6", "edge beat_now"),
        summary="At most one request is in flight; it leaves flight at its "
        "deadline, and only then is the retry sent.",
        config=config(),
        jitter=(0.5,),
        steps=(
            step(
                tick(30.0), [send(1, 37.5)], "beat 1", in_flight=1, next_deadline=37.5
            ),
            step(tick(37.0), NONE, "in flight: no second beat", in_flight=1),
            step(
                beat_now(37.1),
                NONE,
                "beat_now while a request is in flight: that request is the beat",
                in_flight=1,
                stats={"beats_sent": 1},
            ),
            step(due(37.2), Value(False), "no beat is due while one is in flight"),
            step(
                tick(37.5),
                NONE,
                "at D request 1 times out; retry at 37.5 + 1 * 0.75 (the lease cap "
                "(45 - 37.5) / 2 = 3.75 does not bind)",
                in_flight=None,
                next_deadline=37.5 + 0.75,
                stats={"timeouts": 1},
                jitter_drawn=1,
            ),
            step(
                tick(38.25),
                [send(2, 38.25 + (45.0 - 38.25) / 2)],
                "the retry, with half of what remains of the lease",
            ),
            step(
                respond(2, "R", 39.0),
                NONE,
                "renewed from its send at 38.25",
                lease_deadline=38.25 + 45.0,
                next_deadline=38.25 + 30.0,
            ),
        ),
    ),
    Scenario(
        name="rule02_cadence_runs_from_the_send",
        covers=("rule 2", "rule 7", "rule 14"),
        summary="The next beat is due interval after the previous send, however "
        "late the answer.",
        config=config(),
        steps=(
            step(tick(30.0), [send(1, 37.5)], "beat 1"),
            step(
                respond(1, "R", 36.0),
                NONE,
                "next beat at 30 + 30, not 36 + 30",
                next_deadline=60.0,
                lease_deadline=75.0,
            ),
            step(tick(60.0), [send(2, 67.5)], "beat 2, on time"),
            step(
                respond(2, "R", 67.0),
                NONE,
                "a 7 s round trip does not stretch the period",
                next_deadline=90.0,
                lease_deadline=105.0,
            ),
            step(tick(90.0), [send(3, 97.5)], "beat 3"),
            step(
                respond(3, "R", 91.0),
                NONE,
                "renewals 30 s apart",
                next_deadline=120.0,
                lease_deadline=135.0,
                stats={"renewals": 3, "max_renewal_gap": 30.0},
            ),
        ),
    ),
    Scenario(
        name="rule03_exact_wakeups",
        covers=("rule 3", "rule 14"),
        summary="tick before next_deadline does nothing; at or after it acts and "
        "records how late it was.",
        config=config(),
        state={
            "next_deadline": 30.0,
            "lease_deadline": 45.0,
            "last_heartbeat_time": 0.0,
            "in_flight": None,
            "current_status": "R",
            "lapsed": False,
            "stopped": False,
            "stats": ZERO_STATS,
        },
        steps=(
            step(tick(29.999), NONE, "early: nothing", next_deadline=30.0),
            step(tick(29.999), NONE, "the same now again is allowed"),
            step(
                tick(30.25),
                [send(1, 30.25 + (45.0 - 30.25) / 2)],
                "0.25 late: the beat goes out, lateness recorded",
                stats={"max_tick_lateness": 0.25},
            ),
            step(tick(30.25), NONE, "a second tick at the same time does nothing"),
            step(
                respond(1, "R", 31.0),
                NONE,
                "next beat interval after the (late) send",
                next_deadline=60.25,
                lease_deadline=75.25,
            ),
            step(tick(60.0), NONE, "early again"),
            step(
                tick(60.75),
                [send(2, 60.75 + (75.25 - 60.75) / 2)],
                "0.5 late: the largest lateness so far",
                stats={"max_tick_lateness": 0.5},
            ),
        ),
    ),
    Scenario(
        name="rule03_lease_deadline_is_a_wakeup",
        covers=("rule 3", "rule 5", "rule 8"),
        summary="While the lease is live, next_deadline is min(D or next, L): the "
        "lapse is learnt at L even with a request in flight.",
        config=config(
            interval=10.0,
            report_by_buffer=1.05,
            request_timeout=5.0,
            backoff_initial=2.0,
        ),
        state={"next_deadline": 10.0, "lease_deadline": 10.5},
        steps=(
            step(
                tick(10.0),
                [send(1, 10.0 + 5.0, increment=10.5)],
                "h = (10.5 - 10) / 2 = 0.25 is below B / 2 = 1: no lease cap, "
                "D = 10 + min(T, I)",
                next_deadline=10.5,
            ),
            step(
                tick(10.5),
                [lapsed(10.5)],
                "wake at L",
                lapsed=True,
                next_deadline=15.0,
            ),
            step(
                respond(1, "R", 12.0),
                [restored(10.5, 20.5)],
                "renewed: L = 10 + 10.5 > now",
                lapsed=False,
                next_deadline=20.0,
                lease_deadline=20.5,
            ),
        ),
    ),
    Scenario(
        name="rule03_same_outcome_without_the_tick",
        covers=("rule 3", "rule 8", "edge lapse and restore"),
        summary="A driver that skips the tick at L gets the same actions, in one "
        "call: the lapse first, then the restore.",
        config=config(
            interval=10.0,
            report_by_buffer=1.05,
            request_timeout=5.0,
            backoff_initial=2.0,
        ),
        steps=(
            step(tick(10.0), [send(1, 15.0, increment=10.5)], "beat 1"),
            step(
                respond(1, "R", 12.0),
                [lapsed(10.5), restored(10.5, 20.5)],
                "the time steps run first (L = 10.5 passed), then the renewal",
                lapsed=False,
                next_deadline=20.0,
                stats={"lapses": 1, "renewals": 1},
            ),
        ),
    ),
    Scenario(
        name="rule04_increment_on_every_beat",
        covers=("rule 4", "rule 6", "edge cadence cap", "edge halving floor"),
        summary="N is the binary64 product interval * report_by_buffer, unrounded, "
        "on the first beat and on retries.",
        config=config(interval=0.1, report_by_buffer=3.0, beat_at_start=True),
        jitter=(0.5,),
        state={"next_report_increment": 0.30000000000000004},
        steps=(
            step(
                tick(0.0),
                [send(1, 0.1, increment=0.30000000000000004)],
                "N = 0.1 * 3 = 0.30000000000000004; D = 0 + min(10, 0.1): h = 0.15 "
                "is below B / 2 = 0.5",
            ),
            step(
                fail(1, 0.05),
                NONE,
                "delay min(1, 0.1) * 0.75 = 0.075, no lease cap (h = 0.125 < 0.5); "
                "0.125 is later than C + I = 0.1: the cadence cap wins",
                next_deadline=0.1,
            ),
            step(
                tick(0.1),
                [send(2, 0.1 + 0.1, increment=0.30000000000000004)],
                "the retry carries the same N",
            ),
        ),
    ),
    Scenario(
        name="rule04_increment_is_one_product",
        covers=("rule 4",),
        summary="N = 2.5 * 1.2, computed once, as one binary64 product.",
        config=config(interval=2.5, report_by_buffer=1.2, request_timeout=1.0),
        state={"next_report_increment": 2.5 * 1.2},
        steps=(
            step(
                tick(2.5),
                [send(1, 2.5 + 1.0, increment=2.5 * 1.2)],
                "h = (3 - 2.5) / 2 = 0.25 is below B / 2 = 0.5: D = s + min(T, I)",
            ),
        ),
    ),
    Scenario(
        name="rule05_deadline_half_the_remaining_lease",
        covers=("rule 5",),
        summary="With the defaults a beat renewed on time gets (N - I) / 2 = 7.5.",
        config=config(),
        steps=(
            step(tick(30.0), [send(1, 30.0 + (45.0 - 30.0) / 2)], "min(10, 30, 7.5)"),
            step(respond(1, "R", 31.0), NONE, "renewed", lease_deadline=75.0),
            step(tick(60.0), [send(2, 60.0 + (75.0 - 60.0) / 2)], "again 7.5"),
        ),
    ),
    Scenario(
        name="rule05_deadline_request_timeout",
        covers=("rule 5",),
        summary="A long lease: the request timeout T is the cap.",
        config=config(report_by_buffer=3.0),
        steps=(
            step(
                tick(30.0),
                [send(1, 30.0 + 10.0, increment=90.0)],
                "(90 - 30) / 2 = 30 is not below min(T, I) = 10",
            ),
        ),
    ),
    Scenario(
        name="rule05_deadline_short_timeout",
        covers=("rule 5",),
        summary="A short request_timeout is the cap.",
        config=config(request_timeout=2.0),
        steps=(step(tick(30.0), [send(1, 32.0)], "min(T = 2, I, 7.5)"),),
    ),
    Scenario(
        name="rule05_deadline_interval_cap",
        covers=("rule 5",),
        summary="A request never outlives the next scheduled beat: min(T, I); the "
        "lease cap applies only when strictly shorter.",
        config=config(interval=5.0, report_by_buffer=3.0),
        steps=(
            step(
                tick(5.0),
                [send(1, 5.0 + 5.0, increment=15.0)],
                "min(T, I) = 5; h = (15 - 5) / 2 = 5 is not below it",
            ),
        ),
    ),
    Scenario(
        name="rule05_deadline_when_lapsed",
        covers=("rule 5", "rule 8", "rule 11"),
        summary="Once lapsed, a request gets the full min(T, I).",
        config=config(),
        steps=(
            step(
                tick(50.0),
                [lapsed(45.0), send(1, 50.0 + 10.0)],
                "h = (45 - 50) / 2 < 0: no lease cap",
                lapsed=True,
            ),
        ),
    ),
    Scenario(
        name="rule05_deadline_halving_floor",
        covers=("rule 5", "rule 6", "rule 8", "edge halving floor"),
        summary="At exactly B / 2 of half-lease the cap still applies; below it "
        "neither the request nor the retry is capped.",
        config=config(),
        jitter=(0.5,),
        steps=(
            step(
                beat_now(44.0),
                [send(1, 44.0 + 0.5)],
                "h = (45 - 44) / 2 = 0.5 = B / 2: capped (B / 2 <= h < min(T, I))",
            ),
            step(
                tick(44.5),
                NONE,
                "timeout at D; delay 0.75; h = (45 - 44.5) / 2 = 0.25 < B / 2: "
                "no cap; the retry at 45.25 comes after L = 45, the wake",
                next_deadline=45.0,
                stats={"timeouts": 1},
            ),
            step(tick(45.0), [lapsed(45.0)], "lapse at L", next_deadline=45.25),
            step(tick(45.25), [send(2, 45.25 + 10.0)], "lapsed: full min(T, I)"),
        ),
    ),
    Scenario(
        name="rule05_deadline_below_the_halving_floor",
        covers=("rule 5", "rule 8", "edge halving floor"),
        summary="Just below the floor a request gets its full min(T, I), past L; "
        "the lapse is still learnt at L.",
        config=config(),
        steps=(
            step(
                beat_now(44.002),
                [send(1, 44.002 + 10.0)],
                "h = (45 - 44.002) / 2 = 0.499 < B / 2 = 0.5: no lease cap",
                next_deadline=45.0,
            ),
            step(
                tick(45.0),
                [lapsed(45.0)],
                "lapse learnt with the request in flight",
                in_flight=1,
                next_deadline=44.002 + 10.0,
            ),
            step(
                respond(1, "R", 46.0),
                [restored(45.0, 44.002 + 45.0)],
                "renewed from its send at 44.002",
                next_deadline=44.002 + 30.0,
            ),
        ),
    ),
    Scenario(
        name="rule05_expiry_by_any_input",
        covers=("rule 5", "rule 6", "rule 9"),
        summary="Any input at or after D expires the request first, with its "
        "retry computed from D, not from now.",
        config=config(),
        jitter=(0.5,),
        steps=(
            step(tick(30.0), [send(1, 37.5)], "beat 1"),
            step(
                set_status("R", 40.0),
                [send(2, 40.0 + (45.0 - 40.0) / 2)],
                "request 1 expired at 37.5, retry due at 37.5 + 0.75, already "
                "past: sent now; the unchanged status itself does nothing",
                stats={"timeouts": 1},
                jitter_drawn=1,
            ),
        ),
    ),
]

# ---------------------------------------------------------------- rule 6

_T3 = 32.0 + 4.0 * (0.5 + 0.5 * 0.9999999999999999)
_T4 = _T3 + 8.0 * (0.5 + 0.5 * 0.25)
_T5 = _T4 + 16.0 * 0.75
_T6 = _T5 + 30.0 * 0.75
_T7 = _T6 + 30.0 * 0.5

_RULE_6 = [
    Scenario(
        name="rule06_backoff_doubles_to_the_interval",
        covers=("rule 6",),
        summary="Each failure doubles the delay, from B up to I, jittered to "
        "between half and all of it; an answer starts again from B.",
        config=config(report_by_buffer=10.0),
        jitter=(0.0, 0.5, 0.9999999999999999, 0.25, 0.5, 0.5, 0.0, 0.5),
        steps=(
            step(tick(30.0), [send(1, 40.0, increment=300.0)], "L = 300: no lease cap"),
            step(fail(1, 30.0), NONE, "n = 1: 1 * (0.5 + 0.5 * 0)", next_deadline=30.5),
            step(tick(30.5), [send(2, 40.5, increment=300.0)], "retry 1"),
            step(fail(2, 30.5), NONE, "n = 2: 2 * 0.75", next_deadline=32.0),
            step(tick(32.0), [send(3, 42.0, increment=300.0)], "retry 2"),
            step(
                fail(3, 32.0),
                NONE,
                "n = 3: 4 * (0.5 + 0.5 * u), u just under 1",
                next_deadline=_T3,
            ),
            step(tick(_T3), [send(4, _T3 + 10.0, increment=300.0)], "retry 3"),
            step(
                fail(4, _T3), NONE, "n = 4: 8 * (0.5 + 0.5 * 0.25)", next_deadline=_T4
            ),
            step(tick(_T4), [send(5, _T4 + 10.0, increment=300.0)], "retry 4"),
            step(fail(5, _T4), NONE, "n = 5: 16 * 0.75", next_deadline=_T5),
            step(tick(_T5), [send(6, _T5 + 10.0, increment=300.0)], "retry 5"),
            step(
                fail(6, _T5),
                NONE,
                "n = 6: min(32, I = 30) * 0.75: capped at the interval",
                next_deadline=_T6,
            ),
            step(tick(_T6), [send(7, _T6 + 10.0, increment=300.0)], "retry 6"),
            step(fail(7, _T6), NONE, "n = 7: 30 * (0.5 + 0.5 * 0)", next_deadline=_T7),
            step(tick(_T7), [send(8, _T7 + 10.0, increment=300.0)], "retry 7"),
            step(
                respond(8, "R", _T7 + 0.5),
                NONE,
                "an answer resets n",
                next_deadline=_T7 + 30.0,
                lease_deadline=_T7 + 300.0,
                stats={"failures": 7, "renewals": 1},
            ),
            step(
                tick(_T7 + 30.0), [send(9, _T7 + 40.0, increment=300.0)], "on cadence"
            ),
            step(
                fail(9, _T7 + 30.0),
                NONE,
                "n = 1 again: 1 * 0.75",
                next_deadline=_T7 + 30.75,
                jitter_drawn=8,
            ),
        ),
    ),
    Scenario(
        name="rule06_retry_is_a_fresh_beat",
        covers=("rule 6", "rule 14"),
        summary="A retry has a new seq and the current status; a late answer to "
        "the failed request is stale.",
        config=config(),
        jitter=(0.5,),
        steps=(
            step(tick(30.0), [send(1, 37.5)], "beat 1"),
            step(
                fail(1, 31.0),
                NONE,
                "retry at 31 + 0.75 (lease cap (45 - 31) / 2 = 7 does not bind)",
                next_deadline=31.75,
            ),
            step(
                respond(1, "R", 31.5),
                NONE,
                "request 1 already failed: its answer is stale and renews nothing",
                lease_deadline=45.0,
                stats={"stale_responses": 1, "renewals": 0},
            ),
            step(
                tick(31.75),
                [send(2, 31.75 + (45.0 - 31.75) / 2)],
                "the retry: seq 2, status R, the same N",
            ),
            step(
                respond(2, "R", 32.0),
                NONE,
                "renewed",
                lease_deadline=31.75 + 45.0,
                next_deadline=31.75 + 30.0,
            ),
        ),
    ),
    Scenario(
        name="rule06_half_lease_cap_squeezes_retries",
        covers=("rule 5", "rule 6", "rule 8", "edge halving floor"),
        summary="Requests and retries each take at most half of what remains of "
        "the lease, until less than B / 2 remains.",
        config=config(),
        jitter=(0.5,) * 8,
        steps=(
            step(tick(30.0), [send(1, 37.5)], "h = 7.5"),
            step(fail(1, 30.0), NONE, "n = 1: 0.75", next_deadline=30.75),
            step(tick(30.75), [send(2, 30.75 + 7.125)], "h = (45 - 30.75) / 2"),
            step(fail(2, 30.75), NONE, "n = 2: 1.5", next_deadline=32.25),
            step(tick(32.25), [send(3, 32.25 + 6.375)], "h = 6.375"),
            step(fail(3, 32.25), NONE, "n = 3: 3", next_deadline=35.25),
            step(tick(35.25), [send(4, 35.25 + 4.875)], "h = 4.875"),
            step(
                fail(4, 35.25),
                NONE,
                "n = 4: 6, capped to h = 4.875",
                next_deadline=35.25 + 4.875,
            ),
            step(tick(40.125), [send(5, 40.125 + 2.4375)], "h = 2.4375"),
            step(
                fail(5, 40.125),
                NONE,
                "n = 5: 12, capped to h",
                next_deadline=40.125 + 2.4375,
            ),
            step(tick(42.5625), [send(6, 42.5625 + 1.21875)], "h = 1.21875"),
            step(
                fail(6, 42.5625),
                NONE,
                "n = 6: 22.5, capped to h",
                next_deadline=42.5625 + 1.21875,
            ),
            step(tick(43.78125), [send(7, 43.78125 + 0.609375)], "h = 0.609375"),
            step(
                fail(7, 43.78125),
                NONE,
                "n = 7: 22.5, capped to h",
                next_deadline=43.78125 + 0.609375,
            ),
            step(
                tick(44.390625),
                [send(8, 44.390625 + 10.0)],
                "h = 0.3046875 < B / 2: the full min(T, I), past L",
                next_deadline=45.0,
            ),
            step(
                fail(8, 44.390625),
                NONE,
                "n = 8: 22.5, not capped; the wake is L",
                next_deadline=45.0,
            ),
            step(
                tick(45.0),
                [lapsed(45.0)],
                "the lease ran out",
                next_deadline=44.390625 + 22.5,
            ),
            step(
                tick(66.890625), [send(9, 66.890625 + 10.0)], "lapsed: full min(T, I)"
            ),
        ),
    ),
    Scenario(
        name="rule06_retry_halving_floor_is_inclusive",
        covers=("rule 6", "edge halving floor"),
        summary="A retry with exactly B / 2 of half-lease left is still capped; "
        "below that it is not.",
        config=config(),
        jitter=(0.5, 0.5),
        steps=(
            step(beat_now(44.0), [send(1, 44.0 + 0.5)], "h = 0.5 = B / 2"),
            step(
                fail(1, 44.0),
                NONE,
                "0.75, capped to h = (45 - 44) / 2 = 0.5 = B / 2 (h >= B / 2)",
                next_deadline=44.0 + 0.5,
            ),
            step(
                tick(44.5),
                [send(2, 44.5 + 10.0)],
                "h = 0.25 < B / 2: the full min(T, I)",
            ),
            step(
                fail(2, 44.5),
                NONE,
                "n = 2: 1.5, not capped (h = 0.25 < B / 2); the wake is L",
                next_deadline=45.0,
            ),
            step(tick(45.0), [lapsed(45.0)], "lapsed", next_deadline=44.5 + 1.5),
        ),
    ),
    Scenario(
        name="rule06_retry_after_lengthens_only",
        covers=("rule 6", "edge retry_after bounds", "edge cadence cap"),
        summary="Retry-After raises the delay, never lowers it, and is capped at "
        "the interval; any finite value >= 0 is accepted.",
        config=config(report_by_buffer=10.0),
        jitter=(0.5,) * 5,
        steps=(
            step(tick(30.0), [send(1, 40.0, increment=300.0)], "beat 1"),
            step(
                fail(1, 30.0, 0.0),
                NONE,
                "Retry-After 0: the jittered 0.75 stands",
                next_deadline=30.75,
            ),
            step(tick(30.75), [send(2, 40.75, increment=300.0)], "retry 1"),
            step(
                fail(2, 30.75, 1.0),
                NONE,
                "n = 2: jittered 1.5; Retry-After 1 is shorter",
                next_deadline=30.75 + 1.5,
            ),
            step(tick(32.25), [send(3, 42.25, increment=300.0)], "retry 2"),
            step(
                fail(3, 32.25, 5.0),
                NONE,
                "n = 3: jittered 3; Retry-After 5 lengthens it",
                next_deadline=32.25 + 5.0,
            ),
            step(tick(37.25), [send(4, 47.25, increment=300.0)], "retry 3"),
            step(
                fail(4, 37.25, 100.0),
                NONE,
                "Retry-After 100 is capped at I: 37.25 + 30 (= C + I)",
                next_deadline=37.25 + 30.0,
            ),
            step(tick(67.25), [send(5, 77.25, increment=300.0)], "retry 4"),
            step(
                fail(5, 67.25, 1e300),
                NONE,
                "any finite Retry-After: min(1e300, I) = 30",
                next_deadline=67.25 + 30.0,
                jitter_drawn=5,
            ),
        ),
    ),
    Scenario(
        name="rule06_retry_after_within_the_lease",
        covers=("rule 6", "edge retry_after bounds"),
        summary="Retry-After is still bounded by half of what remains of the lease.",
        config=config(),
        jitter=(0.5,),
        steps=(
            step(tick(30.0), [send(1, 37.5)], "beat 1"),
            step(
                fail(1, 30.0, 10.0),
                NONE,
                "max(0.75, 10) = 10, then the lease cap (45 - 30) / 2 = 7.5",
                next_deadline=30.0 + 7.5,
            ),
        ),
    ),
    Scenario(
        name="rule06_cadence_cap_after_a_late_failure",
        covers=("rule 6", "edge cadence cap", "edge retry_after bounds"),
        summary="A retry is never due later than C + I, the beat after the last send.",
        config=config(report_by_buffer=10.0),
        jitter=(0.5,),
        steps=(
            step(tick(30.0), [send(1, 40.0, increment=300.0)], "beat 1"),
            step(
                fail(1, 39.0, 25.0),
                NONE,
                "39 + max(0.75, 25) = 64 is later than C + I = 60",
                next_deadline=60.0,
            ),
            step(tick(60.0), [send(2, 70.0, increment=300.0)], "sent on cadence"),
        ),
    ),
    Scenario(
        name="rule06_cadence_cap_with_a_long_backoff",
        covers=("rule 6", "edge cadence cap"),
        summary="The cadence cap binds a long backoff too.",
        config=config(report_by_buffer=10.0, backoff_initial=30.0),
        jitter=(0.5,),
        steps=(
            step(tick(30.0), [send(1, 40.0, increment=300.0)], "beat 1"),
            step(
                fail(1, 39.0),
                NONE,
                "delay min(30, 30) * 0.75 = 22.5; 61.5 is later than C + I = 60",
                next_deadline=60.0,
            ),
        ),
    ),
    Scenario(
        name="rule06_signal_and_reset_timer_reset_the_count",
        covers=("rule 6", "rule 10", "edge reset_timer"),
        summary="A signal (like any answer) and reset_timer set n back to 0.",
        config=config(report_by_buffer=10.0),
        jitter=(0.5,) * 4,
        steps=(
            step(tick(30.0), [send(1, 40.0, increment=300.0)], "beat 1"),
            step(fail(1, 30.0), NONE, "n = 1", next_deadline=30.75),
            step(tick(30.75), [send(2, 40.75, increment=300.0)], "retry 1"),
            step(fail(2, 30.75), NONE, "n = 2: 1.5", next_deadline=32.25),
            step(tick(32.25), [send(3, 42.25, increment=300.0)], "retry 2"),
            step(
                respond(3, "C", 32.5),
                [changed("R", "C"), send(4, 42.5, "C", 300.0)],
                "a signal: n = 0, and the adopted status goes out at once",
            ),
            step(fail(4, 32.5), NONE, "n = 1 again: 0.75", next_deadline=33.25),
            step(
                reset_timer(33.0),
                NONE,
                "a renewal at 33: n = 0, next beat at 33 + 30",
                next_deadline=63.0,
                lease_deadline=333.0,
                last_heartbeat_time=33.0,
            ),
            step(tick(63.0), [send(5, 73.0, "C", 300.0)], "on the new cadence"),
            step(fail(5, 63.0), NONE, "n = 1: 0.75", next_deadline=63.75),
        ),
    ),
    Scenario(
        name="rule06_set_status_and_beat_now_keep_the_count",
        covers=("rule 6", "rule 9", "edge beat_now"),
        summary="set_status and beat_now skip the wait but do not reset n.",
        config=config(report_by_buffer=10.0),
        jitter=(0.5,) * 3,
        steps=(
            step(tick(30.0), [send(1, 40.0, increment=300.0)], "beat 1"),
            step(fail(1, 30.0), NONE, "n = 1: retry at 30.75", next_deadline=30.75),
            step(
                set_status("D", 30.5),
                [send(2, 40.5, "D", 300.0)],
                "a new status goes out at once",
            ),
            step(
                fail(2, 30.5),
                NONE,
                "status unchanged since that send: n = 2, 2 * 0.75",
                next_deadline=32.0,
            ),
            step(
                beat_now(31.0), [send(3, 41.0, "D", 300.0)], "beat_now skips the wait"
            ),
            step(fail(3, 31.0), NONE, "n = 3: 4 * 0.75", next_deadline=34.0),
        ),
    ),
]

# ---------------------------------------------------------------- rules 7 and 8

_RULES_7_AND_8 = [
    Scenario(
        name="rule07_lease_from_the_send",
        covers=("rule 7", "input queries", "edge is_heartbeat_due"),
        summary="The lease runs from the send time of the renewed beat, never from "
        "the answer.",
        config=config(),
        steps=(
            step(tick(30.0), [send(1, 37.5)], "beat 1"),
            step(
                respond(1, "R", 37.0),
                NONE,
                "L = 30 + 45, not 37 + 45",
                lease_deadline=75.0,
                last_heartbeat_time=30.0,
            ),
            step(since(37.0), Value(7.0), "37 - 30"),
            step(
                since(10.0),
                Value(-20.0),
                "a query only checks that now is a time: an earlier now is fine",
            ),
            step(due(59.9), Value(False), "next beat at 60"),
            step(due(60.0), Value(True), "due at 60"),
            step(tick(38.0), NONE, "the query at 60 stored no time"),
        ),
    ),
    Scenario(
        name="rule07_answer_older_than_reset_timer",
        covers=("rule 7", "rule 14", "edge reset_timer"),
        summary="A renewal of a beat sent before a reset_timer counts, but does "
        "not move the lease back.",
        config=config(),
        steps=(
            step(tick(30.0), [send(1, 37.5)], "beat 1"),
            step(
                reset_timer(32.0),
                NONE,
                "a renewal at 32; the request continues",
                last_heartbeat_time=32.0,
                lease_deadline=77.0,
                next_deadline=37.5,
                in_flight=1,
            ),
            step(
                respond(1, "R", 33.0),
                NONE,
                "sent at 30 < 32: L stays 77; the next beat is C + I with C = 32",
                lease_deadline=77.0,
                next_deadline=62.0,
                stats={"renewals": 1, "max_renewal_gap": 32.0},
            ),
            step(tick(62.0), [send(2, 62.0 + (77.0 - 62.0) / 2)], "beat 2"),
        ),
    ),
    Scenario(
        name="rule07_lease_margin_ends_the_lease_early",
        covers=("rule 7", "rule 5", "rule 6", "rule 8", "edge lease margin"),
        summary="With lease_margin M the local lease is s + N - M; the server is "
        "still asked for all of N, and every cap uses the shorter lease.",
        config=config(lease_margin=1.0),
        jitter=(0.5, 0.5, 0.5),
        state={"lease_deadline": 44.0, "next_report_increment": 45.0},
        steps=(
            step(
                tick(30.0),
                [send(1, 30.0 + (44.0 - 30.0) / 2)],
                "N = 45 is sent; h = (44 - 30) / 2 = 7",
            ),
            step(
                respond(1, "R", 30.2),
                NONE,
                "L = 30 + 45 - 1",
                lease_deadline=74.0,
                last_heartbeat_time=30.0,
                next_deadline=60.0,
            ),
            step(tick(60.0), [send(2, 60.0 + (74.0 - 60.0) / 2)], "h = 7"),
            step(
                fail(2, 61.0, 20.0),
                NONE,
                "max(0.75, 20), capped to half of the shorter lease: (74 - 61) / 2",
                next_deadline=61.0 + 6.5,
            ),
            step(tick(67.5), [send(3, 67.5 + (74.0 - 67.5) / 2)], "h = 3.25"),
            step(
                tick(70.75),
                NONE,
                "timeout; n = 2: 1.5 (h = 1.625)",
                next_deadline=70.75 + 1.5,
            ),
            step(tick(72.25), [send(4, 72.25 + (74.0 - 72.25) / 2)], "h = 0.875"),
            step(
                tick(73.125),
                NONE,
                "timeout; n = 3: 3, not capped (h = 0.4375 < B / 2); wake at L",
                next_deadline=74.0,
            ),
            step(
                tick(74.0),
                [lapsed(74.0)],
                "the lapse at s + N - M, a second before s + N",
                next_deadline=73.125 + 3.0,
            ),
            step(tick(76.125), [send(5, 76.125 + 10.0)], "lapsed: full min(T, I)"),
            step(
                respond(5, "R", 76.5),
                [restored(74.0, 76.125 + 44.0)],
                "renewed from the send at 76.125, less the margin",
                lapsed=False,
            ),
        ),
    ),
    Scenario(
        name="rule07_lease_margin_at_its_limit",
        covers=("rule 7", "rule 8", "edge lease margin", "config lease_margin"),
        summary="The largest margin, N - M = I, is accepted: like "
        "report_by_buffer = 1, the lease ends when the next beat is due.",
        config=config(lease_margin=15.0),
        state={"lease_deadline": 30.0},
        steps=(
            step(
                tick(30.0),
                [lapsed(30.0), send(1, 30.0 + 10.0)],
                "L = 0 + 45 - 15 = 30: lapse, then the beat; h = 0: full min(T, I)",
            ),
            step(
                respond(1, "R", 31.0),
                [restored(30.0, 30.0 + 30.0)],
                "L = 30 + 45 - 15",
            ),
        ),
    ),
    Scenario(
        name="rule08_outage_lapses_once_restores_once",
        covers=("rule 8", "rule 6", "rule 5", "rule 14"),
        summary="Every request times out until 63; the lapse is reported once, at "
        "L, and the first renewal restores the lease once.",
        config=config(),
        jitter=(0.5,) * 4,
        steps=(
            step(tick(30.0), [send(1, 37.5)], "beat 1"),
            step(
                tick(37.5),
                NONE,
                "timeout; 0.75 (h = 3.75)",
                next_deadline=38.25,
            ),
            step(tick(38.25), [send(2, 38.25 + 3.375)], "h = (45 - 38.25) / 2"),
            step(
                tick(41.625),
                NONE,
                "timeout; n = 2: 1.5 (h = 1.6875)",
                next_deadline=43.125,
            ),
            step(tick(43.125), [send(3, 43.125 + 0.9375)], "h = 0.9375"),
            step(
                tick(44.0625),
                NONE,
                "timeout; n = 3: 3, h = 0.46875 < B / 2: not capped; the wake is L",
                next_deadline=45.0,
            ),
            step(
                tick(45.0),
                [lapsed(45.0)],
                "the lapse, once",
                lapsed=True,
                next_deadline=44.0625 + 3.0,
            ),
            step(tick(47.0625), [send(4, 57.0625)], "lapsed: full min(T, I)"),
            step(
                tick(57.0625),
                NONE,
                "timeout; n = 4: 6; no second LeaseLapsed",
                next_deadline=63.0625,
                stats={"lapses": 1},
            ),
            step(tick(63.0625), [send(5, 73.0625)], "retry 4"),
            step(
                respond(5, "R", 63.5),
                [restored(45.0, 63.0625 + 45.0)],
                "the restore, once",
                lapsed=False,
                next_deadline=63.0625 + 30.0,
            ),
            step(tick(93.0625), [send(6, 93.0625 + 7.5)], "back to normal"),
            step(
                respond(6, "R", 93.5),
                NONE,
                "no second LeaseRestored",
                lease_deadline=93.0625 + 45.0,
                stats={
                    "beats_sent": 6,
                    "renewals": 2,
                    "timeouts": 4,
                    "lapses": 1,
                    "max_renewal_gap": 63.0625,
                },
            ),
        ),
    ),
    Scenario(
        name="rule08_reset_timer_lapse_and_restore",
        covers=("rule 8", "edge lapse and restore", "edge reset_timer"),
        summary="reset_timer after the lease passed, with no tick in between: the "
        "lapse and the restore in one call.",
        config=config(),
        steps=(
            step(
                reset_timer(50.0),
                [lapsed(45.0), restored(45.0, 95.0)],
                "time steps first (L = 45 passed), then the renewal at 50",
                lease_deadline=95.0,
                next_deadline=80.0,
                stats={"lapses": 1, "renewals": 0, "max_renewal_gap": 50.0},
            ),
        ),
    ),
    Scenario(
        name="rule08_buffer_one_lapses_every_beat",
        covers=("rule 8", "edge buffer one"),
        summary="report_by_buffer = 1: L = C + I, so every on-time beat follows a "
        "lapse.",
        config=config(interval=10.0, report_by_buffer=1.0),
        steps=(
            step(
                tick(10.0),
                [lapsed(10.0), send(1, 20.0, increment=10.0)],
                "lapse is now >= L; h = 0: D = 10 + min(T, I)",
            ),
            step(respond(1, "R", 10.2), [restored(10.0, 20.0)], "renewed"),
            step(
                tick(20.0),
                [lapsed(20.0), send(2, 30.0, increment=10.0)],
                "and again",
                stats={"lapses": 2},
            ),
        ),
    ),
]

# ---------------------------------------------------------------- rules 9 and 10

_LOCAL_CHANGE = (
    step(tick(30.0), [send(1, 37.5)], "beat 1 carries R"),
    step(
        set_status("D", 31.0),
        NONE,
        "stored; sent when request 1 ends",
        current_status="D",
        in_flight=1,
    ),
)

_RULES_9_AND_10 = [
    Scenario(
        name="rule09_local_status_after_a_renewal",
        covers=("rule 9",),
        summary="The renewal still renews; the new status goes out at once.",
        config=config(),
        steps=(
            *_LOCAL_CHANGE,
            step(
                respond(1, "R", 32.0),
                [send(2, 32.0 + 10.0, "D")],
                "renewed (L = 75); D sent at once: h = (75 - 32) / 2 >= T",
                lease_deadline=75.0,
                current_status="D",
            ),
            step(
                respond(2, "D", 32.5),
                NONE,
                "renewed",
                lease_deadline=77.0,
                next_deadline=62.0,
            ),
        ),
    ),
    Scenario(
        name="rule09_local_status_after_a_signal",
        covers=("rule 9", "rule 10", "edge signal vs local"),
        summary="A signal answering the old status is counted, not adopted: no "
        "StatusChanged, and the local status goes out.",
        config=config(),
        steps=(
            *_LOCAL_CHANGE,
            step(
                respond(1, "C", 32.0),
                [send(2, 32.0 + (45.0 - 32.0) / 2, "D")],
                "a signal, not adopted; not a renewal (L stays 45)",
                current_status="D",
                lease_deadline=45.0,
                stats={"signals": 1, "renewals": 0},
            ),
            step(respond(2, "D", 32.5), NONE, "renewed", lease_deadline=77.0),
        ),
    ),
    Scenario(
        name="rule09_local_status_after_a_timeout",
        covers=("rule 9",),
        summary="A request that times out after a local change: the new status "
        "goes out at D, with no backoff and no jitter drawn.",
        config=config(),
        steps=(
            *_LOCAL_CHANGE,
            step(
                tick(37.5),
                [send(2, 37.5 + (45.0 - 37.5) / 2, "D")],
                "next = a = D, so the send is in the same call",
                stats={"timeouts": 1},
                jitter_drawn=0,
            ),
        ),
    ),
    Scenario(
        name="rule09_local_status_after_a_failure",
        covers=("rule 9", "edge retry_after bounds"),
        summary="A failure after a local change: the new status goes out at once, "
        "whatever Retry-After says.",
        config=config(),
        steps=(
            *_LOCAL_CHANGE,
            step(
                fail(1, 32.0, 20.0),
                [send(2, 32.0 + (45.0 - 32.0) / 2, "D")],
                "Retry-After 20 is not used; no jitter drawn",
                stats={"failures": 1},
                jitter_drawn=0,
            ),
        ),
    ),
    Scenario(
        name="rule09_set_status_when_idle",
        covers=("rule 9",),
        summary="With nothing in flight a new status goes out in the same call; "
        "the same status again does nothing.",
        config=config(),
        steps=(
            step(
                set_status("D", 10.0),
                [send(1, 10.0 + 10.0, "D")],
                "h = (45 - 10) / 2 = 17.5 >= T",
            ),
            step(set_status("D", 10.5), NONE, "unchanged: nothing"),
            step(
                respond(1, "D", 11.0),
                NONE,
                "renewed",
                lease_deadline=55.0,
                next_deadline=40.0,
            ),
        ),
    ),
    Scenario(
        name="rule09_server_echoes_the_new_local_status",
        covers=("rule 9", "rule 10", "edge signal vs local"),
        summary="An answer differing from the status sent is a signal even when it "
        "equals the new local status.",
        config=config(),
        steps=(
            *_LOCAL_CHANGE,
            step(
                respond(1, "D", 32.0),
                [send(2, 32.0 + (45.0 - 32.0) / 2, "D")],
                "D differs from the R sent: a signal, not a renewal; no "
                "StatusChanged, since the local status changed",
                lease_deadline=45.0,
                stats={"signals": 1, "renewals": 0},
            ),
        ),
    ),
    Scenario(
        name="rule10_signals_surface_once_in_order",
        covers=("rule 10",),
        summary="Each signal gives one StatusChanged, in order, and an immediate "
        "beat with the adopted status.",
        config=config(),
        steps=(
            step(tick(30.0), [send(1, 37.5)], "beat 1"),
            step(
                respond(1, "C", 31.0),
                [changed("R", "C"), send(2, 31.0 + (45.0 - 31.0) / 2, "C")],
                "signal C: adopted, sent at once",
                current_status="C",
                lease_deadline=45.0,
            ),
            step(
                respond(2, "E", 31.5),
                [changed("C", "E"), send(3, 31.5 + (45.0 - 31.5) / 2, "E")],
                "signal E",
                current_status="E",
            ),
            step(
                respond(3, "E", 32.0),
                NONE,
                "renewed from the send at 31.5",
                lease_deadline=31.5 + 45.0,
                next_deadline=31.5 + 30.0,
                stats={"signals": 2, "renewals": 1, "beats_sent": 3},
            ),
        ),
    ),
    Scenario(
        name="rule10_signal_is_not_a_renewal",
        covers=("rule 10", "rule 11", "rule 8"),
        summary="A signal while lapsed leaves the lease lapsed; the renewal of the "
        "adopted status restores it.",
        config=config(),
        jitter=(0.5,),
        steps=(
            step(tick(30.0), [send(1, 37.5)], "beat 1"),
            step(respond(1, "R", 30.2), NONE, "renewed", lease_deadline=75.0),
            step(tick(60.0), [send(2, 67.5)], "beat 2: no answer"),
            step(
                tick(200.0),
                [lapsed(75.0), send(3, 210.0)],
                "request 2 expired at 67.5 (retry due 68.25); lapse; one beat",
                stats={"timeouts": 1},
            ),
            step(
                respond(3, "C", 200.5),
                [changed("R", "C"), send(4, 210.5, "C")],
                "a signal does not restore",
                lapsed=True,
                lease_deadline=75.0,
            ),
            step(
                respond(4, "C", 200.7),
                [restored(75.0, 200.5 + 45.0)],
                "the renewal restores",
                lapsed=False,
            ),
        ),
    ),
]

# ---------------------------------------------------------------- rules 11 to 14

_RULES_11_TO_14 = [
    Scenario(
        name="rule11_suspended_after_a_renewal",
        covers=("rule 11", "edge huge late tick"),
        summary="A tick long after the schedule: the lapse, then one beat, no burst.",
        config=config(),
        steps=(
            step(tick(30.0), [send(1, 37.5)], "beat 1"),
            step(respond(1, "R", 31.0), NONE, "renewed", next_deadline=60.0),
            step(
                tick(200.0),
                [lapsed(75.0), send(2, 200.0 + 10.0)],
                "lapsed at 75; one beat, the cadence now runs from 200",
                stats={"max_tick_lateness": 140.0, "beats_sent": 2},
            ),
            step(tick(200.0), NONE, "nothing more", next_deadline=210.0),
        ),
    ),
    Scenario(
        name="rule11_suspended_with_a_request_in_flight",
        covers=("rule 11", "edge huge late tick"),
        summary="The request in flight expires at its D, its retry is already "
        "due, the lease lapsed: one call does all three, once.",
        config=config(),
        jitter=(0.5,),
        steps=(
            step(tick(30.0), [send(1, 37.5)], "beat 1"),
            step(
                tick(200.0),
                [lapsed(45.0), send(2, 210.0)],
                "expired at 37.5 (one jitter draw), lapsed at 45, one beat",
                stats={"timeouts": 1, "max_tick_lateness": 162.5},
                jitter_drawn=1,
            ),
        ),
    ),
    Scenario(
        name="rule11_tick_at_the_largest_time",
        covers=("rule 11", "input now", "edge numbers", "edge huge late tick"),
        summary="now = MAX_TIME is a valid time: one beat; beyond it is refused.",
        config=config(),
        jitter=(0.5,),
        steps=(
            step(tick(30.0), [send(1, 37.5)], "beat 1"),
            step(
                tick(MAX_TIME),
                [lapsed(45.0), send(2, MAX_TIME + 10.0)],
                "one beat at 2**40",
                stats={"max_tick_lateness": MAX_TIME - 37.5},
            ),
            step(tick(MAX_TIME), NONE, "in flight"),
            step(
                tick(MAX_TIME + 1.0),
                Refused("now"),
                "beyond MAX_TIME, though next_deadline (2**40 + 10) is later still",
            ),
            step(beat_now(MAX_TIME + 1.0), Refused("now"), "beyond MAX_TIME"),
        ),
    ),
    Scenario(
        name="rule12_now_must_not_go_backwards",
        covers=("rule 12", "input now backwards"),
        summary="Every input refuses a now earlier than the last, and changes "
        "nothing; the same now again is allowed.",
        config=config(),
        steps=(
            step(tick(30.0), [send(1, 37.5)], "beat 1"),
            step(tick(29.0), Refused("now"), "tick"),
            step(respond(1, "R", 29.0), Refused("now"), "handle_response"),
            step(fail(1, 29.0), Refused("now"), "handle_failure"),
            step(set_status("D", 29.0), Refused("now"), "set_status"),
            step(beat_now(29.0), Refused("now"), "beat_now"),
            step(reset_timer(29.0), Refused("now"), "reset_timer"),
            step(abandon(1, 29.0), Refused("now"), "abandon"),
            step(stop(29.0), Refused("now"), "stop"),
            step(
                respond(1, "R", 30.0),
                NONE,
                "equal to the last now: accepted, as if nothing was refused",
                lease_deadline=75.0,
                current_status="R",
                stopped=False,
                stats={"renewals": 1, "failures": 0},
            ),
        ),
    ),
    Scenario(
        name="rule12_now_must_be_a_time",
        covers=("rule 12", "input now"),
        summary="now must be a finite number within +-MAX_TIME.",
        config=config(),
        steps=(
            step(tick(NAN), Refused("now"), "NaN"),
            step(tick(INF), Refused("now"), "infinity"),
            step(tick(NEG_INF), Refused("now"), "-infinity"),
            step(tick(2.0 * MAX_TIME), Refused("now"), "beyond MAX_TIME"),
            step(tick("30"), Refused("now"), "a string"),
            step(tick(True), Refused("now"), "a boolean"),
            step(tick(None), Refused("now"), "null"),
            step(set_status("D", NAN), Refused("now"), "set_status checks it too"),
            step(reset_timer(INF), Refused("now"), "reset_timer too"),
            step(stop(NAN), Refused("now"), "stop too"),
            step(tick(30.0), [send(1, 37.5)], "nothing refused moved the clock"),
            step(fail(1, INF), Refused("now"), "handle_failure too"),
            step(abandon(1, NAN), Refused("now"), "abandon too"),
            step(respond(1, "R", None), Refused("now"), "handle_response too"),
            step(respond(1, "R", 31.0), NONE, "still in flight", lease_deadline=75.0),
        ),
    ),
    Scenario(
        name="rule12_seq_must_be_issued",
        covers=("rule 12", "input seq"),
        summary="seq must be an integer from 1 to the last one issued.",
        config=config(),
        steps=(
            step(respond(1, "R", 1.0), Refused("seq"), "no seq issued yet"),
            step(tick(30.0), [send(1, 37.5)], "seq 1 issued"),
            step(respond(2, "R", 31.0), Refused("seq"), "never issued"),
            step(respond(0, "R", 31.0), Refused("seq"), "0"),
            step(respond(-1, "R", 31.0), Refused("seq"), "negative"),
            step(respond(True, "R", 31.0), Refused("seq"), "a boolean"),
            step(respond("1", "R", 31.0), Refused("seq"), "a string"),
            step(respond(1.5, "R", 31.0), Refused("seq"), "not an integer"),
            step(respond(None, "R", 31.0), Refused("seq"), "null"),
            step(fail(2, 31.0), Refused("seq"), "handle_failure checks it too"),
            step(abandon(2, 31.0), Refused("seq"), "abandon too"),
            step(
                tick(30.5),
                NONE,
                "none of the refused inputs stored its now (31)",
                in_flight=1,
            ),
            step(
                respond(1, "R", 31.0),
                NONE,
                "seq 1: accepted",
                stats={"renewals": 1, "stale_responses": 0},
            ),
        ),
    ),
    Scenario(
        name="rule12_status_must_be_a_non_empty_string",
        covers=("rule 12", "input status"),
        summary="A status is a non-empty string.",
        config=config(),
        steps=(
            step(set_status("", 1.0), Refused("status"), "empty"),
            step(set_status(None, 1.0), Refused("status"), "null"),
            step(set_status(5, 1.0), Refused("status"), "a number"),
            step(tick(30.0), [send(1, 37.5)], "still R", current_status="R"),
            step(respond(1, "", 31.0), Refused("status"), "empty"),
            step(respond(1, 5, 31.0), Refused("status"), "a number"),
            step(respond(1, None, 31.0), Refused("status"), "null"),
            step(respond(1, "R", 31.0), NONE, "accepted", stats={"renewals": 1}),
        ),
    ),
    Scenario(
        name="rule12_retry_after_must_be_a_number_at_least_zero",
        covers=("rule 12", "input retry_after"),
        summary="retry_after is null (none) or a finite number >= 0.",
        config=config(),
        jitter=(0.5,),
        steps=(
            step(tick(30.0), [send(1, 37.5)], "beat 1"),
            step(fail(1, 31.0, -1.0), Refused("retry_after"), "negative"),
            step(fail(1, 31.0, NAN), Refused("retry_after"), "NaN"),
            step(fail(1, 31.0, INF), Refused("retry_after"), "infinity"),
            step(fail(1, 31.0, True), Refused("retry_after"), "a boolean"),
            step(fail(1, 31.0, "5"), Refused("retry_after"), "a string"),
            step(
                fail(1, 31.0, None),
                NONE,
                "null: no Retry-After; the refused calls drew no jitter",
                next_deadline=31.75,
                stats={"failures": 1},
                jitter_drawn=1,
            ),
        ),
    ),
    Scenario(
        name="rule12_checks_run_in_order",
        covers=("rule 12", "input order"),
        summary="Arguments are checked now first, then seq, then status or "
        "retry_after.",
        config=config(),
        steps=(
            step(tick(30.0), [send(1, 37.5)], "beat 1"),
            step(respond(7, "", 29.0), Refused("now"), "now first"),
            step(respond(7, "", 31.0), Refused("seq"), "then seq"),
            step(respond(1, "", 31.0), Refused("status"), "then status"),
            step(fail(7, 29.0, -1.0), Refused("now"), "now first"),
            step(fail(7, 31.0, -1.0), Refused("seq"), "then seq"),
            step(fail(1, 31.0, -1.0), Refused("retry_after"), "then retry_after"),
            step(set_status("", 29.0), Refused("now"), "now first"),
            step(abandon(7, 29.0), Refused("now"), "now first"),
            step(respond(1, "R", 31.0), NONE, "accepted", stats={"renewals": 1}),
        ),
    ),
    Scenario(
        name="rule12_queries_check_only_the_time",
        covers=("rule 12", "input queries", "edge is_heartbeat_due"),
        summary="is_heartbeat_due and time_since_last_heartbeat refuse a now that "
        "is not a time, accept an earlier one, and store nothing.",
        config=config(),
        steps=(
            step(tick(30.0), [send(1, 37.5)], "beat 1"),
            step(due(NAN), Refused("now"), "NaN"),
            step(since(2.0 * MAX_TIME), Refused("now"), "beyond MAX_TIME"),
            step(due(10.0), Value(False), "an earlier now is allowed"),
            step(since(100.0), Value(100.0), "100 - 0"),
            step(tick(31.0), NONE, "the query at 100 stored nothing"),
        ),
    ),
    Scenario(
        name="rule13_stop_then_late_answers",
        covers=("rule 13", "edge stop late answers", "input after stop"),
        summary="After stop every input is validated, then ignored: nothing is "
        "sent, counted or changed.",
        config=config(),
        steps=(
            step(tick(30.0), [send(1, 37.5)], "beat 1", in_flight=1),
            step(
                stop(31.0),
                NONE,
                "the request in flight is dropped",
                stopped=True,
                next_deadline=None,
                in_flight=None,
            ),
            step(
                respond(1, "R", 32.0),
                NONE,
                "a late answer: not a renewal, not even stale",
                lease_deadline=45.0,
                stats={"renewals": 0, "stale_responses": 0},
            ),
            step(
                fail(1, 33.0, 5.0),
                NONE,
                "a late failure",
                stats={"failures": 0, "stale_responses": 0},
                jitter_drawn=0,
            ),
            step(set_status("D", 34.0), NONE, "not stored", current_status="R"),
            step(reset_timer(35.0), NONE, "no renewal", last_heartbeat_time=0.0),
            step(beat_now(36.0), NONE, "no beat", stats={"beats_sent": 1}),
            step(abandon(1, 37.0), NONE, "nothing to abandon"),
            step(
                tick(100.0),
                NONE,
                "no LeaseLapsed, though L = 45 passed",
                lapsed=False,
                stats={"lapses": 0, "max_tick_lateness": 0.0},
            ),
            step(due(100.0), Value(False), "never due"),
            step(stop(101.0), NONE, "stop again"),
            step(tick(50.0), Refused("now"), "still validated: backwards"),
            step(respond(2, "R", 102.0), Refused("seq"), "never issued"),
            step(set_status("", 102.0), Refused("status"), "empty"),
        ),
    ),
    Scenario(
        name="rule13_stop_skips_the_time_steps",
        covers=("rule 13",),
        summary="stop runs no time step: an overdue request and a passed lease "
        "are neither counted nor reported.",
        config=config(),
        steps=(
            step(tick(30.0), [send(1, 37.5)], "beat 1"),
            step(
                stop(200.0),
                NONE,
                "no timeout, no lapse",
                stats={"timeouts": 0, "lapses": 0},
                lapsed=False,
                jitter_drawn=0,
            ),
        ),
    ),
    Scenario(
        name="rule14_every_counter",
        covers=("rule 14", "rule 10"),
        summary="Each counter changes only as its rule says.",
        config=config(),
        jitter=(0.5, 0.5),
        steps=(
            step(
                tick(30.5),
                [send(1, 30.5 + (45.0 - 30.5) / 2)],
                "0.5 late",
                stats={"beats_sent": 1, "max_tick_lateness": 0.5},
            ),
            step(
                respond(1, "R", 31.0),
                NONE,
                "renewal: gap 0 to 30.5",
                stats={"renewals": 1, "max_renewal_gap": 30.5},
                lease_deadline=75.5,
            ),
            step(
                respond(1, "R", 31.5),
                NONE,
                "a duplicate answer is stale",
                stats={"stale_responses": 1},
            ),
            step(tick(60.5), [send(2, 60.5 + 7.5)], "beat 2"),
            step(
                fail(2, 61.0),
                NONE,
                "a failure: retry at 61 + 0.75 (h = 7.25)",
                stats={"failures": 1},
                next_deadline=61.75,
            ),
            step(
                fail(2, 61.1),
                NONE,
                "a failure of a request no longer in flight is stale",
                stats={"failures": 1, "stale_responses": 2},
            ),
            step(tick(61.75), [send(3, 61.75 + (75.5 - 61.75) / 2)], "the retry"),
            step(
                tick(68.625),
                NONE,
                "a timeout: n = 2, 1.5 (h = 3.4375)",
                stats={"timeouts": 1},
                next_deadline=68.625 + 1.5,
            ),
            step(
                respond(3, "R", 69.0),
                NONE,
                "an answer after the deadline is stale",
                stats={"stale_responses": 3, "renewals": 1},
            ),
            step(tick(70.125), [send(4, 70.125 + (75.5 - 70.125) / 2)], "retry 2"),
            step(
                respond(4, "C", 70.5),
                [changed("R", "C"), send(5, 70.5 + (75.5 - 70.5) / 2, "C")],
                "a signal",
                stats={"signals": 1, "renewals": 1},
            ),
            step(
                respond(5, "C", 71.0),
                NONE,
                "renewal: gap 30.5 to 70.5",
                stats={"renewals": 2, "max_renewal_gap": 40.0},
                next_deadline=100.5,
            ),
            step(
                tick(200.0),
                [lapsed(115.5), send(6, 210.0, "C")],
                "a lapse; 99.5 late",
                stats={
                    "beats_sent": 6,
                    "renewals": 2,
                    "signals": 1,
                    "failures": 1,
                    "timeouts": 1,
                    "stale_responses": 3,
                    "lapses": 1,
                    "max_renewal_gap": 40.0,
                    "max_tick_lateness": 99.5,
                },
            ),
        ),
    ),
    Scenario(
        name="rule14_only_ticks_measure_lateness",
        covers=("rule 14", "rule 3", "edge beat_now"),
        summary="max_tick_lateness comes from tick alone; other late inputs leave "
        "it as it is.",
        config=config(),
        steps=(
            step(
                set_status("D", 35.0),
                [send(1, 35.0 + (45.0 - 35.0) / 2, "D")],
                "5 s after next_deadline, but not a tick",
                stats={"max_tick_lateness": 0.0},
            ),
            step(respond(1, "D", 36.0), NONE, "renewed", next_deadline=65.0),
            step(
                beat_now(70.0),
                [send(2, 70.0 + (80.0 - 70.0) / 2, "D")],
                "not a tick either",
                stats={"max_tick_lateness": 0.0},
            ),
            step(respond(2, "D", 71.0), NONE, "renewed", next_deadline=100.0),
            step(
                tick(100.5),
                [send(3, 100.5 + (115.0 - 100.5) / 2, "D")],
                "a tick 0.5 late",
                stats={"max_tick_lateness": 0.5},
            ),
        ),
    ),
]

# ---------------------------------------------------------------- edge decisions

_EDGES = [
    Scenario(
        name="edge_response_at_the_deadline_is_stale",
        covers=("edge stale at deadline", "rule 5", "rule 14"),
        summary="The request deadline is exclusive: an answer at now = D comes "
        "after the timeout.",
        config=config(),
        jitter=(0.5,),
        steps=(
            step(tick(30.0), [send(1, 37.5)], "D = 37.5"),
            step(
                respond(1, "R", 37.5),
                NONE,
                "the time step expires request 1 first; the answer is stale",
                lease_deadline=45.0,
                next_deadline=37.5 + 0.75,
                stats={"timeouts": 1, "stale_responses": 1, "renewals": 0},
            ),
        ),
    ),
    Scenario(
        name="edge_failure_at_the_deadline_is_stale",
        covers=("edge stale at deadline", "edge retry_after bounds"),
        summary="A failure at now = D is stale too; the retry is the timeout's, "
        "without its Retry-After.",
        config=config(),
        jitter=(0.5,),
        steps=(
            step(tick(30.0), [send(1, 37.5)], "D = 37.5"),
            step(
                fail(1, 37.5, 5.0),
                NONE,
                "retry from a = D: 37.5 + 0.75; the 5 is not used",
                next_deadline=38.25,
                stats={"timeouts": 1, "stale_responses": 1, "failures": 0},
            ),
        ),
    ),
    Scenario(
        name="edge_failure_just_before_the_deadline",
        covers=("edge stale at deadline", "edge retry_after bounds"),
        summary="Just before D the failure counts, with its Retry-After.",
        config=config(),
        jitter=(0.5,),
        steps=(
            step(tick(30.0), [send(1, 37.5)], "D = 37.5"),
            step(
                fail(1, 37.49, 5.0),
                NONE,
                "max(0.75, 5), capped to h = (45 - 37.49) / 2",
                next_deadline=37.49 + (45.0 - 37.49) / 2,
                stats={"failures": 1, "timeouts": 0},
            ),
        ),
    ),
    Scenario(
        name="edge_abandon_frees_the_slot",
        covers=("edge abandon", "rule 6", "rule 14"),
        summary="abandon ends the request in flight without counting it; the next "
        "beat is due at once but is sent by the next input, never by abandon.",
        config=config(),
        jitter=(0.5, 0.5),
        steps=(
            step(tick(30.0), [send(1, 37.5)], "beat 1"),
            step(
                abandon(1, 31.0),
                NONE,
                "no failure, no jitter; due at once (next_deadline = now)",
                in_flight=None,
                next_deadline=31.0,
                stats={"failures": 0, "timeouts": 0},
                jitter_drawn=0,
            ),
            step(
                tick(31.0),
                [send(2, 31.0 + (45.0 - 31.0) / 2)],
                "the next tick sends it, on time",
                stats={"max_tick_lateness": 0.0},
            ),
            step(
                respond(1, "R", 31.5),
                NONE,
                "the abandoned request's answer is stale",
                stats={"stale_responses": 1, "renewals": 0},
            ),
            step(abandon(1, 32.0), NONE, "not in flight: nothing changes", in_flight=2),
            step(fail(2, 32.0), NONE, "n = 1: 0.75 (h = 6.5)", next_deadline=32.75),
            step(tick(32.75), [send(3, 32.75 + (45.0 - 32.75) / 2)], "the retry"),
            step(abandon(3, 33.0), NONE, "abandoned", next_deadline=33.0),
            step(tick(33.0), [send(4, 33.0 + 6.0)], "sent at once"),
            step(
                fail(4, 33.0),
                NONE,
                "n = 2: the abandon did not reset the count: 2 * 0.75",
                next_deadline=34.5,
                stats={"failures": 2},
            ),
        ),
    ),
    Scenario(
        name="edge_abandon_runs_the_time_steps",
        covers=("edge abandon", "rule 8"),
        summary="abandon runs the time steps first: a request already past its D "
        "times out, a passed lease lapses; then abandon never sends.",
        config=config(),
        jitter=(0.5,),
        steps=(
            step(tick(30.0), [send(1, 37.5)], "beat 1"),
            step(
                abandon(1, 50.0),
                [lapsed(45.0)],
                "request 1 timed out at 37.5 (retry due at 38.25), so seq 1 is not "
                "in flight any more; the lapse is reported; nothing is sent",
                in_flight=None,
                next_deadline=38.25,
                stats={"timeouts": 1, "lapses": 1},
            ),
            step(
                tick(50.0),
                [send(2, 60.0)],
                "the overdue retry goes out; the tick is 50 - 38.25 late",
                stats={"max_tick_lateness": 50.0 - 38.25},
            ),
        ),
    ),
    Scenario(
        name="edge_reset_timer_after_abandon_restarts_the_cadence",
        covers=("edge reset_timer", "edge abandon"),
        summary="After an abandon the beat is due at once; a reset_timer then "
        "counts as that beat and restarts the cadence.",
        config=config(),
        steps=(
            step(tick(30.0), [send(1, 37.5)], "beat 1"),
            step(abandon(1, 31.0), NONE, "due at once", next_deadline=31.0),
            step(
                reset_timer(31.5),
                NONE,
                "a renewal at 31.5: the next beat is due at 31.5 + 30",
                next_deadline=61.5,
                lease_deadline=31.5 + 45.0,
            ),
        ),
    ),
    Scenario(
        name="edge_reset_timer_keeps_a_new_local_status_due",
        covers=("edge reset_timer", "edge abandon", "rule 9"),
        summary="A reset_timer does not postpone a new local status that has not "
        "gone out yet: it goes out in the same call.",
        config=config(),
        steps=(
            step(tick(30.0), [send(1, 37.5)], "beat 1 carries R"),
            step(set_status("D", 31.0), NONE, "D waits for request 1"),
            step(
                abandon(1, 32.0),
                NONE,
                "abandon never sends: D is due at once",
                next_deadline=32.0,
                current_status="D",
            ),
            step(
                reset_timer(32.5),
                [send(2, 32.5 + 10.0, "D")],
                "renewed at 32.5 (L = 77.5), but D has not been sent: it goes out "
                "now; h = (77.5 - 32.5) / 2 >= T",
                lease_deadline=77.5,
            ),
        ),
    ),
    Scenario(
        name="edge_beat_now_restarts_the_cadence",
        covers=("edge beat_now", "rule 2"),
        summary="beat_now sends at once and the cadence runs from it; while a "
        "request is in flight it sends nothing.",
        config=config(),
        steps=(
            step(tick(30.0), [send(1, 37.5)], "beat 1"),
            step(respond(1, "R", 31.0), NONE, "next at 60", next_deadline=60.0),
            step(
                beat_now(40.0),
                [send(2, 40.0 + 10.0)],
                "h = (75 - 40) / 2 = 17.5 >= T",
            ),
            step(beat_now(41.0), NONE, "seq 2 is in flight"),
            step(
                respond(2, "R", 41.5),
                NONE,
                "next at 40 + 30, not 60",
                next_deadline=70.0,
                lease_deadline=85.0,
            ),
        ),
    ),
    Scenario(
        name="edge_beat_now_ends_an_overdue_request",
        covers=("edge beat_now", "rule 5"),
        summary="beat_now past the request's D: the request times out first, then "
        "the beat goes out at once.",
        config=config(),
        jitter=(0.5,),
        steps=(
            step(tick(30.0), [send(1, 37.5)], "beat 1"),
            step(
                beat_now(40.0),
                [send(2, 40.0 + (45.0 - 40.0) / 2)],
                "timeout at 37.5, then the beat",
                stats={"timeouts": 1},
                jitter_drawn=1,
            ),
        ),
    ),
    Scenario(
        name="edge_is_heartbeat_due_runs_no_time_step",
        covers=("edge is_heartbeat_due", "input queries"),
        summary="is_heartbeat_due does not expire an overdue request: it stays "
        "false until an input ends the request.",
        config=config(),
        jitter=(0.5,),
        steps=(
            step(tick(30.0), [send(1, 37.5)], "beat 1"),
            step(due(50.0), Value(False), "request 1 is past D but still in flight"),
            step(tick(50.0), [lapsed(45.0), send(2, 60.0)], "tick runs the time steps"),
            step(
                respond(2, "R", 51.0),
                [restored(45.0, 50.0 + 45.0)],
                "renewed from the send at 50",
                next_deadline=80.0,
            ),
            step(due(79.9), Value(False), "not yet"),
            step(due(80.0), Value(True), "due"),
        ),
    ),
    Scenario(
        name="edge_stale_outcomes_run_the_time_steps",
        covers=("edge stale outcomes", "rule 14"),
        summary="An outcome for a seq not in flight changes nothing itself, but "
        "like any input it expires, lapses and sends what is due.",
        config=config(),
        jitter=(0.5, 0.5),
        steps=(
            step(tick(30.0), [send(1, 37.5)], "beat 1"),
            step(fail(1, 31.0), NONE, "retry at 31.75", next_deadline=31.75),
            step(
                respond(1, "R", 31.75),
                [send(2, 31.75 + (45.0 - 31.75) / 2)],
                "stale, but the retry is due: this call sends it",
                stats={"stale_responses": 1},
            ),
            step(
                respond(1, "R", 45.0),
                [lapsed(45.0), send(3, 45.0 + 10.0)],
                "stale again; meanwhile request 2 expired at 38.375 (n = 2: 1.5), "
                "the lease lapsed, and the retry is due",
                stats={"stale_responses": 2, "timeouts": 1, "lapses": 1},
            ),
        ),
    ),
]

#: Every scenario, in the order the vectors file lists them.
SCENARIOS: list[Scenario] = [
    *_CONSTRUCTION,
    *_REFUSED,
    *_RULES_1_TO_5,
    *_RULE_6,
    *_RULES_7_AND_8,
    *_RULES_9_AND_10,
    *_RULES_11_TO_14,
    *_EDGES,
]
