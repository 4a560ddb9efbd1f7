"""sansbeat on asyncio: the async driver on the running loop's clock.

`AsyncHeartbeatDriver` runs a `HeartbeatMachine` over any async gateway; under
asyncio its clock is `loop.time()` (through anyio), its request deadlines are
cancellations, and `run(stop_event)` takes an `asyncio.Event`. `HttpGateway`
speaks the heartbeat over HTTP/1.1 on asyncio streams.

    loop = asyncio.get_running_loop()
    machine = HeartbeatMachine(interval=30.0, report_by_buffer=1.5,
                               initial_status="R", now=loop.time())
    driver = AsyncHeartbeatDriver(machine, gateway, on_event=print)
    task = asyncio.create_task(driver.run(stop_event))
"""

from ._async import AsyncHeartbeatDriver as AsyncHeartbeatDriver

__all__ = ["AsyncHeartbeatDriver"]
