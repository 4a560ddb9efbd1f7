"""The async driver on asyncio and trio, in virtual time, against in-memory servers.

Every test runs on both frameworks (see conftest). The driver's promise: it carries
out exactly what the machine asks, at the machine's times, and no fault of the
gateway or the application's callback stops it.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Awaitable, Callable

import anyio
import pytest

from sansbeat import (
    Action,
    HeartbeatMachine,
    LeaseLapsed,
    LeaseRestored,
    StatusChanged,
)
from sansbeat.adapters import HeartbeatRequestFailed
from sansbeat.adapters.asyncio import AsyncHeartbeatDriver
from tests.gateways import (
    Answer,
    AsyncScriptedGateway,
    Fail,
    Hang,
    Outcome,
    Script,
)

pytestmark = pytest.mark.anyio


def _machine(interval: float = 10.0, buffer: float = 1.5) -> HeartbeatMachine:
    return HeartbeatMachine(
        interval=interval,
        report_by_buffer=buffer,
        initial_status="R",
        now=anyio.current_time(),
        rng=random.Random(7),
    )


async def _drive(
    script: Script,
    seconds: float,
    *,
    machine: HeartbeatMachine | None = None,
    during: Callable[[AsyncHeartbeatDriver], Awaitable[None]] | None = None,
) -> tuple[AsyncScriptedGateway, AsyncHeartbeatDriver, list[tuple[float, Action]]]:
    """Run a driver for `seconds` of virtual time; return what happened."""
    start = anyio.current_time()
    gateway = AsyncScriptedGateway(script, start=start)
    events: list[tuple[float, Action]] = []
    driver = AsyncHeartbeatDriver(
        machine or _machine(),
        gateway,
        on_event=lambda event: events.append((anyio.current_time() - start, event)),
    )
    stop = anyio.Event()
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(driver.run, stop)
        if during is not None:
            await during(driver)
        await anyio.sleep_until(start + seconds)
        stop.set()
    return gateway, driver, events


async def test_beats_go_out_at_the_cadence_and_renew() -> None:
    gateway, driver, events = await _drive(lambda at, status: Answer(delay=0.5), 55)
    assert [call.at for call in gateway.calls] == pytest.approx([10, 20, 30, 40, 50])
    assert driver.machine.stats.renewals == 5
    assert events == []


async def test_server_signal_reaches_the_application_once() -> None:
    def script(at: float, status: str) -> Outcome:
        return Answer("H") if at >= 30 and status == "R" else Answer()

    gateway, driver, events = await _drive(script, 45)
    assert [event for _, event in events] == [StatusChanged(old="R", new="H")]
    # The adopted status goes out at once, then the cadence resumes from it.
    assert [(c.at, c.status) for c in gateway.calls] == [
        pytest.approx((10, "R")),
        pytest.approx((20, "R")),
        pytest.approx((30, "R")),
        pytest.approx((30, "H")),
        pytest.approx((40, "H")),
    ]
    assert driver.machine.current_status == "H"


async def test_outage_lapses_once_and_recovers_once() -> None:
    def script(at: float, status: str) -> Outcome:
        if 15 <= at < 60:
            return Fail(HeartbeatRequestFailed("connect", "refused"))
        return Answer()

    gateway, driver, events = await _drive(script, 100)
    kinds = [type(event) for _, event in events]
    assert kinds == [LeaseLapsed, LeaseRestored]
    lapse_at, lapse = events[0]
    assert isinstance(lapse, LeaseLapsed)
    assert lapse_at == pytest.approx(lapse.deadline - gateway.start_offset())
    failing = [c.at for c in gateway.calls if 15 <= c.at < 60]
    assert len(failing) >= 3
    # Never more than one interval between attempts, even in the outage.
    times = [c.at for c in gateway.calls]
    assert max(b - a for a, b in itertools.pairwise(times)) <= 10 + 1e-9
    assert driver.machine.stats.lapses == 1


async def test_hanging_request_is_abandoned_at_its_deadline() -> None:
    def script(at: float, status: str) -> Outcome:
        return Hang() if at < 11 else Answer()

    gateway, driver, _ = await _drive(script, 25)
    first, retry = gateway.calls[0], gateway.calls[1]
    assert first.cancelled
    assert first.finished
    # interval 10, buffer 1.5: the lease (15) leaves half of 5 s for the request.
    # The retry still fits in the live lease, which is renewed: no lapse.
    assert 12.5 <= retry.at < 15
    assert driver.machine.stats.timeouts == 1
    assert driver.machine.stats.lapses == 0


async def test_status_set_during_a_beat_goes_out_when_it_ends() -> None:
    async def set_done(driver: AsyncHeartbeatDriver) -> None:
        await anyio.sleep(10.5)
        driver.set_status("D")

    gateway, driver, _ = await _drive(
        lambda at, status: Answer(delay=2.0), 15, during=set_done
    )
    assert [(c.at, c.status) for c in gateway.calls] == [
        pytest.approx((10, "R")),
        pytest.approx((12, "D")),
    ]
    assert driver.machine.current_status == "D"


async def test_stop_is_prompt_in_the_middle_of_a_request() -> None:
    start = anyio.current_time()
    gateway = AsyncScriptedGateway(lambda at, status: Hang(), start=start)
    driver = AsyncHeartbeatDriver(_machine(), gateway)
    stop = anyio.Event()
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(driver.run, stop)
        await anyio.sleep(11)
        stop.set()
    assert anyio.current_time() - start == pytest.approx(11)
    assert len(gateway.calls) == 1
    assert gateway.calls[0].cancelled
    assert gateway.calls[0].finished


async def test_a_failing_callback_does_not_stop_the_loop() -> None:
    def script(at: float, status: str) -> Outcome:
        return Answer("C") if 20 <= at < 21 else Answer()

    start = anyio.current_time()
    gateway = AsyncScriptedGateway(script, start=start)

    def explode(event: Action) -> None:
        raise RuntimeError("application bug")

    driver = AsyncHeartbeatDriver(_machine(), gateway, on_event=explode)
    stop = anyio.Event()
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(driver.run, stop)
        await anyio.sleep(45)
        stop.set()
    assert driver.machine.stats.signals == 1
    assert [c.at for c in gateway.calls][-1] == pytest.approx(40)


async def test_an_answer_without_a_status_is_a_failure() -> None:
    class Nonsense(AsyncScriptedGateway):
        async def log_heartbeat(self, status: str, increment: float) -> object:
            await super().log_heartbeat(status, increment)
            return {"status": status}  # a dict, not an object with .status

    start = anyio.current_time()
    gateway = Nonsense(start=start)
    driver = AsyncHeartbeatDriver(_machine(), gateway)
    stop = anyio.Event()
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(driver.run, stop)
        await anyio.sleep(10.25)  # before the retry (at least 0.5 s later)
        stop.set()
    assert driver.machine.stats.failures == 1
    assert driver.machine.stats.renewals == 0


async def test_retry_after_from_the_server_delays_the_retry() -> None:
    def script(at: float, status: str) -> Outcome:
        if at < 1:
            return Answer()
        if at < 31:
            return Fail(HeartbeatRequestFailed("http_status", "503", retry_after=7))
        return Answer()

    # buffer 3: a 90 s lease leaves room, so only Retry-After sets the delay.
    gateway, _, _ = await _drive(script, 40, machine=_machine(30.0, 3.0))
    assert [c.at for c in gateway.calls][:2] == pytest.approx([30, 37])


async def test_running_twice_at_once_is_refused() -> None:
    driver = AsyncHeartbeatDriver(_machine(), AsyncScriptedGateway())
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(driver.run)
        await anyio.sleep(1)
        with pytest.raises(RuntimeError, match="already running"):
            await driver.run()
        driver.stop()
    assert driver.machine.stopped
