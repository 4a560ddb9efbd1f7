"""Generate docs/conformance/vectors.json from the hand-written scenarios.

Regenerate after any change to the machine's rules or to the scenarios, from the
repository root:

    .venv/bin/python -m tests.conformance.make_vectors

Strategy: the scenarios (tests/conformance/scenarios.py) state by hand what every
step must return. This module plays each one on sansbeat's `HeartbeatMachine`,
checks every hand-stated expectation against what the machine did, and records
the machine's full outputs: every action of every step, and the whole state after
every step. So the vectors pin the machine down completely, and yet a change of
behaviour cannot slip into them unnoticed: it breaks a stated expectation first.

It talks to the machine directly, not through the reference peer of
`sansbeat.adapters.conformance`, so that the peer is checked by the vectors rather
than trusted by them. Only the comparison rules (`first_difference`) are shared,
being part of the protocol.

Checks, any of which stops the generator with the scenario, the step and what is
wrong (`ScenarioError`):

- every hand-stated expectation holds: the actions (all of them, in order), the
  refused field, the query's value, each stated piece of state;
- every step states what it returns and why;
- an input that is refused leaves the whole state unchanged;
- a scenario draws exactly the jitter values it fixes;
- each input sends at most one beat (rule 1), with the next seq, the machine's
  increment (rule 4) and a deadline after now; after each input but abandon,
  next_deadline is later than now, or null (rule 3);
- names are unique, every coverage tag is known, and every tag is covered.

The output is deterministic: keys sorted, vectors in the scenarios' order, one
line per step.
"""

from __future__ import annotations

import json
import math
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sansbeat import (
    HeartbeatMachine,
    UsageError,
)
from sansbeat.adapters.conformance import (
    EXACT_NUMBERS,
    FLOAT_TOLERANCE,
    FORMAT,
    STATS,
    action_to_json,
    first_difference,
)
from tests.conformance.scenarios import COVERAGE, SCENARIOS, Refused, Scenario, Value

__all__ = ["VECTORS_PATH", "ScenarioError", "build", "main", "record", "render"]

Json = Any
JsonObject = dict[str, Any]

#: Where the vectors are written.
VECTORS_PATH = (
    Path(__file__).resolve().parents[2] / "docs" / "conformance" / "vectors.json"
)
REGENERATE = ".venv/bin/python -m tests.conformance.make_vectors"

_SPECIAL_FLOATS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_STATE_KEYS = frozenset(
    {
        "current_status",
        "in_flight",
        "interval",
        "jitter_drawn",
        "lapsed",
        "last_heartbeat_time",
        "lease_deadline",
        "next_deadline",
        "next_report_increment",
        "report_by_buffer",
        "stats",
        "stopped",
    }
)
_QUERIES = frozenset({"is_heartbeat_due", "time_since_last_heartbeat"})


class ScenarioError(Exception):
    """A scenario is wrong, or the machine disagrees with what it states."""


class _Jitter(random.Random):
    def __init__(self, values: Sequence[float]) -> None:
        super().__init__(0)
        self.values = list(values)
        self.drawn = 0

    def random(self) -> float:
        if self.drawn >= len(self.values):
            raise ScenarioError(f"the machine drew more than {len(self.values)} jitter")
        value = self.values[self.drawn]
        self.drawn += 1
        return value


def _decode(value: Json) -> Json:
    if isinstance(value, dict) and value.keys() == {"float"}:
        return _SPECIAL_FLOATS[value["float"]]
    return value


def _state(machine: HeartbeatMachine, jitter: _Jitter) -> JsonObject:
    stats = machine.stats
    return {
        "current_status": machine.current_status,
        "in_flight": machine.in_flight,
        "interval": machine.interval,
        "jitter_drawn": jitter.drawn,
        "lapsed": machine.lapsed,
        "last_heartbeat_time": machine.last_heartbeat_time,
        "lease_deadline": machine.lease_deadline,
        "next_deadline": machine.next_deadline,
        "next_report_increment": machine.next_report_increment,
        "report_by_buffer": machine.report_by_buffer,
        "stats": {name: getattr(stats, name) for name in STATS},
        "stopped": machine.stopped,
    }


def _apply(machine: HeartbeatMachine, message: JsonObject) -> JsonObject:
    """The reply to one input message, as the peer protocol writes it."""
    args = {key: _decode(value) for key, value in message.items()}
    op = args.pop("op")
    try:
        if op in _QUERIES:
            query = getattr(machine, op)
            return {"value": query(args["now"])}
        actions = getattr(machine, op)(**args)
    except UsageError as error:
        return {"error": "UsageError", "field": error.field}
    return {"actions": [action_to_json(action) for action in actions]}


def _stated_reply(expect: list[JsonObject] | Refused | Value) -> JsonObject:
    if isinstance(expect, Refused):
        return {"error": "UsageError", "field": expect.field}
    if isinstance(expect, Value):
        return {"value": expect.value}
    return {"actions": expect}


def _check_state(stated: JsonObject, state: JsonObject) -> str | None:
    """Where `state` differs from the pieces of it `stated` gives, or None."""
    unknown = stated.keys() - _STATE_KEYS
    if unknown:
        return f"unknown state keys {sorted(unknown)}"
    picked = {key: state[key] for key in stated}
    if "stats" in stated:
        unknown = stated["stats"].keys() - set(STATS)
        if unknown:
            return f"unknown stats {sorted(unknown)}"
        picked["stats"] = {key: state["stats"][key] for key in stated["stats"]}
    return first_difference(stated, picked, "state")


def _check_invariants(
    message: JsonObject, reply: JsonObject, state: JsonObject, last_seq: int
) -> tuple[str | None, int]:
    """Generic rules every acting input keeps; returns (problem, last seq sent)."""
    now = float(_decode(message["now"]))
    sends = [a for a in reply["actions"] if a["type"] == "SendHeartbeat"]
    if len(sends) > 1:
        return "more than one beat in one input (rule 1)", last_seq
    for action in sends:
        if action["seq"] != last_seq + 1:
            return f"seq {action['seq']} does not follow {last_seq}", last_seq
        if action["next_report_increment"] != state["next_report_increment"]:
            return "a beat without the machine's increment (rule 4)", last_seq
        if not action["deadline"] > now:
            return "a request deadline not after now (rule 5)", last_seq
        last_seq = action["seq"]
    deadline = state["next_deadline"]
    if message["op"] != "abandon" and deadline is not None and not deadline > now:
        return f"next_deadline {deadline} is not after now {now} (rule 3)", last_seq
    return None, last_seq


def record(scenario: Scenario) -> JsonObject:
    """The vector for `scenario`, after checking everything it states.

    Raises:
        ScenarioError: the machine disagrees with the scenario, or the scenario
            breaks a rule of its own (see the module's list of checks).
    """

    def fail(where: str, problem: str) -> ScenarioError:
        return ScenarioError(f"scenario {scenario.name!r}, {where}: {problem}")

    unknown = set(scenario.covers) - COVERAGE.keys()
    if unknown:
        raise fail("covers", f"unknown tags {sorted(unknown)}")
    if not all(0.0 <= u < 1.0 for u in scenario.jitter):
        raise fail("jitter", "every value must be in [0, 1)")
    jitter = _Jitter(scenario.jitter)
    vector: JsonObject = {
        "name": scenario.name,
        "summary": scenario.summary,
        "covers": list(scenario.covers),
        "config": scenario.config,
        "jitter": list(scenario.jitter),
    }
    settings = {key: _decode(value) for key, value in scenario.config.items()}
    try:
        machine = HeartbeatMachine(**settings, rng=jitter)
    except UsageError as error:
        if scenario.refused != error.field:
            raise fail("construction", f"refused {error.field!r}: {error}") from None
        if scenario.steps or scenario.state:
            raise fail("construction", "a refused construction has no steps") from None
        vector["expect"] = {"error": "UsageError", "field": error.field}
        vector["steps"] = []
        return vector
    if scenario.refused is not None:
        raise fail("construction", f"accepted, but {scenario.refused!r} was stated")
    state = _state(machine, jitter)
    problem = _check_state(scenario.state, state)
    if problem is not None:
        raise fail("construction", problem)
    vector["expect"] = {"ok": True}
    vector["expect_state"] = state
    steps: list[JsonObject] = []
    last_seq = 0
    for index, step in enumerate(scenario.steps):
        where = f"steps[{index}] {json.dumps(step.input)}"
        if not step.note:
            raise fail(where, "every step says why")
        before = state
        reply = _apply(machine, step.input)
        state = _state(machine, jitter)
        problem = first_difference(_stated_reply(step.expect), reply)
        if problem is None:
            problem = _check_state(step.state, state)
        if problem is None and "error" in reply and state != before:
            problem = "a refused input changed the state"
        if problem is None and "actions" in reply:
            problem, last_seq = _check_invariants(step.input, reply, state, last_seq)
        if problem is not None:
            raise fail(where, problem)
        steps.append(
            {
                "input": step.input,
                "note": step.note,
                "expect": reply,
                "expect_state": state,
            }
        )
    if jitter.drawn != len(scenario.jitter):
        raise fail(
            "end", f"drew {jitter.drawn} of {len(scenario.jitter)} jitter values"
        )
    vector["steps"] = steps
    return vector


def build(scenarios: Sequence[Scenario] = SCENARIOS) -> JsonObject:
    """The vectors document for `scenarios`, every one checked.

    Raises:
        ScenarioError: a scenario fails its checks, two share a name, or a
            coverage tag is covered by none.
    """
    names = [scenario.name for scenario in scenarios]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ScenarioError(f"duplicate scenario names: {duplicates}")
    vectors = [record(scenario) for scenario in scenarios]
    coverage = {
        tag: {
            "means": means,
            "vectors": [s.name for s in scenarios if tag in s.covers],
        }
        for tag, means in COVERAGE.items()
    }
    uncovered = sorted(tag for tag, entry in coverage.items() if not entry["vectors"])
    if uncovered and scenarios is SCENARIOS:
        raise ScenarioError(f"no scenario covers {uncovered}")
    return {
        "format": FORMAT,
        "about": "Conformance vectors for the sansbeat heartbeat machine. The "
        "protocol: docs/protocol.md; the peer protocol and the runner: "
        "docs/conformance/README.md.",
        "generated_by": f"tests/conformance/make_vectors.py; regenerate: {REGENERATE}",
        "comparison": {
            "float_tolerance": FLOAT_TOLERANCE,
            "exact_numbers": sorted(EXACT_NUMBERS),
        },
        "coverage": coverage,
        "vectors": vectors,
    }


# The objects and arrays laid out over several lines, by path (keys, "[]" for an
# item); everything else is compact, one step per line.
_EXPANDED = {
    (),
    ("coverage",),
    ("vectors",),
    ("vectors", "[]"),
    ("vectors", "[]", "steps"),
}
# Objects whose keys read best in this order; any others follow, sorted, and
# every other object has its keys sorted.
_STEP = ("vectors", "[]", "steps", "[]")
_KEY_ORDER = {
    (): ("format", "about", "generated_by", "comparison", "coverage", "vectors"),
    ("vectors", "[]"): (
        "name",
        "summary",
        "covers",
        "config",
        "jitter",
        "expect",
        "expect_state",
        "steps",
    ),
    _STEP: ("input", "note", "expect", "expect_state"),
    (*_STEP, "input"): ("op",),
    (*_STEP, "expect", "actions", "[]"): ("type",),
}


def _keys(value: JsonObject, path: tuple[str, ...]) -> list[str]:
    order = _KEY_ORDER.get(path, ())
    return [key for key in order if key in value] + sorted(value.keys() - set(order))


def _render(value: Json, path: tuple[str, ...], depth: int) -> str:
    expanded = path in _EXPANDED and bool(value)
    if isinstance(value, dict):
        items = [
            f"{json.dumps(key)}: {_render(value[key], (*path, key), depth + 1)}"
            for key in _keys(value, path)
        ]
        opening, closing = "{", "}"
    elif isinstance(value, list):
        items = [_render(item, (*path, "[]"), depth + 1) for item in value]
        opening, closing = "[", "]"
    else:
        return json.dumps(value, allow_nan=False)
    if not expanded:
        return opening + ", ".join(items) + closing
    pad = " " * (depth + 1)
    inner = ",\n".join(pad + item for item in items)
    return f"{opening}\n{inner}\n{' ' * depth}{closing}"


def render(document: JsonObject) -> str:
    """The text of the vectors file: deterministic, one line per step.

    Inside actions, states and configurations keys are sorted; the document, each
    vector and each step list theirs in reading order (`_KEY_ORDER`).
    """
    return _render(document, (), 0) + "\n"


def main() -> int:
    """Write the vectors file; returns the exit status."""
    try:
        document = build()
    except ScenarioError as error:
        print(f"make_vectors: {error}", file=sys.stderr)
        return 1
    VECTORS_PATH.parent.mkdir(parents=True, exist_ok=True)
    VECTORS_PATH.write_text(render(document), encoding="utf-8", newline="\n")
    print(f"wrote {len(document['vectors'])} vectors to {VECTORS_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
