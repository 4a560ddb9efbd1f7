"""The conformance kit: the vectors, the reference peer and the runner.

The vectors (docs/conformance/vectors.json) are what a port of the machine must
pass. Here: sansbeat's own machine passes each of them in-process and, through
the runner, as a subprocess speaking the JSON-lines peer protocol, the path every
port takes; the runner names the first divergence of a peer that is wrong, and
the failure of one that exits or stalls; and the file on disk is what the
generator makes now, so it cannot drift from the machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from sansbeat.adapters.conformance import (
    InProcessPeer,
    PythonPeer,
    first_difference,
    load_vectors,
    main,
    run_vector,
    serve,
)
from tests.conformance.make_vectors import (
    REGENERATE,
    VECTORS_PATH,
    ScenarioError,
    build,
    render,
)
from tests.conformance.scenarios import COVERAGE, Scenario, config, send, step, tick

VECTORS = load_vectors(VECTORS_PATH)
PEER = [sys.executable, "-m", "sansbeat.adapters.conformance", "--peer"]


def _runner(*arguments: str) -> list[str]:
    """The runner's command line (for `main`) on the vectors file."""
    return ["--vectors", str(VECTORS_PATH), *arguments]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_python_machine_passes_the_vector_in_process(vector: dict[str, Any]) -> None:
    divergence = run_vector(vector, InProcessPeer())
    assert divergence is None, divergence.describe()


def test_runner_passes_the_python_peer_driven_as_a_subprocess() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sansbeat.adapters.conformance",
            "--vectors",
            str(VECTORS_PATH),
            "--",
            *PEER,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"PASS: {len(VECTORS)} passed, 0 failed" in result.stdout


def _first_step_sending_seq_2() -> tuple[str, int, int, float]:
    """(vector, step index, action index, deadline) of the first beat seq 2."""
    for vector in VECTORS:
        for index, vector_step in enumerate(vector["steps"]):
            for position, action in enumerate(vector_step["expect"].get("actions", [])):
                if action["type"] == "SendHeartbeat" and action["seq"] == 2:
                    return vector["name"], index, position, action["deadline"]
    raise AssertionError("no vector sends a second beat")


def test_runner_reports_the_first_divergence_of_a_broken_peer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken_peer.py"
    broken.write_text(
        textwrap.dedent(
            """
            # The reference peer, but beat 2's deadline is 0.5 s late.
            import json
            import sys

            from sansbeat.adapters.conformance import PythonPeer

            peer = PythonPeer()
            for line in sys.stdin:
                reply = peer.handle(json.loads(line))
                for action in reply.get("actions", []):
                    if action["type"] == "SendHeartbeat" and action["seq"] == 2:
                        action["deadline"] += 0.5
                print(json.dumps(reply), flush=True)
            """
        )
    )
    name, index, position, deadline = _first_step_sending_seq_2()
    vector = next(v for v in VECTORS if v["name"] == name)

    assert main(_runner("--", sys.executable, str(broken))) == 1

    output = capsys.readouterr().out
    assert output.splitlines()[1].startswith("FAIL: ")
    assert f'First divergence: vector "{name}", steps[{index}] (reply)' in output
    assert f"input:      {json.dumps(vector['steps'][index]['input'])}" in output
    assert (
        f"difference: actions[{position}].deadline: expected {json.dumps(deadline)}, "
        f"got {json.dumps(deadline + 0.5)}"
    ) in output
    # Vectors in which no second beat is sent still pass.
    assert " 0 not run" in output


def test_runner_reports_a_peer_that_exits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exits = tmp_path / "exits.py"
    exits.write_text(
        "import sys\n"
        "sys.stdin.readline()\n"
        "print('{\"ok\": true}', flush=True)\n"
        "sys.exit(3)\n"
    )

    assert main(_runner("--", sys.executable, str(exits))) == 1

    output = capsys.readouterr().out
    assert "The peer failed: the peer exited with status 3" in output
    assert f"of {len(VECTORS)} vectors" in output


def test_runner_reports_a_peer_that_stalls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stalls = tmp_path / "stalls.py"
    stalls.write_text("import sys, time\nsys.stdin.readline()\ntime.sleep(30)\n")

    assert main(_runner("--timeout", "0.3", "--", sys.executable, str(stalls))) == 1

    assert "The peer failed: no reply within 0.3 s" in capsys.readouterr().out


def test_runner_reports_a_peer_that_cannot_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_runner("--", str(tmp_path / "no-such-peer"))) == 1
    assert "cannot start the peer" in capsys.readouterr().out


def test_vectors_file_is_what_the_generator_makes_now() -> None:
    assert VECTORS_PATH.read_text(encoding="utf-8") == render(build()), (
        f"docs/conformance/vectors.json is stale: run {REGENERATE}"
    )


def test_every_timing_rule_is_a_coverage_tag() -> None:
    assert {f"rule {n}" for n in range(1, 15)} <= COVERAGE.keys()


def test_generator_refuses_a_wrong_hand_stated_expectation() -> None:
    wrong = Scenario(
        name="wrong",
        covers=("rule 5",),
        summary="states a deadline the rules do not give",
        config=config(),
        steps=(step(tick(30.0), [send(1, 40.0)], "not 37.5"),),
    )
    with pytest.raises(ScenarioError, match=r"actions\[0\]\.deadline"):
        build([wrong])


def test_generator_refuses_jitter_the_machine_does_not_draw() -> None:
    unused = Scenario(
        name="unused",
        covers=("rule 6",),
        summary="fixes a jitter value that no failure draws",
        config=config(),
        jitter=(0.5,),
        steps=(step(tick(30.0), [send(1, 37.5)], "no failure"),),
    )
    with pytest.raises(ScenarioError, match="drew 0 of 1 jitter"):
        build([unused])


@pytest.mark.parametrize(
    ("expected", "got", "matches"),
    [
        ({"deadline": 37.5}, {"deadline": 37.5 + 1e-10}, True),
        ({"deadline": 37.5}, {"deadline": 37.5 + 1e-8}, False),
        ({"deadline": 37.5}, {"deadline": 37}, False),
        ({"deadline": 45.0}, {"deadline": 45}, True),
        ({"interval": 0.30000000000000004}, {"interval": 0.3}, False),
        ({"seq": 1}, {"seq": 1.0}, True),
        ({"seq": 1}, {"seq": True}, False),
        ({"lapsed": False}, {"lapsed": 0}, False),
        ({"in_flight": None}, {"in_flight": 0}, False),
        ({"type": "LeaseLapsed"}, {"type": "LeaseLapsed", "extra": 1}, False),
        ({"error": "E"}, {"error": "E", "message": "for people"}, True),
        ({"actions": [{}]}, {"actions": [{}, {}]}, False),
    ],
)  # fmt: skip
def test_comparison_rules(expected: Any, got: Any, matches: bool) -> None:
    assert (first_difference(expected, got) is None) is matches


def test_peer_answers_protocol_errors_without_dying() -> None:
    peer = PythonPeer()
    assert peer.handle({"op": "tick", "now": 1.0})["error"] == "ProtocolError"
    assert peer.handle({"op": "dance"})["error"] == "ProtocolError"
    assert peer.handle(["not", "an", "object"])["error"] == "ProtocolError"
    new = {"op": "new", "config": config(), "jitter": []}
    assert peer.handle(new) == {"ok": True}
    assert peer.handle({"op": "tick"})["error"] == "ProtocolError"
    assert peer.handle({"op": "tick", "now": 30.0, "extra": 1})["error"] == (
        "ProtocolError"
    )
    assert peer.handle({"op": "tick", "now": 30.0})["actions"][0]["seq"] == 1
    # The beat times out at 37.5 and draws jitter the vector did not give.
    assert peer.handle({"op": "tick", "now": 37.5})["error"] == "JitterExhausted"
    lines: list[str] = []
    serve(["not json\n"], lines.append)
    assert json.loads(lines[0])["error"] == "ProtocolError"
