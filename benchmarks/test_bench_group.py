"""The group driver at scale against two plain baselines measured in the same run.

Targets (issue 5, "many leases, one loop"), with an in-memory gateway:
- 10,000 leases at a 1 s interval in one loop: p99 lateness <= 5 ms, CPU per beat
  <= 15 us (asyncio) and <= 20 us (trio), memory <= 1 KiB per lease;
- 100,000 leases at a 10 s interval: p99 lateness <= 5 ms.

Absolute CPU times drift 2x on this shared 2-core machine, so the CPU targets are
checked as ratios to baselines run in the same test, round by round. The issue
measured, at 10,000 leases @1 s, one task per lease at 21 us (asyncio) and 72 us
(trio) per beat and one plain timer at 11 and 14 us; the targets as ratios:
- against one plain timer: <= 15/11 (asyncio), <= 20/14 (trio);
- against one task per lease: <= 15/21 (asyncio), <= 20/72 (trio).
The plain timer is the ratio asserted. One task per lease is reported, not
asserted: on trio it falls behind in some runs (full garbage collections of 0.2
to 0.3 s over its tasks' objects; p99 lateness of 100 ms and more), beats bunch,
and its CPU per beat moves with how far behind it is (40 to 95 us), so a ratio
to it says more about that run than about the group.
Lateness is a bound in milliseconds, so it is checked as one; the baselines'
lateness is reported beside it.

`benchmarks/plot_fleet.py` holds the measuring code (the drivers, lateness and
CPU accounting, spreading the leases over one interval), shared with the sweep
that draws docs/fleet-scaling.svg; its docstring says what each figure is.

Each benchmark runs `rounds` rounds, each one baseline run (pedantic's setup) then
one group run, both on fresh event loops, and reports medians over rounds: the
group's CPU per beat in "cpu_per_call", the baseline's in "baseline_cpu_per_call".
pytest-benchmark times each group run whole (adding the leases, the warm-up, the
window) and "calls_per_round" is every beat in it, so the wall figure the summary
prints is fixed by the fleet's rate: information only.

`pytest benchmarks --benchmark-disable` runs a QUICK version (1,000 leases at a
0.25 s interval, one round, no 100,000 run, no targets checked: only that the
beats are counted right); `SANSBEAT_BENCH_FULL=1 pytest
benchmarks/test_bench_group.py -s` runs the full sizes (about four minutes) and
prints the figures.
"""

from __future__ import annotations

import os
import statistics
import sys
import tracemalloc
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import anyio
import plot_fleet as fleet
import pytest

from sansbeat.adapters import HeartbeatGroup

_FULL = os.environ.get("SANSBEAT_BENCH_FULL") == "1"
_LATENESS_BOUND = 0.005  # seconds, p99

#: CPU per beat the issue allows the group (seconds), per backend.
_TARGET_CPU = {"asyncio": 15e-6, "trio": 20e-6}
#: CPU per beat the issue measured for each baseline (seconds), per backend.
_ISSUE_BASELINE_CPU = {
    ("timer", "asyncio"): 11e-6,
    ("timer", "trio"): 14e-6,
    ("tasks", "asyncio"): 21e-6,
    ("tasks", "trio"): 72e-6,
}
_BASELINE_LABELS = {"timer": "one_plain_timer", "tasks": "one_task_per_lease"}


def _quick(config: pytest.Config) -> bool:
    return not _FULL and bool(config.getoption("benchmark_disable", False))


def _check_counts(run: fleet.FleetRun) -> None:
    """Every beat in the window was counted once; and the group kept up: it
    added its leases on time and sent about the beats an on-time fleet sends.
    (Not asked of a baseline: a fixed-rate one that fell behind in a GC pause
    catches up with extra beats, as written.)"""
    assert run.samples == run.beats, fleet.describe(run)
    if run.driver == "group":
        assert not run.saturated, fleet.describe(run)
        assert abs(run.beats - run.expected_beats) <= 0.1 * run.expected_beats, (
            fleet.describe(run)
        )


@pytest.mark.parametrize("backend", fleet.BACKENDS)
@pytest.mark.parametrize("baseline", ["timer", "tasks"])
def test_group_10k_leases_1s(
    benchmark: Any, baseline: str, backend: str, pytestconfig: pytest.Config
) -> None:
    quick = _quick(pytestconfig)
    leases, interval, measure, rounds = (
        (1000, 0.25, 0.5, 1) if quick else (10_000, 1.0, 2.0, 5)
    )
    own: list[fleet.FleetRun] = []
    paired: list[fleet.FleetRun] = []

    def run_baseline() -> None:
        paired.append(fleet.run_fleet(baseline, backend, leases, interval, measure))

    def run_group() -> None:
        own.append(fleet.run_fleet("group", backend, leases, interval, measure))

    benchmark.pedantic(run_group, setup=run_baseline, rounds=rounds)
    for run in own + paired:
        print(f"\n  {fleet.describe(run)}", end="")
    cpu = statistics.median(run.cpu_per_beat for run in own)
    baseline_cpu = statistics.median(run.cpu_per_beat for run in paired)
    target = _TARGET_CPU[backend] / _ISSUE_BASELINE_CPU[baseline, backend]
    info = benchmark.extra_info
    info.update(
        leases=leases,
        interval=interval,
        rounds=rounds,
        calls_per_round=int(statistics.median(run.total_beats for run in own)),
        cpu_per_call=cpu,
        baseline=_BASELINE_LABELS[baseline],
        baseline_cpu_per_call=baseline_cpu,
        target_ratio=round(target, 3),
        p99_lateness=statistics.median(run.p99_lateness for run in own),
        max_lateness=statistics.median(run.max_lateness for run in own),
        baseline_p99_lateness=statistics.median(run.p99_lateness for run in paired),
        baseline_max_lateness=statistics.median(run.max_lateness for run in paired),
        baseline_saturated_rounds=sum(run.saturated for run in paired),
    )
    print(
        f"\n{backend} {leases} leases @{interval:g}s, group vs "
        f"{fleet.DRIVER_NAMES[baseline]} (medians of {rounds}): CPU/beat "
        f"{cpu * 1e6:.1f} us vs {baseline_cpu * 1e6:.1f} us = "
        f"{cpu / baseline_cpu:.2f} (target <= {target:.2f}); p99 lateness "
        f"{info['p99_lateness'] * 1e3:.2f} ms vs "
        f"{info['baseline_p99_lateness'] * 1e3:.2f} ms"
    )
    for run in own + paired:
        _check_counts(run)
    if not quick:
        assert info["p99_lateness"] <= _LATENESS_BOUND
        if baseline == "timer":  # see the module docstring for the other one
            assert cpu / baseline_cpu <= target


@pytest.mark.skipif(not _FULL, reason="set SANSBEAT_BENCH_FULL=1 (takes ~60 s)")
@pytest.mark.parametrize("backend", fleet.BACKENDS)
def test_group_100k_leases_10s(benchmark: Any, backend: str) -> None:
    runs: list[fleet.FleetRun] = []

    def run() -> None:
        runs.append(fleet.run_fleet("group", backend, 100_000, 10.0, 10.0))

    benchmark.pedantic(run, rounds=1, iterations=1)
    (figures,) = runs
    benchmark.extra_info.update(
        leases=figures.leases,
        calls_per_round=figures.total_beats,
        cpu_per_call=figures.cpu_per_beat,
        p99_lateness=figures.p99_lateness,
        max_lateness=figures.max_lateness,
    )
    print(f"\n{fleet.describe(figures)}")
    _check_counts(figures)
    assert figures.p99_lateness <= _LATENESS_BOUND


@pytest.mark.parametrize("backend", fleet.BACKENDS)
def test_group_memory_per_lease(backend: str, pytestconfig: pytest.Config) -> None:
    """tracemalloc growth from adding the leases, per lease (bytes); one gateway
    shared by all leases: a gateway is the application's, not the group's."""
    leases = 1000 if _quick(pytestconfig) else 10_000
    gateway = fleet.CountingGateway()

    async def main() -> float:
        async with HeartbeatGroup() as group:
            keep = []
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(leases):
                keep.append(
                    group.add(
                        gateway, interval=1.0, report_by_buffer=1.5, initial_status="R"
                    )
                )
            grown = tracemalloc.get_traced_memory()[0] - before
            tracemalloc.stop()
            # The handles list is the benchmark's, not the group's.
            grown -= sys.getsizeof(keep)
            return grown / leases

    per_lease = anyio.run(main, backend=backend)
    print(f"\n{backend} memory per lease: {per_lease:.0f} bytes")
    assert per_lease <= 1024


def test_plot_fleet_sweep_writes_svg(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The sweep script at tiny sizes: a table, and an SVG with every series,
    which `--replot` draws again from the data it keeps."""
    out = tmp_path / "fleet.svg"
    sizes = [5, 40]
    status = fleet.main(
        [
            "--sizes",
            ",".join(map(str, sizes)),
            "--interval",
            "0.05",
            "--measure",
            "0.1",
            "--rounds",
            "1",
            "--out",
            str(out),
        ]
    )
    assert status == 0
    table = capsys.readouterr().out
    for name in fleet.DRIVER_NAMES.values():
        assert name in table
    root = ET.parse(out).getroot()
    svg = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{svg}svg"
    width, height = float(root.get("width", 0)), float(root.get("height", 0))
    expected = {(d, b) for d in fleet.DRIVERS for b in fleet.BACKENDS}
    for panel in ("lateness", "cpu"):
        (group,) = [g for g in root.iter(f"{svg}g") if g.get("id") == panel]
        series = [g for g in group.iter(f"{svg}g") if g.get("class") == "series"]
        assert {(g.get("data-driver"), g.get("data-backend")) for g in series} == (
            expected
        )
        for line in series:
            polyline = line.find(f"{svg}polyline")
            assert polyline is not None
            coordinates = polyline.get("points", "").split()
            assert len(coordinates) == len(sizes)
            for pair in coordinates:
                x, y = map(float, pair.split(","))
                assert 0 <= x <= width
                assert 0 <= y <= height
    # The data kept in the plot draws the same plot again.
    again = tmp_path / "again.svg"
    assert fleet.main(["--replot", str(out), "--out", str(again)]) == 0
    assert again.read_text(encoding="utf-8") == out.read_text(encoding="utf-8")
