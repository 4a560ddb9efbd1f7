"""HeartbeatService keeps the seed's API and meanings, on sansbeat's machine.

Async tests run on asyncio and trio in virtual time; the service is given the
framework's clock, as a user's own tests would.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from typing import Any

import anyio
import pytest
import trio

from sansbeat import Action, LeaseLapsed, StatusChanged
from sansbeat.adapters import HeartbeatRequestFailed, HeartbeatService, StateUpdate
from tests.gateways import (
    Answer,
    AsyncScriptedGateway,
    Fail,
    Outcome,
    SyncScriptedGateway,
)


def _service(gateway: object, **options: Any) -> HeartbeatService:
    return HeartbeatService(
        gateway=gateway,
        interval=30.0,
        report_by_buffer=1.5,
        initial_status="R",
        clock=anyio.current_time,
        **options,
    )


def test_constructor_and_properties_follow_the_seed() -> None:
    wall = [1_700_000_000.0]
    mono = [100.0]
    service = HeartbeatService(
        SyncScriptedGateway(),
        interval=30.0,
        report_by_buffer=1.5,
        initial_status="R",
        clock=lambda: mono[0],
        wall_clock=lambda: wall[0],
    )
    assert service.interval == 30.0
    assert service.current_status == "R"
    assert service.next_report_increment == 45.0
    assert service.last_heartbeat_time == 1_700_000_000.0
    mono[0] = 112.5
    assert service.time_since_last_heartbeat() == 12.5
    assert not service.is_heartbeat_due()
    mono[0] = 130.0
    assert service.is_heartbeat_due()


def test_tick_sync_logs_a_heartbeat_and_reports_a_signal() -> None:
    mono = [0.0]

    def script(at: float, status: str) -> Outcome:
        return Answer("C")

    service = HeartbeatService(
        SyncScriptedGateway(script),
        interval=30.0,
        report_by_buffer=1.5,
        initial_status="R",
        clock=lambda: mono[0],
    )
    mono[0] = 5.0
    update = service.tick_sync()
    assert update == StateUpdate(workflow_run_status="C")
    assert service.current_status == "C"


def test_tick_sync_raises_like_the_seed_but_the_machine_counts_it() -> None:
    mono = [0.0]
    failure = HeartbeatRequestFailed("http_status", "HTTP 500", http_status=500)
    service = HeartbeatService(
        SyncScriptedGateway(lambda at, status: Fail(failure)),
        interval=30.0,
        report_by_buffer=1.5,
        initial_status="R",
        clock=lambda: mono[0],
    )
    with pytest.raises(HeartbeatRequestFailed) as raised:
        service.tick_sync()
    assert raised.value.http_status == 500
    assert service.machine.stats.failures == 1
    assert service.machine.in_flight is None


def test_reset_timer_counts_an_external_heartbeat() -> None:
    mono = [0.0]
    service = HeartbeatService(
        SyncScriptedGateway(),
        interval=30.0,
        report_by_buffer=1.5,
        initial_status="R",
        clock=lambda: mono[0],
    )
    mono[0] = 29.0
    service.reset_timer()
    mono[0] = 31.0
    assert service.time_since_last_heartbeat() == 2.0
    assert not service.is_heartbeat_due()
    # 1 s short of 29 + 45: Jobmon keeps deadlines in whole seconds.
    assert service.machine.lease_deadline == 29.0 + 45.0 - 1.0


def test_set_status_while_idle_goes_out_with_the_next_tick() -> None:
    mono = [0.0]
    gateway = SyncScriptedGateway()
    service = HeartbeatService(
        gateway,
        interval=30.0,
        report_by_buffer=1.5,
        initial_status="R",
        clock=lambda: mono[0],
    )
    mono[0] = 3.0
    service.set_status("D")
    assert service.is_heartbeat_due()
    assert service.tick_sync() == StateUpdate()
    assert [call.status for call in gateway.calls] == ["D"]
    assert service.machine.stats.renewals == 1


@pytest.mark.anyio
async def test_async_tick_and_seed_example_flow(anyio_backend: object) -> None:
    gateway = AsyncScriptedGateway(
        lambda at, status: Answer("H") if at > 0 else Answer(),
        start=anyio.current_time(),
    )
    service = _service(gateway)
    update = await service.tick()
    assert update.workflow_run_status is None
    await anyio.sleep(1)
    update = await service.tick()
    assert update.workflow_run_status == "H"


@pytest.mark.anyio
async def test_run_background_with_the_frameworks_own_event(
    anyio_backend: tuple[str, object],
) -> None:
    events: list[Action] = []

    def script(at: float, status: str) -> Outcome:
        if 50 <= at < 100:
            return Fail(HeartbeatRequestFailed("connect", "refused"))
        return Answer("C") if at >= 150 and status == "R" else Answer()

    gateway = AsyncScriptedGateway(script, start=anyio.current_time())
    service = _service(gateway, on_event=events.append, rng=random.Random(5))
    stop: asyncio.Event | trio.Event
    stop = asyncio.Event() if anyio_backend[0] == "asyncio" else trio.Event()
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(service.run_background, stop)
        await anyio.sleep(200)
        stop.set()
    kinds = [type(event).__name__ for event in events]
    assert kinds == ["LeaseLapsed", "LeaseRestored", "StatusChanged"]
    assert events[-1] == StatusChanged(old="R", new="C")
    assert service.current_status == "C"


@pytest.mark.anyio
async def test_set_status_during_run_background_is_never_lost(
    anyio_backend: object,
) -> None:
    gateway = AsyncScriptedGateway(
        lambda at, status: Answer(delay=3.0), start=anyio.current_time()
    )
    service = _service(gateway)
    stop = anyio.Event()
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(service.run_background, stop)
        await anyio.sleep(31)  # the first beat (sent at 30) is in flight
        service.set_status("D")
        await anyio.sleep(10)
        stop.set()
    assert [call.status for call in gateway.calls] == ["R", "D"]
    assert service.current_status == "D"


def test_run_background_sync_in_a_thread() -> None:
    gateway = SyncScriptedGateway()
    lapses: list[Action] = []
    service = HeartbeatService(
        gateway,
        interval=0.02,
        report_by_buffer=2.0,
        initial_status="R",
        on_event=lambda event: (
            lapses.append(event) if isinstance(event, LeaseLapsed) else None
        ),
        backoff_initial=0.005,
        lease_margin=0.0,  # an in-memory server keeps exact deadlines
    )
    stop = threading.Event()
    thread = threading.Thread(target=service.run_background_sync, args=(stop,))
    thread.start()
    assert gateway.wait_for_calls(2)
    service.set_status("D")
    assert gateway.wait_for_calls(4)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert "D" in [call.status for call in gateway.calls]
    assert service.machine.stats.renewals >= 3
    assert time.monotonic() - service.machine.last_heartbeat_time < 1.0


def test_an_empty_update_is_falsy_like_jobmons() -> None:
    assert not StateUpdate()
    assert StateUpdate(workflow_run_status="H")


@pytest.mark.anyio
async def test_default_clock_is_the_running_frameworks(anyio_backend: object) -> None:
    # Made inside the loop with no clock given: virtual time drives it.
    gateway = AsyncScriptedGateway(start=anyio.current_time())
    service = HeartbeatService(gateway, 30.0, 1.5, "R")
    stop = anyio.Event()
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(service.run_background, stop)
        await anyio.sleep(95)
        stop.set()
    assert [call.at for call in gateway.calls] == pytest.approx([30, 60, 90])


@pytest.mark.anyio
async def test_stopping_mid_beat_leaves_no_phantom_request(
    anyio_backend: object,
) -> None:
    gateway = AsyncScriptedGateway(
        lambda at, status: Answer(delay=5.0), start=anyio.current_time()
    )
    service = _service(gateway)
    stop = anyio.Event()
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(service.run_background, stop)
        await anyio.sleep(31)  # the beat sent at 30 is in flight
        service.set_status("D")
        stop.set()
    assert service.machine.in_flight is None
    update = await service.tick()  # the seed's manual tick works at once
    assert update == StateUpdate()
    assert [call.status for call in gateway.calls] == ["R", "D"]
    assert service.machine.stats.failures == 0
