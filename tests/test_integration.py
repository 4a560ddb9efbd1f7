"""sansbeat against a real HTTP server it did not write, over loopback.

The server (`tests/jobmon_server.py`) is the standard library's `http.server`
behaving like Jobmon's: renewals, refusals, signals, both connection behaviours.
These tests run in real time, so intervals are short; they wait on events the
application sees, with bounded timeouts, never on bare sleeps.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from sansbeat import Action, LeaseLapsed, LeaseRestored, StatusChanged
from sansbeat.adapters import HeartbeatRequestFailed, HeartbeatService
from sansbeat.adapters.http import HttpGateway
from sansbeat.adapters.testing import JobmonServer

RUN = 7
INTERVAL = 0.5
# A 2.5 s lease asked for; the server keeps whole seconds, so the client counts
# on 1.5 s (HeartbeatService's lease_margin of 1 s).
BUFFER = 5.0


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    """Real time: these tests talk to a real server on real sockets."""
    return request.param


@pytest.fixture(params=[False, True], ids=["close", "keep-alive"])
def server(request: pytest.FixtureRequest) -> Iterator[JobmonServer]:
    """A Jobmon-like server on 127.0.0.1, under /api/v3, with run 7 running."""
    with JobmonServer(
        prefix="/api/v3", keep_alive=request.param, idle_timeout=0.2
    ) as jobmon:
        jobmon.add_run(RUN, "R")
        yield jobmon


def _connections(jobmon: JobmonServer) -> list[int]:
    return [beat.connection_id for beat in jobmon.beats]


def test_sync_gateway_renews_and_reuses_connections_when_allowed(
    server: JobmonServer,
) -> None:
    with HttpGateway(server.base_url, RUN) as gateway:
        for _ in range(3):
            assert gateway.log_heartbeat_sync("R", 45.0).status == "R"
    beats = server.beats
    assert [beat.renewed for beat in beats] == [True, True, True]
    assert beats[0].next_report_increment == 45.0
    distinct = len(set(_connections(server)))
    assert distinct == (1 if server.keep_alive else 3)


@pytest.mark.anyio
async def test_async_gateway_renews_and_reuses_connections_when_allowed(
    server: JobmonServer,
) -> None:
    async with HttpGateway(server.base_url, RUN) as gateway:
        for _ in range(3):
            assert (await gateway.log_heartbeat("R", 45.0)).status == "R"
    assert [beat.renewed for beat in server.beats] == [True, True, True]
    distinct = len(set(_connections(server)))
    assert distinct == (1 if server.keep_alive else 3)


def test_a_refused_move_answers_the_held_status_without_renewal(
    server: JobmonServer,
) -> None:
    server.signal(RUN, "C")
    with HttpGateway(server.base_url, RUN) as gateway:
        assert gateway.log_heartbeat_sync("R", 45.0).status == "C"
    (beat,) = server.beats
    assert not beat.renewed


def test_server_errors_become_classified_failures(server: JobmonServer) -> None:
    with (
        HttpGateway(server.base_url, RUN + 1) as unknown_run,
        pytest.raises(HeartbeatRequestFailed) as raised,
    ):
        unknown_run.log_heartbeat_sync("R", 45.0)
    assert raised.value.reason == "http_status"
    assert raised.value.http_status == 500


def test_a_stopped_server_is_a_connect_failure(server: JobmonServer) -> None:
    server.stop()
    with (
        HttpGateway(server.base_url, RUN) as gateway,
        pytest.raises(HeartbeatRequestFailed) as raised,
    ):
        gateway.log_heartbeat_sync("R", 45.0)
    assert raised.value.reason in {"connect", "network"}


class _Story:
    """Waits on what the application hears: each kind of event, once."""

    def __init__(self) -> None:
        self.events: list[Action] = []
        self.heard: dict[type, threading.Event] = {k: threading.Event() for k in _KINDS}
        # Set in the event loop's thread by the async drivers' callbacks.
        self.heard_async: dict[type, anyio.Event] = {}

    def on_event(self, event: Action) -> None:
        self.events.append(event)
        self.heard[type(event)].set()
        if type(event) in self.heard_async:
            self.heard_async[type(event)].set()

    def wait(self, kind: type, timeout: float = 10.0) -> None:
        assert self.heard[kind].wait(timeout), f"no {kind.__name__} in {timeout} s"


_KINDS = (StatusChanged, LeaseLapsed, LeaseRestored)


def _assert_whole_story(story: _Story, jobmon: JobmonServer) -> None:
    kinds = [type(event) for event in story.events]
    assert kinds == [StatusChanged, LeaseLapsed, LeaseRestored]
    assert story.events[0] == StatusChanged(old="R", new="H")
    # After the resume signal the client reports H, which the server renews.
    assert [b.status_sent for b in jobmon.beats][-1] == "H"
    assert jobmon.beats[-1].renewed


def _service(gateway: HttpGateway, story: _Story, **options: Any) -> HeartbeatService:
    return HeartbeatService(
        gateway,
        interval=INTERVAL,
        report_by_buffer=BUFFER,
        initial_status="R",
        on_event=story.on_event,
        beat_at_start=True,
        backoff_initial=0.05,
        rng=random.Random(1),
        **options,
    )


def test_thread_driver_signal_outage_lapse_and_recovery(server: JobmonServer) -> None:
    story = _Story()
    gateway = HttpGateway(server.base_url, RUN)
    service = _service(gateway, story)
    stop = threading.Event()
    thread = threading.Thread(target=service.run_background_sync, args=(stop,))
    thread.start()
    try:
        server.wait_for_beats(1, timeout=5)
        server.signal(RUN, "H")
        story.wait(StatusChanged)
        server.stop()
        story.wait(LeaseLapsed)
        server.start()
        story.wait(LeaseRestored)
    finally:
        stop.set()
        thread.join(timeout=5)
        gateway.close()
    assert not thread.is_alive()
    _assert_whole_story(story, server)


@pytest.mark.anyio
async def test_async_driver_signal_outage_lapse_and_recovery(
    server: JobmonServer,
) -> None:
    story = _Story()
    story.heard_async = {kind: anyio.Event() for kind in _KINDS}
    gateway = HttpGateway(server.base_url, RUN)
    service = _service(gateway, story, clock=anyio.current_time)
    stop = anyio.Event()

    async def wait(kind: type) -> None:
        with anyio.fail_after(10):
            await story.heard_async[kind].wait()

    async with anyio.create_task_group() as task_group:
        task_group.start_soon(service.run_background, stop)
        await anyio.to_thread.run_sync(server.wait_for_beats, 1, 5.0)
        server.signal(RUN, "H")
        await wait(StatusChanged)
        server.stop()
        await wait(LeaseLapsed)
        server.start()
        await wait(LeaseRestored)
        stop.set()
    await gateway.aclose()
    _assert_whole_story(story, server)


def test_stopping_the_thread_driver_mid_request_is_prompt() -> None:
    # A server that accepts and never answers: the request blocks until stopped.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        gateway = HttpGateway(f"http://127.0.0.1:{port}", RUN)
        service = HeartbeatService(
            gateway,
            interval=30.0,
            report_by_buffer=1.5,
            initial_status="R",
            beat_at_start=True,
        )
        stop = threading.Event()
        thread = threading.Thread(target=service.run_background_sync, args=(stop,))
        thread.start()
        accepted, _ = listener.accept()
        with accepted:
            accepted.recv(4096)  # the request arrived; never answer it
            began = time.monotonic()
            stop.set()
            thread.join(timeout=5)
            assert time.monotonic() - began < 0.1
        gateway.close()
    assert not thread.is_alive()


def _keep_alive_dropping_idle() -> JobmonServer:
    # gunicorn-like, dropping a connection idle for 0.1 s: every beat at a 0.5 s
    # interval finds its connection gone and must replace it.
    server = JobmonServer(keep_alive=True, idle_timeout=0.1)
    server.start()
    server.add_run(RUN, "R")
    return server


def test_idle_drops_are_replaced_without_failures_sync() -> None:
    server = _keep_alive_dropping_idle()
    gateway = HttpGateway(server.base_url, RUN)
    service = _service(gateway, _Story())
    stop = threading.Event()
    thread = threading.Thread(target=service.run_background_sync, args=(stop,))
    thread.start()
    try:
        server.wait_for_beats(4, timeout=10)
    finally:
        stop.set()
        thread.join(timeout=5)
        gateway.close()
        server.stop()
    assert service.machine.stats.failures == 0
    assert len(set(_connections(server))) >= 4


@pytest.mark.anyio
async def test_idle_drops_are_replaced_without_failures_async() -> None:
    server = _keep_alive_dropping_idle()
    gateway = HttpGateway(server.base_url, RUN)
    service = _service(gateway, _Story(), clock=anyio.current_time)
    stop = anyio.Event()
    try:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(service.run_background, stop)
            await anyio.to_thread.run_sync(server.wait_for_beats, 4, 10.0)
            stop.set()
    finally:
        await gateway.aclose()
        server.stop()
    assert service.machine.stats.failures == 0
    assert len(set(_connections(server))) >= 4
