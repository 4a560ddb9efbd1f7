"""The group driver at scale, on asyncio and trio, against an in-memory gateway.

Targets (from the group issue):
- 10,000 leases at a 1 s interval in one loop: p99 lateness <= 5 ms, CPU per beat
  <= 15 us (asyncio) and <= 20 us (trio), memory <= 1 KiB per lease;
- 100,000 leases at a 10 s interval: p99 lateness <= 5 ms;
- one idle lease: exactly one wakeup per beat, CPU per beat <= 0.4 of a loop
  polling at interval / 2 as Jobmon's service does, measured in the same run;
- `import sansbeat.adapters.asyncio` <= 1/3 of `import aiohttp` (fresh
  subprocesses, median of several).

Lateness is (time the tick ran - the machine's deadline) for every tick that
sent a beat, recorded by a machine subclass the group is made to build; CPU is
`time.process_time()` over the measured window divided by the beats sent in it;
memory is the tracemalloc growth from adding the leases, per lease (one gateway
object shared by all leases: a gateway is the application's, not the group's).
Leases are added spread evenly over one interval, as a fleet added over time is.

`pytest benchmarks --benchmark-disable` runs a QUICK version (1,000 leases for
about two seconds; no 100,000 run); `SANSBEAT_BENCH_FULL=1 pytest benchmarks -k
group -s` runs the full sizes (about a minute) and prints the figures.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import anyio
import pytest

from sansbeat import Action, HeartbeatMachine
from sansbeat.adapters import HeartbeatAnswer, HeartbeatGroup
from sansbeat.adapters import group as group_module
from tests.virtual_asyncio import VirtualTimeLoop

T = TypeVar("T")
_FULL = os.environ.get("SANSBEAT_BENCH_FULL") == "1"


def _quick(config: pytest.Config) -> bool:
    return not _FULL and bool(config.getoption("benchmark_disable", False))


class _InstantGateway:
    """Renews every beat at once, as an in-memory server does; counts the calls."""

    calls = 0

    async def log_heartbeat(self, status: str, next_report_increment: float) -> object:
        self.calls += 1
        return HeartbeatAnswer(status)


class _RecordingMachine(HeartbeatMachine):
    """A machine that records how late each beat-sending tick ran (seconds)."""

    __slots__ = ()
    lateness: list[float] = []  # noqa: RUF012 - shared on purpose, one run at a time

    def tick(self, now: float) -> tuple[Action, ...]:
        deadline = self._wake_at
        actions = super().tick(now)
        if actions:
            self.lateness.append(now - deadline)
        return actions


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def _fleet(leases: int, interval: float, measure: float) -> dict[str, float]:
    """Run `leases` leases; return lateness and CPU figures over `measure` s."""
    gateway = _InstantGateway()
    _RecordingMachine.lateness = []
    async with HeartbeatGroup(max_concurrent_requests=1000) as group:
        start = anyio.current_time()
        batch = max(1, leases // 1000)
        handles = []
        for index in range(leases):
            if index % batch == 0:
                await anyio.sleep_until(start + interval * index / leases)
            handles.append(
                group.add(
                    gateway, interval=interval, report_by_buffer=1.5, initial_status="R"
                )
            )
        await anyio.sleep_until(start + 2 * interval)  # every lease beat once
        _RecordingMachine.lateness = []
        # Beats are counted by the gateway: summing `machine.stats` over the
        # leases would block the loop (0.4 s at 100,000 leases) in the window.
        beats_before = gateway.calls
        cpu_before = time.process_time()
        await anyio.sleep(measure)
        cpu = time.process_time() - cpu_before
        beats = gateway.calls - beats_before
        lateness = _RecordingMachine.lateness
    return {
        "leases": leases,
        "beats": beats,
        "cpu_per_beat": cpu / max(beats, 1),
        "p99_lateness": _p99(lateness),
        "max_lateness": max(lateness),
    }


def _on_loop(loop: asyncio.AbstractEventLoop, main: Coroutine[Any, Any, T]) -> T:
    try:
        return loop.run_until_complete(main)
    finally:
        loop.close()


def _run(backend: str, func: Callable[[], Any]) -> Any:
    return anyio.run(func, backend=backend)


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(group_module, "HeartbeatMachine", _RecordingMachine)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_group_10k_leases_1s(
    benchmark: Any, backend: str, recording: None, pytestconfig: pytest.Config
) -> None:
    quick = _quick(pytestconfig)
    leases, measure = (1000, 1.0) if quick else (10_000, 5.0)
    figures: dict[str, float] = {}

    def run() -> None:
        figures.update(_run(backend, lambda: _fleet(leases, 1.0, measure)))

    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(figures)
    benchmark.extra_info["cpu_per_call"] = figures["cpu_per_beat"]
    benchmark.extra_info["calls_per_round"] = int(figures["beats"])
    print(f"\n{backend} {leases} leases @1s: {figures}")
    assert figures["beats"] >= leases * measure * 0.95
    if not quick:
        assert figures["p99_lateness"] <= 0.005
        assert figures["cpu_per_beat"] <= (15e-6 if backend == "asyncio" else 20e-6)


@pytest.mark.skipif(not _FULL, reason="set SANSBEAT_BENCH_FULL=1 (takes ~40 s)")
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_group_100k_leases_10s(benchmark: Any, backend: str, recording: None) -> None:
    figures: dict[str, float] = {}

    def run() -> None:
        figures.update(_run(backend, lambda: _fleet(100_000, 10.0, 10.0)))

    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(figures)
    benchmark.extra_info["cpu_per_call"] = figures["cpu_per_beat"]
    print(f"\n{backend} 100000 leases @10s: {figures}")
    assert figures["p99_lateness"] <= 0.005


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_group_memory_per_lease(backend: str, pytestconfig: pytest.Config) -> None:
    leases = 1000 if _quick(pytestconfig) else 10_000
    gateway = _InstantGateway()

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

    per_lease = _run(backend, main)
    print(f"\n{backend} memory per lease: {per_lease:.0f} bytes")
    assert per_lease <= 1024


def test_idle_lease_one_wakeup_per_beat_vs_polling(benchmark: Any) -> None:
    """One lease on a virtual-time asyncio loop: wakeups and CPU per beat, against
    Jobmon's loop (`asyncio.sleep(interval / 2)`, beat when due), round by round."""
    beats_per_round, interval = 500, 1.0
    gateway = _InstantGateway()

    class CountingLoop(VirtualTimeLoop):
        wakeups = 0

        def _run_once(self) -> None:
            before = self._virtual_time[0]
            super()._run_once()  # type: ignore[misc]
            if self._virtual_time[0] != before:
                CountingLoop.wakeups += 1

    def group_round() -> tuple[float, int]:
        async def main() -> tuple[float, int]:
            async with HeartbeatGroup() as group:
                handle = group.add(
                    gateway, interval=interval, report_by_buffer=1.5, initial_status="R"
                )
                await asyncio.sleep(interval * 1.5)
                CountingLoop.wakeups = 0
                cpu = time.process_time()
                await asyncio.sleep(interval * beats_per_round)
                cpu = time.process_time() - cpu
                # Less one: the wakeup that ends this coroutine's own sleep.
                wakeups = CountingLoop.wakeups - 1
            assert handle.machine.stats.beats_sent >= beats_per_round
            return cpu / beats_per_round, wakeups

        return _on_loop(CountingLoop(), main())

    def polling_round() -> float:
        async def main() -> float:
            machine = HeartbeatMachine(
                interval=interval,
                report_by_buffer=1.5,
                initial_status="R",
                now=asyncio.get_running_loop().time(),
            )
            loop = asyncio.get_running_loop()
            cpu = time.process_time()
            beats = 0
            while beats < beats_per_round:
                await asyncio.sleep(interval / 2)
                now = loop.time()
                if machine.is_heartbeat_due(now):
                    for action in machine.beat_now(now):
                        await gateway.log_heartbeat("R", 1.5)
                        machine.handle_response(action.seq, "R", loop.time())  # type: ignore[union-attr]
                        beats += 1
            return (time.process_time() - cpu) / beats_per_round

        return _on_loop(CountingLoop(), main())

    own: list[float] = []
    paired: list[float] = []
    wakeups: list[int] = []

    def run() -> None:
        cpu, woke = group_round()
        own.append(cpu)
        wakeups.append(woke)

    benchmark.pedantic(run, setup=lambda: paired.append(polling_round()), rounds=5)
    info = benchmark.extra_info
    info["cpu_per_call"] = statistics.median(own)
    info["baseline"] = "jobmon_poll_at_half_interval"
    info["baseline_cpu_per_call"] = statistics.median(paired)
    info["target_ratio"] = 0.4
    info["wakeups_per_beat"] = statistics.median(wakeups) / beats_per_round
    print(f"\nidle lease: {info}")
    assert info["wakeups_per_beat"] == 1.0


def test_import_time_vs_aiohttp(benchmark: Any) -> None:
    def import_seconds(module: str) -> float:
        code = (
            "import time; t = time.perf_counter(); "
            f"import {module}; print(time.perf_counter() - t)"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        )
        return float(out.stdout)

    ours: list[float] = []
    theirs: list[float] = []

    def run() -> None:
        ours.append(import_seconds("sansbeat.adapters.asyncio"))

    benchmark.pedantic(
        run, setup=lambda: theirs.append(import_seconds("aiohttp")), rounds=5
    )
    info = benchmark.extra_info
    info["cpu_per_call"] = statistics.median(ours)
    info["baseline"] = "import aiohttp"
    info["baseline_cpu_per_call"] = statistics.median(theirs)
    info["target_ratio"] = 1 / 3
    print(f"\nimport: {info}")
