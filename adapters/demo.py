"""The main job: a live heartbeat session against a Jobmon-like server on loopback.

`python -m sansbeat.adapters.demo` starts `sansbeat.adapters.testing.JobmonServer`
on 127.0.0.1, runs `HeartbeatService.run_background` on asyncio against it through
`HttpGateway`, and prints a timeline as it happens: beats and answers, a resume
signal from the server, an outage (the server is stopped, then started again on
the same port), the lapse and the recovery. It takes about 12 seconds and exits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

from sansbeat import Action, LeaseLapsed, LeaseRestored, StatusChanged

from .http import HttpGateway
from .service import HeartbeatService
from .testing import JobmonServer

RUN_ID = 1
INTERVAL = 1.0  # seconds between beats
BUFFER = 3.0  # the lease asked for: 3 s
SIGNAL_AT, OUTAGE_FROM, OUTAGE_TO, END = 3.2, 5.2, 9.6, 12.0  # seconds


class _Timeline:
    def __init__(self) -> None:
        self.start = time.monotonic()

    def say(self, what: str) -> None:
        print(f"{time.monotonic() - self.start:6.2f} s  {what}", flush=True)


class _ShowingGateway:
    """Wraps HttpGateway to print each exchange; the service sees no difference."""

    def __init__(self, gateway: HttpGateway, timeline: _Timeline) -> None:
        self._gateway = gateway
        self._timeline = timeline

    async def log_heartbeat(self, status: str, next_report_increment: float) -> object:
        say = self._timeline.say
        try:
            answer = await self._gateway.log_heartbeat(status, next_report_increment)
        except Exception as error:
            say(f"  beat {status!r} failed ({error})")
            raise
        renewed = "renewed" if answer.status == status else "NOT renewed (signal)"
        say(f"  beat {status!r} -> server holds {answer.status!r}: {renewed}")
        return answer


async def _main() -> None:
    timeline = _Timeline()
    say = timeline.say
    server = JobmonServer(prefix="/api/v3", keep_alive=True)
    await asyncio.to_thread(server.start)
    server.add_run(RUN_ID, "R")
    say(f"Jobmon-like server listening at {server.base_url}")

    loop = asyncio.get_running_loop()
    began = loop.time()

    def on_event(event: Action) -> None:
        match event:
            case StatusChanged(old=old, new=new):
                say(f"* status changed by the server: {old!r} -> {new!r}")
            case LeaseLapsed(deadline=deadline):
                say(f"* LEASE LAPSED at {deadline - began:.2f} s: the server may reap")
            case LeaseRestored(deadline=deadline):
                say(f"* lease restored, now live until {deadline - began:.2f} s")

    async with HttpGateway(server.base_url, RUN_ID) as gateway:
        service = HeartbeatService(
            _ShowingGateway(gateway, timeline),
            interval=INTERVAL,
            report_by_buffer=BUFFER,
            initial_status="R",
            on_event=on_event,
            clock=loop.time,
            beat_at_start=True,
            backoff_initial=0.25,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(service.run_background(stop))
        try:
            await asyncio.sleep(SIGNAL_AT)
            say("server: a hot resume is requested (run set to 'H')")
            server.signal(RUN_ID, "H")
            await asyncio.sleep(OUTAGE_FROM - SIGNAL_AT)
            say("server: DOWN")
            await asyncio.to_thread(server.stop)
            await asyncio.sleep(OUTAGE_TO - OUTAGE_FROM)
            await asyncio.to_thread(server.start)
            say("server: UP again, same port")
            await asyncio.sleep(END - OUTAGE_TO)
        finally:
            stop.set()
            await task
            await asyncio.to_thread(server.stop)
    stats = service.machine.stats
    say("stopped; the machine's counters:")
    for name, value in dataclasses.asdict(stats).items():
        print(f"           {name:>18} = {value:g}")


if __name__ == "__main__":
    asyncio.run(_main())
