"""Fleet scaling: beat lateness and CPU per beat against the number of leases.

Usage, from the repository root (takes minutes at the default sizes):

    .venv/bin/python -m benchmarks.plot_fleet [--sizes 100,1000,3000,10000,30000]
        [--interval 1] [--measure 2] [--rounds 3] [--out docs/fleet-scaling.svg]

(`--replot docs/fleet-scaling.svg` plots the data kept in that file again,
measuring nothing.)

It runs a fleet of leases at one interval for each driver below on asyncio and
trio, prints a table of medians and writes a hand-made SVG plot (two panels, p99
lateness and CPU per beat against the lease count, all axes log scales), which
keeps its data as JSON in its <metadata>.
`benchmarks/test_bench_group.py` measures with the same code (`run_fleet`).

Strategy: three drivers run the same fleet against one in-memory gateway
(`CountingGateway`, which answers without suspending):
- "group": `HeartbeatGroup`, the driver under test (one timer, one machine per
  lease);
- "timer": one plain timer, written plainly on anyio: a single task with a heap
  of due times sleeps until the top, pops every due one, awaits the gateway
  inline and pushes `due + interval`;
- "tasks": one task per lease, written plainly on anyio: each loops
  `sleep_until(due); await gateway call; due += interval`.
The baselines do no protocol work (no machine): they are the floor a driver
pays for sleeping and calling, as the issue measured them.

Rules:
- Every run is a fresh event loop in this process, after `gc.collect()`, so no
  run pays for an earlier run's garbage.
- Leases are added spread evenly over one interval (as a fleet added over time
  is), in batches of at most 1,000 steps; each lease's first beat is due one
  interval after it was added. After one more interval (every lease has beaten
  once), a window of `measure` seconds is measured.
- A driver that cannot keep up makes adding fall behind: a run that falls a
  whole interval behind adds the rest of its leases at once and is marked
  *saturated* (in the table, and with a cross in the plot); its figures show a
  loop that is overloaded, not a bound it meets. Its window is timed, since
  the measuring task itself may wake late.
- Lateness is (the clock when a beat's turn came - the time it was due), in
  seconds, for every beat in the window: for the group, the `now` of the tick
  that sent it minus the machine's deadline (a machine subclass the group is
  made to build records it); for the plain timer, the clock read once at each
  wakeup minus each due time popped; for a task, the clock after its sleep minus
  its due time. The two batch drivers stamp a wakeup once, so the time taken by
  the earlier beats of a batch is not counted in either.
- CPU per beat is `time.process_time()` over the window divided by the beats
  the gateway saw in it.
- Clocks are the framework's own (`loop.time`, `trio.current_time`), read
  directly: `anyio.current_time` finds the backend at every call, a cost the
  baselines would otherwise pay for the benchmark's bookkeeping.
- The sweep runs every (driver, backend) once per round at each size, in an
  order rotated from round to round, and reports medians over rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import heapq
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass
from itertools import product
from pathlib import Path
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import anyio

from sansbeat import Action, HeartbeatMachine, SendHeartbeat
from sansbeat.adapters import HeartbeatAnswer, HeartbeatGroup
from sansbeat.adapters import group as group_module
from sansbeat.adapters.group import LeaseHandle

#: The drivers, the one under test first.
DRIVERS = ("group", "timer", "tasks")
#: What each driver is called in reports.
DRIVER_NAMES = {
    "group": "HeartbeatGroup",
    "timer": "one plain timer",
    "tasks": "one task per lease",
}
BACKENDS = ("asyncio", "trio")

_BUFFER = 1.5  # report_by_buffer: the increment sent is interval * 1.5
_STATUS = "R"
_GROUP_REQUEST_LIMIT = 1000
_GROUP_RESOLUTION = 0.002  # seconds; the group's default, stated


class CountingGateway:
    """Renews every beat at once, as an in-memory server does; counts the calls."""

    __slots__ = ("calls",)

    def __init__(self) -> None:
        self.calls = 0

    async def log_heartbeat(
        self, status: str, next_report_increment: float
    ) -> HeartbeatAnswer:
        self.calls += 1
        return HeartbeatAnswer(status)

    def log_heartbeat_sync(
        self, status: str, next_report_increment: float
    ) -> HeartbeatAnswer:
        self.calls += 1
        return HeartbeatAnswer(status)


class RecordingMachine(HeartbeatMachine):
    """A machine that records how late each beat-sending tick ran (seconds)."""

    __slots__ = ()
    lateness: list[float] = []  # noqa: RUF012 - shared on purpose, one run at a time

    def tick(self, now: float) -> tuple[Action, ...]:
        deadline = self._wake_at
        actions = super().tick(now)
        # A beat is the last action of the tick that sends it.
        if actions and type(actions[-1]) is SendHeartbeat:
            self.lateness.append(now - deadline)
        return actions


@contextmanager
def _recording_machines(lateness: list[float]) -> Iterator[None]:
    """Make the group build `RecordingMachine`s that append to `lateness`."""
    RecordingMachine.lateness = lateness
    # By name: the group's module does not export the class it builds.
    built = getattr(group_module, "HeartbeatMachine")  # noqa: B009
    setattr(group_module, "HeartbeatMachine", RecordingMachine)  # noqa: B010
    try:
        yield
    finally:
        setattr(group_module, "HeartbeatMachine", built)  # noqa: B010


def _framework_clock() -> Callable[[], float]:
    """The running framework's clock (seconds), without anyio's backend lookup."""
    try:
        return asyncio.get_running_loop().time
    except RuntimeError:
        import trio

        return trio.current_time


#: A driver: given (gateway, interval s, lateness list, clock), it runs while its
#: context is open and yields the function that adds one lease, now.
_Driver = Callable[
    [CountingGateway, float, list[float], Callable[[], float]],
    AbstractAsyncContextManager[Callable[[], None]],
]


@asynccontextmanager
async def _group(
    gateway: CountingGateway,
    interval: float,
    lateness: list[float],
    clock: Callable[[], float],
) -> AsyncIterator[Callable[[], None]]:
    handles: list[LeaseHandle] = []
    with _recording_machines(lateness):
        async with HeartbeatGroup(
            max_concurrent_requests=_GROUP_REQUEST_LIMIT, resolution=_GROUP_RESOLUTION
        ) as group:

            def add() -> None:
                handle = group.add(
                    gateway,
                    interval=interval,
                    report_by_buffer=_BUFFER,
                    initial_status=_STATUS,
                )
                if not handles and type(handle.machine) is not RecordingMachine:
                    raise RuntimeError(
                        "the group no longer builds its machines through "
                        "group.HeartbeatMachine: its lateness cannot be recorded"
                    )
                handles.append(handle)

            yield add
    # The machines' own count must agree with the gateway's.
    sent = sum(handle.machine.stats.beats_sent for handle in handles)
    if sent != gateway.calls:
        raise AssertionError(f"machines sent {sent} beats, gateway saw {gateway.calls}")


@asynccontextmanager
async def _plain_timer(
    gateway: CountingGateway,
    interval: float,
    lateness: list[float],
    clock: Callable[[], float],
) -> AsyncIterator[Callable[[], None]]:
    heap: list[float] = []  # due times (seconds, framework clock)
    increment = interval * _BUFFER

    async def timer() -> None:
        while True:
            await anyio.sleep_until(heap[0])
            now = clock()
            while heap[0] <= now:
                due = heapq.heappop(heap)
                lateness.append(now - due)
                await gateway.log_heartbeat(_STATUS, increment)
                heapq.heappush(heap, due + interval)

    async with anyio.create_task_group() as tasks:

        def add() -> None:
            # Leases are added in order of time, so a new due time is never
            # earlier than the top the timer sleeps on: no need to wake it.
            heapq.heappush(heap, clock() + interval)
            if len(heap) == 1:
                tasks.start_soon(timer)

        yield add
        tasks.cancel_scope.cancel()


@asynccontextmanager
async def _task_per_lease(
    gateway: CountingGateway,
    interval: float,
    lateness: list[float],
    clock: Callable[[], float],
) -> AsyncIterator[Callable[[], None]]:
    increment = interval * _BUFFER

    async def lease(due: float) -> None:
        while True:
            await anyio.sleep_until(due)
            lateness.append(clock() - due)
            await gateway.log_heartbeat(_STATUS, increment)
            due += interval

    async with anyio.create_task_group() as tasks:

        def add() -> None:
            tasks.start_soon(lease, clock() + interval)

        yield add
        tasks.cancel_scope.cancel()


_DRIVER_CODE: dict[str, _Driver] = {
    "group": _group,
    "timer": _plain_timer,
    "tasks": _task_per_lease,
}


@dataclass(frozen=True)
class FleetRun:
    """One run of one driver: what its window measured (times in seconds)."""

    driver: str
    backend: str
    leases: int
    interval: float
    window: float  # how long the measured window lasted
    saturated: bool  # adding the leases fell an interval behind its schedule
    beats: int  # beats the gateway saw in the window
    samples: int  # lateness samples recorded in the window (one per beat)
    total_beats: int  # beats the gateway saw in the whole run
    cpu_per_beat: float
    p99_lateness: float
    max_lateness: float

    @property
    def expected_beats(self) -> float:
        """The beats an on-time fleet sends in the window."""
        return self.leases * self.window / self.interval


def p99(values: Sequence[float]) -> float:
    """The 99th percentile (nearest rank) of `values`; NaN if there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def _fleet(
    driver: str, backend: str, leases: int, interval: float, measure: float
) -> FleetRun:
    gateway = CountingGateway()
    lateness: list[float] = []
    clock = _framework_clock()
    saturated = False
    async with _DRIVER_CODE[driver](gateway, interval, lateness, clock) as add:
        start = clock()
        batch = max(1, leases // 1000)
        for index in range(leases):
            if index % batch == 0 and not saturated:
                step = start + interval * index / leases
                # An interval behind: the loop cannot keep up. Add the rest at
                # once, so the run still ends in bounded time (it took 8 minutes
                # to spread 30,000 tasks on trio otherwise).
                saturated = clock() > step + interval
                if not saturated:
                    await anyio.sleep_until(step)
            add()
        # Until every lease has beaten once.
        await anyio.sleep_until(max(start + interval, clock()) + interval)
        lateness.clear()
        beats_before = gateway.calls
        cpu_before = time.process_time()
        opened = clock()
        await anyio.sleep(measure)
        cpu = time.process_time() - cpu_before
        beats = gateway.calls - beats_before
        # A saturated loop wakes this task late: the window is what it was.
        window = clock() - opened
        late = lateness[:]
    return FleetRun(
        driver=driver,
        backend=backend,
        leases=leases,
        interval=interval,
        window=window,
        saturated=saturated,
        beats=beats,
        samples=len(late),
        total_beats=gateway.calls,
        cpu_per_beat=cpu / max(beats, 1),
        p99_lateness=p99(late),
        max_lateness=max(late, default=math.nan),
    )


def run_fleet(
    driver: str, backend: str, leases: int, interval: float, measure: float
) -> FleetRun:
    """Run `leases` leases at `interval` s on `driver` and `backend`, measuring
    a window of `measure` s, on a fresh event loop."""
    if driver not in _DRIVER_CODE:
        raise ValueError(f"driver must be one of {DRIVERS}, not {driver!r}")
    gc.collect()
    run: FleetRun = anyio.run(
        _fleet, driver, backend, leases, interval, measure, backend=backend
    )
    return run


def describe(run: FleetRun) -> str:
    """One line of absolute figures for `run`."""
    return (
        f"{run.backend} {DRIVER_NAMES[run.driver]}, {run.leases} leases "
        f"@{run.interval:g}s: {run.cpu_per_beat * 1e6:.1f} us CPU/beat, "
        f"p99 lateness {run.p99_lateness * 1e3:.2f} ms "
        f"(max {run.max_lateness * 1e3:.2f} ms), {run.beats} beats in "
        f"{run.window:.2f} s"
        + (" (SATURATED: could not add leases on time)" if run.saturated else "")
    )


# ----------------------------------------------------------------- the sweep


@dataclass(frozen=True)
class Point:
    """Medians over rounds for one (driver, backend, lease count); seconds."""

    driver: str
    backend: str
    leases: int
    p99_lateness: float
    max_lateness: float
    cpu_per_beat: float
    beats_per_second: float
    saturated: bool  # in any round


def sweep(
    sizes: Sequence[int],
    *,
    interval: float,
    measure: float,
    rounds: int,
    backends: Sequence[str] = BACKENDS,
    drivers: Sequence[str] = DRIVERS,
    progress: Callable[[FleetRun], None] | None = None,
) -> list[Point]:
    """Measure every (driver, backend) at every size; medians over `rounds`."""
    points: list[Point] = []
    combos = list(product(drivers, backends))
    for leases in sizes:
        runs: dict[tuple[str, str], list[FleetRun]] = {combo: [] for combo in combos}
        for round_index in range(rounds):
            # Rotate the order, so no combination always follows the same one.
            shift = round_index % len(combos)
            for driver, backend in combos[shift:] + combos[:shift]:
                run = run_fleet(driver, backend, leases, interval, measure)
                runs[driver, backend].append(run)
                if progress is not None:
                    progress(run)
        for (driver, backend), done in runs.items():
            points.append(
                Point(
                    driver=driver,
                    backend=backend,
                    leases=leases,
                    p99_lateness=statistics.median(r.p99_lateness for r in done),
                    max_lateness=statistics.median(r.max_lateness for r in done),
                    cpu_per_beat=statistics.median(r.cpu_per_beat for r in done),
                    beats_per_second=statistics.median(
                        r.beats / r.window for r in done
                    ),
                    saturated=any(r.saturated for r in done),
                )
            )
    return points


def format_table(points: Sequence[Point]) -> str:
    """The sweep's medians as a plain-text table, one row per point."""
    header = (
        f"{'leases':>7}  {'driver':<20} {'backend':<8} {'p99 ms':>8} "
        f"{'max ms':>8} {'CPU us/beat':>11} {'beats/s':>9}"
    )
    lines = [header, "-" * len(header)]
    for point in sorted(
        points,
        key=lambda p: (p.leases, DRIVERS.index(p.driver), p.backend),
    ):
        lines.append(
            f"{point.leases:>7}  {DRIVER_NAMES[point.driver]:<20} "
            f"{point.backend:<8} {point.p99_lateness * 1e3:>8.2f} "
            f"{point.max_lateness * 1e3:>8.2f} {point.cpu_per_beat * 1e6:>11.1f} "
            f"{point.beats_per_second:>9.0f}"
            + ("  saturated" if point.saturated else "")
        )
    if any(point.saturated for point in points):
        lines.append("saturated: the loop could not add the leases on time")
    return "\n".join(lines)


# ---------------------------------------------------------------- the plot

_COLOURS = {"group": "#1f6fb4", "timer": "#e07b00", "tasks": "#8a3fa0"}
_DASHES = {"asyncio": "", "trio": "7 4"}  # SVG stroke-dasharray; "" is solid
_OTHER_DASH = "2 3"
_WIDTH, _HEIGHT = 920, 470
_TOP, _BOTTOM = 78, 348  # the plot areas' top and bottom (px from the top)
_PANELS_X = ((86, 430), (548, 892))  # each plot area's (left, right), px
_LATENESS_FLOOR = 1e-3  # ms: a log axis cannot show 0; smaller is drawn here


@dataclass(frozen=True)
class _Axis:
    """Maps values in [low, high] onto pixels in [start, end]; log or linear."""

    low: float
    high: float
    log: bool
    start: float
    end: float

    def at(self, value: float) -> float:
        if self.log:
            low, high = math.log10(self.low), math.log10(self.high)
            value = math.log10(value)
        else:
            low, high = self.low, self.high
        return self.start + (value - low) / (high - low) * (self.end - self.start)


@dataclass(frozen=True)
class _PanelSpec:
    """What one panel shows: a figure of each point, on a y axis."""

    name: str  # the panel's id in the SVG
    title: str
    axis_label: str
    unit: str
    value: Callable[[Point], float]  # in `unit`
    log: bool
    low: float
    high: float
    ticks: Sequence[float]
    guide: tuple[float, str] | None  # a horizontal line: (value, label)


def _count_label(leases: int) -> str:
    for size, suffix in ((1_000_000, "M"), (1000, "k")):
        if leases >= size and leases % (size // 10) == 0:
            return f"{leases / size:g}{suffix}"
    return str(leases)


def _decades(values: Sequence[float]) -> tuple[float, float]:
    """A log axis' range: whole decades around `values` (at least one)."""
    low = 10.0 ** math.floor(math.log10(min(values)))
    high = 10.0 ** math.ceil(math.log10(max(values)))
    return low, max(high, low * 10)


def _log_ticks(low: float, high: float) -> list[float]:
    """Each decade from `low` to `high`, with 2 and 5 between them when the
    range is short enough for them to be read."""
    first, last = round(math.log10(low)), round(math.log10(high))
    steps = (1.0, 2.0, 5.0) if last - first <= 3 else (1.0,)
    ticks = [m * 10.0**exponent for exponent in range(first, last) for m in steps]
    return [*ticks, 10.0**last]


def _attributes(attributes: dict[str, str]) -> str:
    # `class_` stands for `class` (a keyword); other underscores become hyphens.
    return "".join(
        f' {name.rstrip("_").replace("_", "-")}="{escape(value, {chr(34): "&quot;"})}"'
        for name, value in attributes.items()
    )


def _text(x: float, y: float, label: str, **attributes: str) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}"{_attributes(attributes)}>{escape(label)}</text>'
    )


def _line(x1: float, y1: float, x2: float, y2: float, **attributes: str) -> str:
    return (
        f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}"'
        f"{_attributes(attributes)}/>"
    )


def _stroke(driver: str, backend: str) -> dict[str, str]:
    """The line style of a series: colour by driver, dashes by backend."""
    style = {"stroke": _COLOURS[driver], "stroke_width": "2"}
    dash = _DASHES.get(backend, _OTHER_DASH)
    if dash:
        style["stroke_dasharray"] = dash
    return style


def _marker(x: float, y: float, driver: str, backend: str, tip: str = "") -> str:
    """A point: filled for asyncio, hollow otherwise."""
    colour = _COLOURS[driver]
    fill = colour if backend == "asyncio" else "white"
    body = f"<title>{escape(tip)}</title>" if tip else ""
    return (
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{fill}" '
        f'stroke="{colour}" stroke-width="1.5">{body}</circle>'
    )


def _cross(x: float, y: float, colour: str) -> str:
    """The mark of a saturated point: an X across its marker."""
    r = 6.0
    return (
        f'<path d="M{x - r:.1f},{y - r:.1f}L{x + r:.1f},{y + r:.1f}'
        f'M{x - r:.1f},{y + r:.1f}L{x + r:.1f},{y - r:.1f}" stroke="{colour}" '
        'stroke-width="1.5" class="saturated"/>'
    )


def _series(points: Sequence[Point]) -> list[tuple[tuple[str, str], list[Point]]]:
    """The points by (driver, backend), drivers in `DRIVERS` order, each by size."""
    series: dict[tuple[str, str], list[Point]] = {}
    for point in points:
        series.setdefault((point.driver, point.backend), []).append(point)
    for members in series.values():
        members.sort(key=lambda p: p.leases)
    return sorted(
        series.items(), key=lambda item: (DRIVERS.index(item[0][0]), item[0][1])
    )


def _panel(spec: _PanelSpec, points: Sequence[Point], x: _Axis, y: _Axis) -> list[str]:
    """One panel's SVG elements: frame, grid, ticks, labels, one line a series."""
    left, right = x.start, x.end
    parts = [
        f'<g id="{spec.name}">',
        _text((left + right) / 2, _TOP - 12, spec.title, class_="title"),
    ]
    for leases in sorted({point.leases for point in points}):
        at = x.at(leases)
        parts.append(_line(at, _TOP, at, _BOTTOM, class_="grid"))
        parts.append(_text(at, _BOTTOM + 16, _count_label(leases), class_="tick"))
    for tick in spec.ticks:
        at = y.at(tick)
        parts.append(_line(left, at, right, at, class_="grid"))
        parts.append(_text(left - 6, at + 4, f"{tick:g}", class_="ytick"))
    parts.append(
        f'<rect x="{left:.1f}" y="{_TOP}" width="{right - left:.1f}" '
        f'height="{_BOTTOM - _TOP}" class="frame"/>'
    )
    if spec.guide is not None and spec.low <= spec.guide[0] <= spec.high:
        at = y.at(spec.guide[0])
        parts.append(_line(left, at, right, at, class_="guide"))
        parts.append(_text(left + 6, at - 5, spec.guide[1], class_="guide-label"))
    parts.append(_text((left + right) / 2, _BOTTOM + 36, "leases (log scale)"))
    middle = (_TOP + _BOTTOM) / 2
    label_x = left - 52
    parts.append(
        _text(
            label_x,
            middle,
            spec.axis_label,
            transform=f"rotate(-90 {label_x:.1f} {middle:.1f})",
        )
    )
    for (driver, backend), members in _series(points):
        coordinates = [(x.at(p.leases), y.at(spec.value(p))) for p in members]
        parts.append(
            f'<g class="series" data-driver="{driver}" data-backend="{backend}">'
        )
        parts.append(
            '<polyline fill="none"'
            + _attributes(_stroke(driver, backend))
            + ' points="'
            + " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coordinates)
            + '"/>'
        )
        for point, (cx, cy) in zip(members, coordinates, strict=True):
            tip = (
                f"{DRIVER_NAMES[driver]} ({backend}), {point.leases} leases: "
                f"{spec.value(point):.3g} {spec.unit}"
                + (" (saturated)" if point.saturated else "")
            )
            parts.append(_marker(cx, cy, driver, backend, tip))
            if point.saturated:
                parts.append(_cross(cx, cy, _COLOURS[driver]))
        parts.append("</g>")
    parts.append("</g>")
    return parts


def _legend(points: Sequence[Point]) -> list[str]:
    """A column per driver, a row per backend, each entry a line sample."""
    present = {(point.driver, point.backend) for point in points}
    drivers = [d for d in DRIVERS if any(d == pd for pd, _ in present)]
    found = {pb for _, pb in present}
    backends = [b for b in BACKENDS if b in found] + sorted(found - set(BACKENDS))
    parts = ['<g id="legend">']
    for column, driver in enumerate(drivers):
        for row, backend in enumerate(backends):
            if (driver, backend) not in present:
                continue
            lx, ly = 120 + column * 255, 410 + row * 22
            parts.append(_line(lx, ly, lx + 34, ly, **_stroke(driver, backend)))
            parts.append(_marker(lx + 17, ly, driver, backend))
            label = f"{DRIVER_NAMES[driver]} ({backend})"
            parts.append(_text(lx + 42, ly + 4, label, class_="legend"))
    if any(point.saturated for point in points):
        ly = 410 + len(backends) * 22
        parts.append(_cross(137, ly, "#444"))
        label = "saturated: the loop could not add the leases on time"
        parts.append(_text(162, ly + 4, label, class_="legend"))
    parts.append("</g>")
    return parts


_DATA_ID = "fleet-data"


def read_svg_data(path: Path) -> tuple[list[Point], str]:
    """The points and note a `render_svg` document holds, to plot them again."""
    root = ElementTree.parse(path).getroot()
    for element in root.iter("{http://www.w3.org/2000/svg}metadata"):
        if element.get("id") == _DATA_ID and element.text:
            data = json.loads(element.text)
            return [Point(**point) for point in data["points"]], str(data["note"])
    raise ValueError(f"{path} holds no sweep data")


def render_svg(points: Sequence[Point], *, note: str) -> str:
    """The sweep as an SVG document: p99 lateness (ms) and CPU per beat (us)
    against the lease count, all on log scales, a line per (driver, backend);
    `note` is printed under the title. The points and the note are kept in the
    document's <metadata> as JSON, for `read_svg_data`."""
    if not points:
        raise ValueError("nothing to plot")
    sizes = [point.leases for point in points]
    x_low, x_high = float(min(sizes)), float(max(sizes))
    if x_low == x_high:
        x_low, x_high = x_low / 2, x_high * 2

    # Both on log scales: a saturated baseline's lateness is 1,000 times the
    # group's, and the loop's fixed cost makes CPU per beat at 100 leases 20
    # times what it is at 10,000.
    def lateness_ms(point: Point) -> float:
        value = point.p99_lateness * 1e3
        return value if value >= _LATENESS_FLOOR else _LATENESS_FLOOR

    def cpu_us(point: Point) -> float:
        return point.cpu_per_beat * 1e6

    lateness_low, lateness_high = _decades([lateness_ms(p) for p in points])
    cpu_low, cpu_high = _decades([cpu_us(p) for p in points])
    specs = (
        _PanelSpec(
            name="lateness",
            title="p99 lateness of a beat",
            axis_label="p99 lateness (ms, log scale)",
            unit="ms",
            value=lateness_ms,
            log=True,
            low=lateness_low,
            high=lateness_high,
            ticks=_log_ticks(lateness_low, lateness_high),
            guide=(5.0, "target: 5 ms"),
        ),
        _PanelSpec(
            name="cpu",
            title="process CPU per beat",
            axis_label="CPU per beat (µs, log scale)",
            unit="µs",
            value=cpu_us,
            log=True,
            low=cpu_low,
            high=cpu_high,
            ticks=_log_ticks(cpu_low, cpu_high),
            guide=None,
        ),
    )
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" '
        f'height="{_HEIGHT}" viewBox="0 0 {_WIDTH} {_HEIGHT}" '
        'font-family="Helvetica, Arial, sans-serif" font-size="12">',
        "<title>sansbeat: many leases on one loop</title>",
        f'<metadata id="{_DATA_ID}">'
        + escape(json.dumps({"note": note, "points": [asdict(p) for p in points]}))
        + "</metadata>",
        "<style>"
        "text{fill:#222;text-anchor:middle}"
        ".title{font-size:14px;font-weight:bold}"
        ".tick{fill:#444}.ytick{fill:#444;text-anchor:end}"
        ".frame{fill:none;stroke:#888}"
        ".grid{stroke:#e8e8e8}"
        ".guide{stroke:#c0392b;stroke-dasharray:3 3}"
        ".guide-label{fill:#c0392b;text-anchor:start;font-size:11px}"
        ".legend{text-anchor:start}"
        "</style>",
        f'<rect width="{_WIDTH}" height="{_HEIGHT}" fill="white"/>',
        _text(_WIDTH / 2, 22, "Many leases on one loop", class_="title"),
        _text(_WIDTH / 2, 40, note, class_="tick"),
    ]
    for (left, right), spec in zip(_PANELS_X, specs, strict=True):
        # Inset the outermost sizes from the frame, so their markers show whole.
        x = _Axis(x_low, x_high, True, left + 14, right - 14)
        y = _Axis(spec.low, spec.high, spec.log, _BOTTOM, _TOP)
        parts.extend(_panel(spec, points, x, y))
    parts.extend(_legend(points))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


# ------------------------------------------------------------------ the CLI

_DEFAULT_OUT = Path(__file__).resolve().parent.parent / "docs" / "fleet-scaling.svg"


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def _names(text: str) -> list[str]:
    return [part for part in text.split(",") if part]


def main(argv: Sequence[str] | None = None) -> int:
    """Sweep, print the table, write the SVG; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.plot_fleet", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--sizes", type=_ints, default=[100, 1000, 3000, 10_000, 30_000]
    )
    parser.add_argument("--interval", type=float, default=1.0, help="seconds")
    parser.add_argument(
        "--measure", type=float, default=2.0, help="seconds measured per run"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", type=_names, default=list(BACKENDS))
    parser.add_argument("--drivers", type=_names, default=list(DRIVERS))
    parser.add_argument("--out", type=Path, default=_DEFAULT_OUT)
    parser.add_argument(
        "--replot",
        type=Path,
        metavar="SVG",
        help="measure nothing: plot the data kept in SVG (a file this wrote) again",
    )
    args = parser.parse_args(argv)
    if args.replot is not None:
        points, note = read_svg_data(args.replot)
        print(format_table(points))
        args.out.write_text(render_svg(points, note=note), encoding="utf-8")
        print(f"wrote {args.out}")
        return 0
    for driver in args.drivers:
        if driver not in DRIVERS:
            parser.error(f"--drivers: {driver!r} is not one of {', '.join(DRIVERS)}")

    def progress(run: FleetRun) -> None:
        print(describe(run), file=sys.stderr, flush=True)

    points = sweep(
        args.sizes,
        interval=args.interval,
        measure=args.measure,
        rounds=args.rounds,
        backends=args.backends,
        drivers=args.drivers,
        progress=progress,
    )
    print(format_table(points))
    note = (
        f"in-memory gateway, interval {args.interval:g} s, {args.measure:g} s "
        f"measured per run, median of {args.rounds} round(s); "
        f"CPython {platform.python_version()}, {os.cpu_count()} CPU(s)"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render_svg(points, note=note), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
