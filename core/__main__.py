"""`python -m sansbeat`: a heartbeat session, simulated and printed as a timeline.

One `HeartbeatMachine` (interval 30 s, report_by_buffer 1.5: the server is asked to
expect each next beat within 45 s) runs against `sansbeat.sim`'s Jobmon-like server,
whose reaper sweeps every 10 s. The story, in virtual time, takes no real time and
prints the same every run:

- beats every 30 s, renewed;
- at 75 s the server signals a hot resume ("H"); the next beat's "R" is refused and
  answered "H", which is a signal, not a renewal; the client adopts "H" at once;
- from 130 s the network refuses connections, and from 165 s requests hang: the
  client retries with jittered backoff inside what is left of its lease, learns
  the lapse the moment the lease runs out, and the server reaps the run ("E");
- at 255 s the network is back: the client's next beat is answered "E", so it
  learns it was reaped. Its "E" beat is then accepted (a move to the status held
  always is), which restores the lease of a run that is over: the application
  stops at 280 s.
"""

from __future__ import annotations

import random
from dataclasses import fields

from ._machine import HeartbeatMachine
from .sim import (
    OutageWindow,
    SimNetwork,
    SimServer,
    Simulation,
    SimulationResult,
    VirtualClock,
    format_timeline,
)

SEED = 7


def simulate() -> SimulationResult:
    """Run the story told in this module's docstring and return its result."""
    clock = VirtualClock()
    machine = HeartbeatMachine(
        interval=30.0,
        report_by_buffer=1.5,
        initial_status="R",
        now=clock.now,
        rng=random.Random(SEED),
    )
    network = SimNetwork(
        seed=SEED,
        latency_min=0.02,
        latency_max=0.12,
        outages=(
            OutageWindow(start=130.0, end=165.0, mode="refuse"),
            OutageWindow(start=165.0, end=255.0, mode="hang"),
        ),
    )
    simulation = Simulation(
        machine, clock=clock, server=SimServer(reap_period=10.0), network=network
    )
    simulation.schedule_signal(75.0, "H")
    simulation.schedule_stop(280.0)
    return simulation.run(until=300.0)


def main() -> int:
    """Print the simulated timeline and the machine's counters; return 0."""
    result = simulate()
    print("sansbeat: one heartbeat client against a simulated Jobmon server")
    print("interval 30 s, lease asked 45 s, reaper every 10 s; times are virtual;")
    print("an answer other than the status sent is a signal, not a renewal\n")
    print(format_timeline(result.timeline))
    print("\ncounters:")
    for field in fields(result.stats):
        value = getattr(result.stats, field.name)
        shown = f"{value:.3f} s" if isinstance(value, float) else str(value)
        print(f"  {field.name:<18} {shown}")
    for reap in result.reaps:
        print(f"reaped at {reap.time:.3f} s: run {reap.run_id} held {reap.status}")
    print(f"final status: client {result.client_status}, server {result.server_status}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
