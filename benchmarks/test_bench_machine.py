"""The machine's hot paths against an empty method call measured in the same run.

Targets (from the core issue): a full beat cycle (a `tick` that sends plus the
`handle_response` that renews) at most 50 times an empty method call; an idle
`tick` (before `next_deadline`) at most 5 times.

Each timed function makes `_CALLS` operations in the same loop shape as timeit's
(iterate over clock readings, make the calls), so the timer's cost is spread over
many operations and the loop's small cost is in the baseline as in the measured
code. Figures are per operation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import count, islice
from typing import Any

from sansbeat import HeartbeatMachine, SendHeartbeat

_CALLS = 1000
_ROUNDS = {"rounds": 60, "warmup_rounds": 2}


class _Empty:
    def method(self, now: float) -> None:
        """Does nothing: the cost of one Python method call is the unit."""


def _measure(
    benchmark: Any,
    operation: Callable[[float], object],
    baseline: str | None = None,
    target_ratio: float | None = None,
) -> None:
    """Time `operation(now)` for clock readings 1.0, 2.0, ... (seconds)."""
    clock: Iterator[float] = count(1.0, 1.0)

    def run() -> None:
        for now in islice(clock, _CALLS):
            operation(now)

    benchmark.extra_info.update(
        calls_per_round=_CALLS, baseline=baseline, target_ratio=target_ratio
    )
    benchmark.pedantic(run, **_ROUNDS)


def test_empty_method_call(benchmark: Any) -> None:
    _measure(benchmark, _Empty().method)


def test_idle_tick(benchmark: Any) -> None:
    machine = HeartbeatMachine(
        interval=1e9, report_by_buffer=1.5, initial_status="R", now=0.0
    )
    _measure(benchmark, machine.tick, "test_empty_method_call", 5)
    assert machine.stats.beats_sent == 0


def test_full_beat_cycle(benchmark: Any) -> None:
    machine = HeartbeatMachine(
        interval=1.0, report_by_buffer=1.5, initial_status="R", now=0.0
    )
    tick = machine.tick
    handle_response = machine.handle_response

    def beat_cycle(now: float) -> None:
        (send,) = tick(now)
        assert isinstance(send, SendHeartbeat)
        handle_response(send.seq, "R", now)

    _measure(benchmark, beat_cycle, "test_empty_method_call", 50)
    assert machine.stats.renewals == machine.stats.beats_sent > 0
