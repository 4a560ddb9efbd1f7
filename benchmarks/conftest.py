"""Benchmarks report ratios against a baseline measured in the same run.

Absolute times drift on shared machines; a ratio to a baseline taken seconds apart
in the same process drifts much less. A benchmark names its baseline and target in
`benchmark.extra_info` ("baseline", "target_ratio"), and its operations per timed
round in "calls_per_round"; the summary at the end prints per-operation medians and
their ratios to the baseline.

A benchmark that measures its own figure puts it in "cpu_per_call" (seconds of
process CPU per operation, e.g. the median over rounds of `time.process_time()`);
the summary then uses that figure (named by "figure" when it is not CPU, e.g.
"p99 lateness"), prints pytest-benchmark's wall-clock median per operation beside
it, and compares it only to a baseline measured the same way. If it also
measured its baseline itself, interleaved with its own rounds, it puts that
figure in "baseline_cpu_per_call", and the ratio uses it: two measurements taken
round by round see the same machine, where two benchmarks run one after the other
may not.
"""

from __future__ import annotations

from typing import Any

import pytest


def _wall_per_call(bench: Any) -> float:
    calls: int = bench.extra_info.get("calls_per_round", 1)
    return float(bench.stats.median) / calls


def _per_call(bench: Any) -> tuple[float, bool]:
    """The figure the ratios use, and whether it is a CPU figure."""
    cpu = bench.extra_info.get("cpu_per_call")
    if cpu is not None:
        return float(cpu), True
    return _wall_per_call(bench), False


def _format(seconds: float) -> str:
    if seconds >= 10e-6:
        return f"{seconds * 1e6:.1f} us"
    return f"{seconds * 1e9:.0f} ns"


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    session = getattr(config, "_benchmarksession", None)
    if session is None or session.disabled or not session.benchmarks:
        return
    figures = {bench.name: _per_call(bench) for bench in session.benchmarks}
    terminalreporter.section("sansbeat ratios (median per operation / baseline)")
    for bench in session.benchmarks:
        figure, is_cpu = figures[bench.name]
        line = f"{bench.name}: {_format(figure)}"
        if is_cpu:
            figure_name = bench.extra_info.get("figure", "CPU")
            line += f" {figure_name} (wall {_format(_wall_per_call(bench))})"
        baseline = bench.extra_info.get("baseline")
        paired = bench.extra_info.get("baseline_cpu_per_call")
        ratio: float | None = None
        if baseline is None:
            pass
        elif is_cpu and paired is not None:
            ratio = figure / float(paired)
            line += f" = {ratio:.2f} x {baseline} (interleaved: {_format(paired)})"
        elif baseline not in figures:
            line += f" (baseline {baseline} not measured)"
        elif figures[baseline][1] != is_cpu:
            line += f" (baseline {baseline} is measured another way: no ratio)"
        else:
            ratio = figure / figures[baseline][0]
            line += f" = {ratio:.2f} x {baseline}"
        target = bench.extra_info.get("target_ratio")
        if ratio is not None and target is not None:
            verdict = "ok" if ratio <= target else "OVER"
            line += f" (target <= {target}: {verdict})"
        terminalreporter.write_line(line)
