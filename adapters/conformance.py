"""The conformance kit: check a HeartbeatMachine, in any language, against the vectors.

Strategy: a port proves that it follows docs/protocol.md by passing the vectors in
docs/conformance/vectors.json. It does so through a *peer*: a small program that
reads one JSON object per line on stdin, applies it to its machine and writes one
JSON object per line on stdout (docs/conformance/README.md defines every message).
This module is both ends of that pipe:

- the runner, `python -m sansbeat.adapters.conformance --vectors FILE -- COMMAND...`,
  starts COMMAND, plays every vector to it, compares each reply with what the
  vector expects, and prints a summary and the first divergence (exit status 0
  when every vector passed, 1 otherwise);
- the reference peer, `python -m sansbeat.adapters.conformance --peer`, which
  speaks the protocol over sansbeat's own `HeartbeatMachine`. The test suite
  checks it through the runner, so the path a port takes is the path proven.

It lives in the adapters, not the core, because it starts processes and threads.

Rules of comparison (stated for ports in docs/protocol.md, "Conformance"):

- Object keys must match exactly, arrays item by item; an error reply may add a
  "message" for people, which is never compared.
- Strings, booleans, null and integers (seq, counters) compare exactly, and so do
  the three numbers that are the configuration or one product of it:
  `interval`, `report_by_buffer` and `next_report_increment`.
- Every other number (times and durations the rules compute) matches when it is
  within `FLOAT_TOLERANCE` (absolute) of the expected value. A JSON number's
  spelling never matters: 45 and 45.0 are the same number.
- After a divergence the runner skips the rest of that vector and goes on with
  the next, which starts with a fresh "new". A peer that exits, stalls for
  `--timeout` seconds or writes a line that is not a JSON object ends the run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import queue
import random
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sansbeat import (
    Action,
    HeartbeatMachine,
    HeartbeatStats,
    LeaseLapsed,
    LeaseRestored,
    SendHeartbeat,
    StatusChanged,
    UsageError,
)

__all__ = [
    "FLOAT_TOLERANCE",
    "FORMAT",
    "STATS",
    "Divergence",
    "InProcessPeer",
    "JitterExhausted",
    "Peer",
    "PeerFailed",
    "PythonPeer",
    "Report",
    "ScriptedJitter",
    "SubprocessPeer",
    "action_to_json",
    "first_difference",
    "load_vectors",
    "main",
    "run_vector",
    "run_vectors",
    "serve",
]

#: The vectors file format this runner reads (the "format" key of the file).
FORMAT = "sansbeat-conformance/1"
#: Largest absolute difference (seconds) at which two computed times still match.
FLOAT_TOLERANCE = 1e-9
#: Numbers that are configuration, or one product of it: compared exactly.
EXACT_NUMBERS = frozenset({"interval", "report_by_buffer", "next_report_increment"})
#: Seconds the runner waits for one reply by default.
DEFAULT_TIMEOUT = 10.0
# Failing vectors listed after the first divergence, at most.
_OTHERS_SHOWN = 10

#: A decoded JSON value.
Json = Any
#: A decoded JSON object.
JsonObject = dict[str, Any]

# Non-finite numbers, which JSON cannot spell, are written as these objects.
_SPECIAL_FLOATS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
#: The counters, in HeartbeatStats' order.
STATS = tuple(field.name for field in dataclasses.fields(HeartbeatStats))


# ------------------------------------------------------------ the Python peer


class JitterExhausted(Exception):
    """The machine drew more jitter than the vector gives: a divergence."""


class ScriptedJitter(random.Random):
    """A `random.Random` whose `random()` returns the given values, in order.

    Args:
        values: each a float in [0, 1), as a vector's "jitter" lists them.

    Raises:
        JitterExhausted: from `random()`, once every value was drawn.
    """

    def __new__(cls, values: Sequence[float]) -> ScriptedJitter:
        # Before 3.11, random.Random's own __new__ seeds from its arguments,
        # and a list cannot be a seed: take them here instead.
        return super().__new__(cls, 0)  # type: ignore[call-arg]  # C type, no stub

    def __init__(self, values: Sequence[float]) -> None:
        super().__init__(0)
        self._values = list(values)
        #: How many values were drawn so far (the "jitter_drawn" of a state).
        self.drawn = 0

    def random(self) -> float:
        """The next scripted value."""
        if self.drawn >= len(self._values):
            raise JitterExhausted(
                f"the machine drew jitter value {self.drawn + 1}, but the vector "
                f"gives only {len(self._values)}"
            )
        value = self._values[self.drawn]
        self.drawn += 1
        return value


class _ProtocolViolation(Exception):
    """A message that breaks the peer protocol (not the machine's rules)."""


def action_to_json(action: Action) -> JsonObject:
    """One action in the peer protocol's JSON shape."""
    if isinstance(action, SendHeartbeat):
        return {
            "type": "SendHeartbeat",
            "seq": action.seq,
            "status": action.status,
            "next_report_increment": action.next_report_increment,
            "deadline": action.deadline,
        }
    if isinstance(action, StatusChanged):
        return {"type": "StatusChanged", "old": action.old, "new": action.new}
    if isinstance(action, LeaseLapsed):
        return {"type": "LeaseLapsed", "deadline": action.deadline}
    if isinstance(action, LeaseRestored):
        return {
            "type": "LeaseRestored",
            "lapsed_at": action.lapsed_at,
            "deadline": action.deadline,
        }
    raise TypeError(f"not an action: {action!r}")


def _decode(value: Json) -> Json:
    """A message value, with {"float": "nan" | "inf" | "-inf"} made a float."""
    if isinstance(value, dict) and value.keys() == {"float"}:
        special = value["float"]
        if special in _SPECIAL_FLOATS:
            return _SPECIAL_FLOATS[special]
    return value


# The keys each message must carry, and the optional ones.
_MESSAGE_KEYS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "new": (frozenset({"config", "jitter"}), frozenset()),
    "tick": (frozenset({"now"}), frozenset()),
    "handle_response": (frozenset({"seq", "status", "now"}), frozenset()),
    "handle_failure": (frozenset({"seq", "now"}), frozenset({"retry_after"})),
    "set_status": (frozenset({"status", "now"}), frozenset()),
    "beat_now": (frozenset({"now"}), frozenset()),
    "reset_timer": (frozenset({"now"}), frozenset()),
    "abandon": (frozenset({"seq", "now"}), frozenset()),
    "stop": (frozenset({"now"}), frozenset()),
    "query": (frozenset(), frozenset()),
    "is_heartbeat_due": (frozenset({"now"}), frozenset()),
    "time_since_last_heartbeat": (frozenset({"now"}), frozenset()),
}
_CONFIG_KEYS = frozenset(
    {
        "interval",
        "report_by_buffer",
        "initial_status",
        "now",
        "request_timeout",
        "backoff_initial",
        "beat_at_start",
        "lease_margin",
    }
)


class PythonPeer:
    """The reference peer: the protocol's messages applied to a HeartbeatMachine.

    `handle(message)` takes one decoded message and returns its decoded reply;
    `--peer` mode wraps it in a stdin/stdout loop. Arguments are passed to the
    machine as they arrive, so the machine's own checks decide every UsageError.
    """

    def __init__(self) -> None:
        self._machine: HeartbeatMachine | None = None
        self._jitter = ScriptedJitter(())

    def handle(self, message: Json) -> JsonObject:
        """The reply to `message` (a decoded JSON object)."""
        try:
            return self._dispatch(message)
        except UsageError as error:
            return {"error": "UsageError", "field": error.field, "message": str(error)}
        except JitterExhausted as error:
            return {"error": "JitterExhausted", "message": str(error)}
        except _ProtocolViolation as error:
            return {"error": "ProtocolError", "message": str(error)}
        except Exception as error:  # a machine bug: report it, keep serving
            return {"error": type(error).__name__, "message": str(error)}

    def _dispatch(self, message: Json) -> JsonObject:
        if not isinstance(message, dict) or "op" not in message:
            raise _ProtocolViolation('a message is a JSON object with an "op"')
        op = message["op"]
        if op not in _MESSAGE_KEYS:
            raise _ProtocolViolation(f"unknown op {op!r}")
        required, optional = _MESSAGE_KEYS[op]
        keys = message.keys() - {"op"}
        if not required <= keys <= required | optional:
            raise _ProtocolViolation(
                f"{op} takes {sorted(required)}, optionally {sorted(optional)}; "
                f"got {sorted(keys)}"
            )
        args = {key: _decode(value) for key, value in message.items()}
        if op == "new":
            return self._new(args["config"], args["jitter"])
        machine = self._machine
        if machine is None:
            raise _ProtocolViolation(f'{op} before a successful "new"')
        now: Json = args.get("now")
        actions: tuple[Action, ...]
        if op == "tick":
            actions = machine.tick(now)
        elif op == "handle_response":
            actions = machine.handle_response(args["seq"], args["status"], now)
        elif op == "handle_failure":
            actions = machine.handle_failure(args["seq"], now, args.get("retry_after"))
        elif op == "set_status":
            actions = machine.set_status(args["status"], now)
        elif op == "beat_now":
            actions = machine.beat_now(now)
        elif op == "reset_timer":
            actions = machine.reset_timer(now)
        elif op == "abandon":
            actions = machine.abandon(args["seq"], now)
        elif op == "stop":
            actions = machine.stop(now)
        elif op == "query":
            return {"state": self._state(machine)}
        elif op == "is_heartbeat_due":
            return {"value": machine.is_heartbeat_due(now)}
        else:
            return {"value": machine.time_since_last_heartbeat(now)}
        return {"actions": [action_to_json(action) for action in actions]}

    def _new(self, config: Json, jitter: Json) -> JsonObject:
        self._machine = None
        if not isinstance(config, dict) or config.keys() != _CONFIG_KEYS:
            raise _ProtocolViolation(f"config must have exactly {sorted(_CONFIG_KEYS)}")
        if not isinstance(jitter, list) or not all(
            _is_number(u) and 0 <= u < 1 for u in jitter
        ):
            raise _ProtocolViolation("jitter must be a list of numbers in [0, 1)")
        self._jitter = ScriptedJitter([float(u) for u in jitter])
        settings = {key: _decode(value) for key, value in config.items()}
        self._machine = HeartbeatMachine(**settings, rng=self._jitter)
        return {"ok": True}

    def _state(self, machine: HeartbeatMachine) -> JsonObject:
        stats = machine.stats
        return {
            "current_status": machine.current_status,
            "in_flight": machine.in_flight,
            "interval": machine.interval,
            "jitter_drawn": self._jitter.drawn,
            "lapsed": machine.lapsed,
            "last_heartbeat_time": machine.last_heartbeat_time,
            "lease_deadline": machine.lease_deadline,
            "next_deadline": machine.next_deadline,
            "next_report_increment": machine.next_report_increment,
            "report_by_buffer": machine.report_by_buffer,
            "stats": {name: getattr(stats, name) for name in STATS},
            "stopped": machine.stopped,
        }


def serve(lines: Iterable[str], write: Callable[[str], None]) -> None:
    """Answer each line of `lines` with one line through `write` (the peer loop)."""
    peer = PythonPeer()
    for line in lines:
        try:
            message = json.loads(line)
        except ValueError as error:
            reply: JsonObject = {"error": "ProtocolError", "message": str(error)}
        else:
            reply = peer.handle(message)
        write(json.dumps(reply) + "\n")


# ------------------------------------------------------------------- peers


class PeerFailed(Exception):
    """The peer broke the pipe: it exited, stalled, or wrote something not JSON."""


class Peer(Protocol):
    """One end of the peer protocol: a message in, its reply out."""

    def exchange(self, message: JsonObject) -> JsonObject:
        """Send `message`; return the peer's reply.

        Raises:
            PeerFailed: no valid reply can come any more.
        """


class InProcessPeer:
    """`PythonPeer` behind the `Peer` interface, through real JSON text."""

    def __init__(self) -> None:
        self._peer = PythonPeer()

    def exchange(self, message: JsonObject) -> JsonObject:
        """Send `message` through json.dumps/json.loads both ways."""
        reply = self._peer.handle(json.loads(json.dumps(message)))
        decoded: JsonObject = json.loads(json.dumps(reply))
        return decoded


class SubprocessPeer:
    """A peer run as a subprocess, spoken to over its stdin and stdout.

    The peer's stderr is left as the runner's, so a port may print diagnostics
    there. Use as a context manager, or call `close()`.

    Args:
        command: the program and its arguments.
        timeout: seconds to wait for each reply.

    Raises:
        PeerFailed: the command cannot be started.
    """

    def __init__(self, command: Sequence[str], timeout: float = DEFAULT_TIMEOUT):
        self._command = list(command)
        self._timeout = timeout
        try:
            self._process = subprocess.Popen(
                self._command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                bufsize=1,
            )
        except OSError as error:
            raise PeerFailed(
                f"cannot start the peer {self._command}: {error}"
            ) from None
        # A reader thread lets a stalled peer be timed out on every platform.
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None
        for line in stdout:
            self._lines.put(line)
        self._lines.put(None)

    def exchange(self, message: JsonObject) -> JsonObject:
        """Write `message` as one line; read and decode one line back."""
        stdin = self._process.stdin
        assert stdin is not None
        try:
            stdin.write(json.dumps(message) + "\n")
            stdin.flush()
        except OSError:
            raise PeerFailed(self._exited("before reading this input")) from None
        try:
            line = self._lines.get(timeout=self._timeout)
        except queue.Empty:
            raise PeerFailed(f"no reply within {self._timeout} s") from None
        if line is None:
            raise PeerFailed(self._exited("before replying"))
        try:
            reply = json.loads(line)
        except ValueError:
            raise PeerFailed(f"the reply is not JSON: {line.rstrip()!r}") from None
        if not isinstance(reply, dict):
            raise PeerFailed(f"the reply is not a JSON object: {line.rstrip()!r}")
        return reply

    def _exited(self, when: str) -> str:
        try:
            status = self._process.wait(timeout=self._timeout)
        except subprocess.TimeoutExpired:
            return f"the peer closed its stdout {when}"
        return f"the peer exited with status {status} {when}"

    def close(self) -> None:
        """Close the peer's stdin (end of input) and wait for it to exit."""
        stdin = self._process.stdin
        if stdin is not None:
            with contextlib.suppress(OSError):  # it exited: nothing to tell it
                stdin.close()
        try:
            self._process.wait(timeout=self._timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        stdout = self._process.stdout
        if stdout is not None:
            self._reader.join(timeout=self._timeout)
            stdout.close()

    def __enter__(self) -> SubprocessPeer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# -------------------------------------------------------------- comparison


def _dumps(value: Json) -> str:
    return json.dumps(value)


def _is_number(value: Json) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def first_difference(
    expected: Json, got: Json, path: str = "", *, exact: bool = False
) -> str | None:
    """Where `got` first differs from `expected`, in words; None if they match.

    `path` names the value (such as "actions[0].deadline"). `exact` asks for
    exact equality of numbers; keys in `EXACT_NUMBERS` ask for it themselves.
    Keys are compared "type" and "error" first, then in sorted order, so the
    report names the most telling difference.
    """
    where = path or "the reply"
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return f"{where}: expected an object, got {_dumps(got)}"
        ignored = {"message"} if "error" in expected else set()
        missing = sorted(expected.keys() - got.keys())
        if missing:
            return f"{where}: missing key {missing[0]!r}"
        extra = sorted(got.keys() - expected.keys() - ignored)
        if extra:
            return f"{where}: unexpected key {extra[0]!r}"
        for key in sorted(expected, key=lambda k: (k not in ("type", "error"), k)):
            difference = first_difference(
                expected[key],
                got[key],
                f"{path}.{key}" if path else key,
                exact=key in EXACT_NUMBERS,
            )
            if difference is not None:
                return difference
        return None
    if isinstance(expected, list):
        if not isinstance(got, list):
            return f"{where}: expected an array, got {_dumps(got)}"
        for index, (want, have) in enumerate(zip(expected, got, strict=False)):
            difference = first_difference(want, have, f"{path}[{index}]", exact=exact)
            if difference is not None:
                return difference
        if len(expected) != len(got):
            return f"{where}: expected {len(expected)} items, got {len(got)}"
        return None
    if _is_number(expected):
        if not _is_number(got):
            return f"{where}: expected {_dumps(expected)}, got {_dumps(got)}"
        if isinstance(expected, int) or exact:
            matches = got == expected
        else:
            matches = abs(got - expected) <= FLOAT_TOLERANCE
        if not matches:
            return f"{where}: expected {_dumps(expected)}, got {_dumps(got)}"
        return None
    # A string, a boolean or null: the same JSON value, of the same type.
    if type(got) is not type(expected) or got != expected:
        return f"{where}: expected {_dumps(expected)}, got {_dumps(got)}"
    return None


def _reply_difference(expected: JsonObject, got: JsonObject) -> str | None:
    """Like `first_difference`, but says so plainly when one side is an error."""
    if "error" in got and "error" not in expected:
        field_name = f" (field {got['field']!r})" if "field" in got else ""
        message = f": {got['message']}" if "message" in got else ""
        return f"the peer answered the error {got['error']}{field_name}{message}"
    if "error" in expected and "error" not in got:
        return (
            f"expected the error {expected['error']} (field {expected['field']!r}), "
            f"got {_dumps(got)}"
        )
    return first_difference(expected, got)


# -------------------------------------------------------------- the runner


@dataclass(frozen=True, slots=True, kw_only=True)
class Divergence:
    """The first place where a peer's reply differed from a vector's expectation.

    Attributes:
        vector: the vector's name.
        step: index into the vector's "steps", or None for its construction.
        sent: the message whose reply (or the state after it) differed.
        what: "reply" for the reply to `sent`, "state" for the query after it.
        expected: the expected reply or state.
        got: the peer's reply or state, or None if the peer failed.
        difference: where they differ, in words (or how the peer failed).
        note: the vector's note on the step.
        history: the messages sent in this vector before `sent`.
    """

    vector: str
    step: int | None
    sent: JsonObject
    what: str
    expected: Json
    got: Json
    difference: str
    note: str
    history: tuple[JsonObject, ...]

    @property
    def place(self) -> str:
        """The step, as the vectors file indexes it."""
        return "construction" if self.step is None else f"steps[{self.step}]"

    def describe(self) -> str:
        """A report of this divergence, for people, over several lines."""
        lines = [
            f'vector "{self.vector}", {self.place} ({self.what})',
            f"  input:      {_dumps(self.sent)}",
        ]
        if self.note:
            lines.append(f"  note:       {self.note}")
        lines.append(f"  difference: {self.difference}")
        lines.append(f"  expected:   {_dumps(self.expected)}")
        lines.append(
            f"  got:        {'(nothing)' if self.got is None else _dumps(self.got)}"
        )
        if self.history:
            lines.append("  inputs before it, in this vector:")
            lines.extend(f"    {_dumps(message)}" for message in self.history)
        return "\n".join(lines)


@dataclass(slots=True, kw_only=True)
class Report:
    """What a run of the vectors found.

    Attributes:
        total: vectors in the file.
        passed: names of the vectors that passed.
        divergences: the first divergence of each vector that failed, in order.
        peer_failure: how the peer failed, if it did (the run then stopped).
    """

    total: int
    passed: list[str] = field(default_factory=list)
    divergences: list[Divergence] = field(default_factory=list)
    peer_failure: str | None = None

    @property
    def ok(self) -> bool:
        """True when every vector passed."""
        return len(self.passed) == self.total

    def describe(self) -> str:
        """The summary, then the first divergence in full and the others briefly."""
        not_run = self.total - len(self.passed) - len(self.divergences)
        summary = (
            f"{len(self.passed)} passed, {len(self.divergences)} failed, "
            f"{not_run} not run, of {self.total} vectors"
        )
        if self.ok:
            return f"PASS: {summary}"
        lines = [f"FAIL: {summary}"]
        if self.peer_failure is not None:
            lines.append(f"The peer failed: {self.peer_failure}")
        if self.divergences:
            first, *others = self.divergences
            lines.append("First divergence: " + first.describe())
            if others:
                lines.append("Other failing vectors (first divergence of each):")
                lines.extend(
                    f"  {d.vector}, {d.place} ({d.what}): {d.difference}"
                    for d in others[:_OTHERS_SHOWN]
                )
                if len(others) > _OTHERS_SHOWN:
                    lines.append(f"  ... and {len(others) - _OTHERS_SHOWN} more")
        return "\n".join(lines)


def load_vectors(path: str | Path) -> list[JsonObject]:
    """The vectors of the file at `path`.

    Raises:
        ValueError: the file is not a vectors file of format `FORMAT`.
    """
    document = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"{path} is not a vectors file of format {FORMAT!r}")
    vectors: list[JsonObject] = document["vectors"]
    return vectors


def run_vector(vector: JsonObject, peer: Peer) -> Divergence | None:
    """Play one vector to `peer`; its first divergence, or None if it passed.

    Raises:
        PeerFailed: the peer can no longer answer (reported by `run_vectors`).
    """
    name = vector["name"]
    history: list[JsonObject] = []

    def check(
        step: int | None, sent: JsonObject, what: str, expected: Json, got: Json
    ) -> Divergence | None:
        difference = _reply_difference(expected, got)
        if difference is None:
            return None
        note = "" if step is None else vector["steps"][step].get("note", "")
        return Divergence(
            vector=name,
            step=step,
            sent=sent,
            what=what,
            expected=expected,
            got=got,
            difference=difference,
            note=note,
            history=tuple(history),
        )

    query: JsonObject = {"op": "query"}
    new: JsonObject = {
        "op": "new",
        "config": vector["config"],
        "jitter": vector["jitter"],
    }
    plays: list[tuple[int | None, JsonObject, Json, Json]] = [
        (None, new, vector["expect"], vector.get("expect_state"))
    ]
    plays.extend(
        (index, step["input"], step["expect"], step.get("expect_state"))
        for index, step in enumerate(vector["steps"])
    )
    for step, sent, expected, expected_state in plays:
        try:
            divergence = check(step, sent, "reply", expected, peer.exchange(sent))
            if divergence is None and expected_state is not None:
                reply = peer.exchange(query)
                divergence = check(
                    step, sent, "state", {"state": expected_state}, reply
                )
        except PeerFailed as failure:
            raise _FailedAt(
                Divergence(
                    vector=name,
                    step=step,
                    sent=sent,
                    what="reply",
                    expected=expected,
                    got=None,
                    difference=str(failure),
                    note="",
                    history=tuple(history),
                )
            ) from None
        if divergence is not None:
            return divergence
        history.append(sent)
    return None


class _FailedAt(Exception):
    def __init__(self, divergence: Divergence) -> None:
        super().__init__(divergence.difference)
        self.divergence = divergence


def run_vectors(vectors: Sequence[JsonObject], peer: Peer) -> Report:
    """Play every vector to `peer`, in order; stops early only if the peer fails."""
    report = Report(total=len(vectors))
    for vector in vectors:
        try:
            divergence = run_vector(vector, peer)
        except _FailedAt as failed:
            report.divergences.append(failed.divergence)
            report.peer_failure = failed.divergence.difference
            break
        if divergence is None:
            report.passed.append(vector["name"])
        else:
            report.divergences.append(divergence)
    return report


def _run(vectors_path: str, command: Sequence[str], timeout: float) -> int:
    try:
        vectors = load_vectors(vectors_path)
    except (OSError, ValueError) as error:
        print(f"cannot read the vectors: {error}", file=sys.stderr)
        return 2
    print(f"{len(vectors)} vectors from {vectors_path}, peer: {' '.join(command)}")
    try:
        with SubprocessPeer(command, timeout) as peer:
            report = run_vectors(vectors, peer)
    except PeerFailed as failure:
        print(f"FAIL: {failure}")
        return 1
    print(report.describe())
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m sansbeat.adapters.conformance",
        description="Check a heartbeat machine against the conformance vectors, "
        "driving it as a subprocess over JSON lines (docs/conformance/README.md); "
        "or, with --peer, be the peer for sansbeat's own machine.",
    )
    parser.add_argument(
        "--peer",
        action="store_true",
        help="speak the peer protocol on stdin/stdout over sansbeat's machine",
    )
    parser.add_argument("--vectors", help="the vectors file to check against")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds to wait for each reply (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "command", nargs="*", help="after --: the peer program and its arguments"
    )
    args = parser.parse_args(argv)
    if args.peer:
        if args.vectors is not None or args.command:
            parser.error("--peer takes no other arguments")
        serve(sys.stdin, _write_line)
        return 0
    if args.vectors is None or not args.command:
        parser.error("give --vectors FILE -- COMMAND... (or --peer)")
    return _run(args.vectors, args.command, args.timeout)


def _write_line(line: str) -> None:
    sys.stdout.write(line)
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
