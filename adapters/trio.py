"""sansbeat on trio: the async driver on trio's clock.

`AsyncHeartbeatDriver` runs a `HeartbeatMachine` over any async gateway; under
trio its clock is `trio.current_time()` (through anyio, so `MockClock` gives
virtual time), its request deadlines are cancellations, and `run(stop_event)`
takes a `trio.Event`. Start it in a nursery, which owns it.

    machine = HeartbeatMachine(interval=30.0, report_by_buffer=1.5,
                               initial_status="R", now=trio.current_time())
    driver = AsyncHeartbeatDriver(machine, gateway, on_event=print)
    nursery.start_soon(driver.run, stop_event)
"""

from ._async import AsyncHeartbeatDriver as AsyncHeartbeatDriver

__all__ = ["AsyncHeartbeatDriver"]
