"""The machine's hot paths against an empty method call measured in the same run.

Targets (from the core issue): a full beat cycle (a `tick` that sends plus the
`handle_response` that renews) at most 50 times an empty method call; an idle
`tick` (before `next_deadline`) at most 5 times.

Each timed round makes `_CALLS` operations in timeit's loop shape (iterate over
clock readings, make the call), so the timer's cost is spread over many
operations and the loop's small cost is in the baseline as in the measured code.
Before every round of a measured operation, one round of the empty method call
runs too: the ratio compares rounds that saw the same machine, which matters on
a shared, noisy one. Figures are process CPU per operation.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from itertools import count, islice
from typing import Any

from sansbeat import HeartbeatMachine, SendHeartbeat

_CALLS = 1000
_ROUNDS = 60
_WARMUP = 2


class _Empty:
    def method(self, now: float) -> None:
        """Does nothing: the cost of one Python method call is the unit."""


def _measure(
    benchmark: Any,
    operation: Callable[[float], object],
    target_ratio: float | None = None,
) -> None:
    """Time `operation(now)` for clock readings 1.0, 2.0, ... (seconds)."""
    # Separate clocks: the operation's readings must not skip the baseline's.
    clock: Iterator[float] = count(1.0, 1.0)
    baseline_clock: Iterator[float] = count(1.0, 1.0)
    empty = _Empty().method
    own: list[float] = []
    paired: list[float] = []

    def timed(call: Callable[[float], object], readings: Iterator[float]) -> float:
        start = time.process_time()
        for now in islice(readings, _CALLS):
            call(now)
        return time.process_time() - start

    def run() -> None:
        own.append(timed(operation, clock))

    def run_baseline() -> None:
        paired.append(timed(empty, baseline_clock))

    benchmark.pedantic(
        run,
        setup=None if target_ratio is None else run_baseline,
        rounds=_ROUNDS,
        warmup_rounds=_WARMUP,
    )
    info = benchmark.extra_info
    info["calls_per_round"] = _CALLS
    # Without warm-up rounds (--benchmark-disable runs each once) keep them all.
    info["cpu_per_call"] = statistics.median(own[_WARMUP:] or own) / _CALLS
    if target_ratio is not None:
        info["baseline"] = "test_empty_method_call"
        info["target_ratio"] = target_ratio
        info["baseline_cpu_per_call"] = (
            statistics.median(paired[_WARMUP:] or paired or [float("nan")]) / _CALLS
        )


def test_empty_method_call(benchmark: Any) -> None:
    _measure(benchmark, _Empty().method)


def test_idle_tick(benchmark: Any) -> None:
    machine = HeartbeatMachine(
        interval=1e9, report_by_buffer=1.5, initial_status="R", now=0.0
    )
    _measure(benchmark, machine.tick, 5)
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

    _measure(benchmark, beat_cycle, 50)
    assert machine.stats.renewals == machine.stats.beats_sent > 0
