"""Benchmarks report ratios against a baseline measured in the same run.

Absolute times drift on shared machines; a ratio to a baseline taken seconds apart
in the same process drifts much less. A benchmark names its baseline and target in
`benchmark.extra_info` ("baseline", "target_ratio"), and its operations per timed
round in "calls_per_round"; the summary at the end prints per-operation medians and
their ratios to the baseline.
"""

from __future__ import annotations

from typing import Any

import pytest


def _per_call(bench: Any) -> float:
    calls: int = bench.extra_info.get("calls_per_round", 1)
    return float(bench.stats.median) / calls


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    session = getattr(config, "_benchmarksession", None)
    if session is None or session.disabled or not session.benchmarks:
        return
    medians = {bench.name: _per_call(bench) for bench in session.benchmarks}
    terminalreporter.section("sansbeat ratios (median per operation / baseline)")
    for bench in session.benchmarks:
        line = f"{bench.name}: {medians[bench.name] * 1e9:.0f} ns"
        baseline = bench.extra_info.get("baseline")
        if baseline in medians:
            ratio = medians[bench.name] / medians[baseline]
            line += f" = {ratio:.1f} x {baseline}"
            target = bench.extra_info.get("target_ratio")
            if target is not None:
                verdict = "ok" if ratio <= target else "OVER"
                line += f" (target <= {target}: {verdict})"
        terminalreporter.write_line(line)
