"""The thread driver against an in-memory blocking server, in real time.

Intervals are tens of milliseconds so each test takes a fraction of a second; the
tests wait on the gateway's condition variable (bounded), never on a bare sleep.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sansbeat import Action, HeartbeatMachine, StatusChanged
from sansbeat.adapters import HeartbeatRequestFailed
from sansbeat.adapters.sync import SyncHeartbeatDriver
from tests.gateways import Answer, Fail, Hang, Outcome, Script, SyncScriptedGateway

INTERVAL = 0.05


@contextmanager
def running(
    script: Script, *, request_timeout: float = 10.0
) -> Iterator[tuple[SyncScriptedGateway, SyncHeartbeatDriver, list[Action]]]:
    """A driver running in a background thread; stopped and joined on exit."""
    gateway = SyncScriptedGateway(script)
    machine = HeartbeatMachine(
        interval=INTERVAL,
        report_by_buffer=3.0,
        initial_status="R",
        now=time.monotonic(),
        request_timeout=request_timeout,
        backoff_initial=0.01,
        rng=random.Random(3),
    )
    events: list[Action] = []
    driver = SyncHeartbeatDriver(machine, gateway, on_event=events.append)
    stop = threading.Event()
    thread = threading.Thread(target=driver.run, args=(stop,))
    thread.start()
    try:
        yield gateway, driver, events
    finally:
        stop.set()
        thread.join(timeout=5)
        assert not thread.is_alive()


def test_beats_go_out_at_the_cadence() -> None:
    with running(lambda at, status: Answer()) as (gateway, driver, _):
        assert gateway.wait_for_calls(5)
    times = [call.at for call in gateway.calls[:5]]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Measured from each send, so the gaps are the interval plus thread wake-up
    # lateness, which never accumulates.
    assert all(INTERVAL - 1e-3 <= gap < INTERVAL + 0.04 for gap in gaps)
    assert times[-1] - times[0] < 4 * INTERVAL + 0.04
    assert driver.machine.stats.renewals >= 5


def test_status_set_from_another_thread_goes_out_at_once() -> None:
    with running(lambda at, status: Answer()) as (gateway, driver, _):
        assert gateway.wait_for_calls(1)
        asked = time.monotonic() - gateway.start
        driver.set_status("D")
        assert gateway.wait_for_calls(2)
    second = gateway.calls[1]
    assert second.status == "D"
    assert second.at - asked < INTERVAL / 2


def test_server_signal_is_reported_and_adopted() -> None:
    def script(at: float, status: str) -> Outcome:
        return Answer("H") if status == "R" else Answer()

    with running(script) as (gateway, driver, events):
        assert gateway.wait_for_calls(2)
    assert events[0] == StatusChanged(old="R", new="H")
    assert gateway.calls[1].status == "H"
    assert driver.machine.current_status == "H"


def test_failures_never_stop_the_loop() -> None:
    def script(at: float, status: str) -> Outcome:
        return Fail(HeartbeatRequestFailed("connect", "refused"))

    with running(script) as (gateway, driver, _):
        assert gateway.wait_for_calls(6)
    assert driver.machine.stats.failures >= 5


def test_a_request_is_bounded_by_its_deadline() -> None:
    with running(lambda at, status: Hang(), request_timeout=0.02) as (gateway, _, _):
        assert gateway.wait_for_calls(2)
    timeout = gateway.timeouts[0]
    assert timeout is not None
    assert 0 < timeout <= 0.02


def test_stop_is_prompt_in_the_middle_of_a_request() -> None:
    gateway = SyncScriptedGateway(lambda at, status: Hang())
    machine = HeartbeatMachine(
        interval=INTERVAL,
        report_by_buffer=3.0,
        initial_status="R",
        now=time.monotonic(),
        beat_at_start=True,
    )
    driver = SyncHeartbeatDriver(machine, gateway)
    stop = threading.Event()
    thread = threading.Thread(target=driver.run, args=(stop,))
    before = threading.active_count()
    thread.start()
    assert gateway.wait_for_calls(1)
    stopped_at = time.monotonic()
    stop.set()
    thread.join(timeout=5)
    assert time.monotonic() - stopped_at < 0.05
    assert gateway.calls[0].finished
    assert threading.active_count() == before
