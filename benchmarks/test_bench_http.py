"""The heartbeat's HTTP cost: the wire codec alone, and one heartbeat over loopback.

Codec. A cycle is one heartbeat exchange with no I/O: render the request, then
parse a Jobmon answer to the status. The baseline does the same with h11 the
obvious way (build the `Request` and `Data` events, encode the JSON, `send` them,
feed the response, pull events, decode the JSON). Both run in two shapes: on one
kept-alive connection (gunicorn), and on a new connection per heartbeat that the
server closes (Werkzeug's `Connection: close`). Target (from the codec issue): the
codec's cycle costs no more than the plain h11 cycle; it should cost much less,
since it renders each distinct request only once and reads a plain answer such as
these without h11 (the codec's fast path).

Loopback. One heartbeat is a POST of `{"status": "R", "next_report_increment":
45.0}` to `{base}/workflow_run/42/log_heartbeat` and the read of its JSON answer,
on a kept-alive connection, against one local server (benchmarks/heartbeat_server.py)
that runs in a subprocess, so the figure is the client's CPU alone: each round
reads `time.process_time()` around `_BEATS` heartbeats (on the event loop's
thread for the async clients), and the summary prints the median over rounds per
heartbeat, with pytest-benchmark's wall-clock median beside it. The async clients
run on anyio blocking portals (an event loop in a thread), one `portal.call` per
round, outside the CPU reading. Every connection is opened by an untimed heartbeat
before the rounds; the server's counters check afterwards that every heartbeat
arrived and that no connection was opened during them.

Each benchmark with a baseline runs an untimed round of the aiohttp baseline (one
session for the module, on its own event loop) before each of its own rounds, and
the ratio is taken between those interleaved medians: on a shared machine, two
benchmarks run one after the other can see loads that differ by more than the
margins being checked, while interleaved rounds see the same load.

Clients: `HttpGateway.log_heartbeat_sync`; `await HttpGateway.log_heartbeat` on
asyncio and on trio; the baseline, aiohttp's `ClientSession` on asyncio (the client
Jobmon uses, as Jobmon calls it: `session.post(url, json=..., headers=...)` and
`await response.json()`, one session for all heartbeats, no retry wrapper); and,
for context only, the standard library's `http.client`. Every client sends the
same Content-Type and User-Agent; aiohttp and http.client add their usual headers.

Targets (from the HTTP issue): client CPU per heartbeat at most 0.5 of aiohttp's
for the sync gateway and at most 0.7 of it on asyncio and on trio. aiohttp is a
benchmark-only extra: without it its benchmark is skipped and the gateways' figures
are printed without a ratio.
"""

from __future__ import annotations

import http.client
import importlib
import json
import selectors
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.from_thread
import h11
import pytest

from sansbeat import SendHeartbeat
from sansbeat._http import USER_AGENT, Answered, HeartbeatConnection, HeartbeatEndpoint
from sansbeat.adapters.http import HttpGateway

_CALLS = 200
_ROUNDS = {"rounds": 40, "warmup_rounds": 2}
_TARGET = "/api/v3/workflow_run/42/log_heartbeat"
_AUTHORIZATION = "Bearer 0123456789abcdef"
_BEAT = SendHeartbeat(seq=1, status="R", next_report_increment=45.0, deadline=1e9)
_GUNICORN = (
    b"HTTP/1.1 200 OK\r\nServer: gunicorn\r\nDate: Tue, 01 Dec 2026 09:00:00 GMT\r\n"
    b"Connection: keep-alive\r\nContent-Type: application/json\r\n"
    b'Content-Length: 15\r\n\r\n{"status":"R"}\n'
)
_WERKZEUG = (
    b"HTTP/1.1 200 OK\r\nServer: Werkzeug/3.0.1 Python/3.11.9\r\n"
    b"Date: Tue, 01 Dec 2026 09:00:00 GMT\r\nContent-Type: application/json\r\n"
    b'Content-Length: 15\r\nConnection: close\r\n\r\n{"status":"R"}\n'
)


def _endpoint() -> HeartbeatEndpoint:
    return HeartbeatEndpoint.from_url(
        "http://jobmon.test:5000/api/v3",
        run_id=42,
        extra_headers=[("Authorization", _AUTHORIZATION)],
    )


def _h11_cycle(conn: h11.Connection, answer: bytes) -> str:
    """One heartbeat with h11 used directly: returns the server's status."""
    body = json.dumps({"status": "R", "next_report_increment": 45.0}).encode()
    request = h11.Request(
        method="POST",
        target=_TARGET,
        headers=[
            ("Host", "jobmon.test:5000"),
            ("User-Agent", USER_AGENT),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Authorization", _AUTHORIZATION),
        ],
    )
    wire = conn.send(request)
    more = conn.send(h11.Data(data=body))
    end = conn.send(h11.EndOfMessage())
    assert wire
    assert more
    assert end is not None
    conn.receive_data(answer)
    received = b""
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Data):
            received += event.data
        elif isinstance(event, h11.EndOfMessage):
            break
    status: str = json.loads(received)["status"]
    return status


def _measure(
    benchmark: Any,
    cycle: Callable[[], object],
    baseline: str | None = None,
    target_ratio: float | None = None,
) -> None:
    def run() -> None:
        for _ in range(_CALLS):
            cycle()

    benchmark.extra_info.update(
        calls_per_round=_CALLS, baseline=baseline, target_ratio=target_ratio
    )
    benchmark.pedantic(run, **_ROUNDS)


def test_h11_cycle_keep_alive(benchmark: Any) -> None:
    conn = h11.Connection(our_role=h11.CLIENT)

    def cycle() -> None:
        assert _h11_cycle(conn, _GUNICORN) == "R"
        conn.start_next_cycle()

    _measure(benchmark, cycle)


def test_codec_cycle_keep_alive(benchmark: Any) -> None:
    conn = HeartbeatConnection(_endpoint())

    def cycle() -> None:
        conn.request_bytes(_BEAT)
        outcome = conn.receive_data(_GUNICORN)
        assert type(outcome) is Answered
        assert outcome.keep_alive

    _measure(benchmark, cycle, "test_h11_cycle_keep_alive", 1.0)


def test_h11_cycle_new_connection(benchmark: Any) -> None:
    def cycle() -> None:
        conn = h11.Connection(our_role=h11.CLIENT)
        assert _h11_cycle(conn, _WERKZEUG) == "R"
        assert conn.our_state is h11.MUST_CLOSE

    _measure(benchmark, cycle)


def test_codec_cycle_new_connection(benchmark: Any) -> None:
    endpoint = _endpoint()

    def cycle() -> None:
        conn = HeartbeatConnection(endpoint)
        conn.request_bytes(_BEAT)
        outcome = conn.receive_data(_WERKZEUG)
        assert type(outcome) is Answered
        assert not outcome.keep_alive

    _measure(benchmark, cycle, "test_h11_cycle_new_connection", 1.0)


# ---------------------------------------------------------------- loopback

_BEATS = 200
_LOOPBACK_ROUNDS = 25
_LOOPBACK_WARMUP = 2
_AIOHTTP = "test_loopback_aiohttp_asyncio"
_PREFIX = "/api/v3"
_RUN_ID = 42
_PAYLOAD = {"status": "R", "next_report_increment": 45.0}
_HEADERS = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
_SERVER_SCRIPT = Path(__file__).with_name("heartbeat_server.py")
_SERVER_START_SECONDS = 30.0
_SERVER_STOP_SECONDS = 10.0


@dataclass(frozen=True)
class _Counts:
    beats: int
    beat_connections: int


@dataclass(frozen=True)
class _Server:
    """The subprocess server on 127.0.0.1:`port`."""

    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{_PREFIX}"

    @property
    def route(self) -> str:
        return f"{_PREFIX}/workflow_run/{_RUN_ID}/log_heartbeat"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.route}"

    def counts(self) -> _Counts:
        """The server's counters, read on a connection of its own."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", "/_stats")
            response = conn.getresponse()
            document = json.loads(response.read())
        finally:
            conn.close()
        assert response.status == 200, document
        return _Counts(document["beats"], document["beat_connections"])


def _read_port(process: subprocess.Popen[str]) -> int:
    stdout = process.stdout
    assert stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(stdout, selectors.EVENT_READ)
        if not selector.select(_SERVER_START_SECONDS):
            raise RuntimeError("the benchmark server did not report its port")
    line = stdout.readline()
    if not line.strip().isdigit():
        process.poll()
        raise RuntimeError(
            f"the benchmark server failed to start (exit code {process.returncode}, "
            f"said {line!r})"
        )
    return int(line)


def _stop(process: subprocess.Popen[str]) -> None:
    """Close the server's stdin (it exits at end of file); terminate, then kill."""
    if process.stdin is not None:
        process.stdin.close()
    try:
        process.wait(_SERVER_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            process.wait(_SERVER_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


@pytest.fixture(scope="module")
def heartbeat_server() -> Iterator[_Server]:
    """One server for every loopback benchmark of the module, always stopped."""
    process = subprocess.Popen(
        [sys.executable, str(_SERVER_SCRIPT), "--prefix", _PREFIX],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield _Server(_read_port(process))
    finally:
        _stop(process)


@dataclass(frozen=True)
class _Client:
    """A heartbeat client: `warm_up` logs one heartbeat (opening the connection);
    `run_round` logs `_BEATS` and returns the process CPU seconds they took."""

    warm_up: Callable[[], None]
    run_round: Callable[[], float]


def _sync_client(beat: Callable[[], None]) -> _Client:
    def run_round() -> float:
        start = time.process_time()
        for _ in range(_BEATS):
            beat()
        return time.process_time() - start

    return _Client(beat, run_round)


def _async_client(
    portal: anyio.from_thread.BlockingPortal, beat: Callable[[], Awaitable[None]]
) -> _Client:
    async def beats() -> float:
        start = time.process_time()
        for _ in range(_BEATS):
            await beat()
        return time.process_time() - start

    def warm_up() -> None:
        portal.call(beat)

    def run_round() -> float:
        return portal.call(beats)

    return _Client(warm_up, run_round)


@pytest.fixture(scope="module")
def aiohttp_client(heartbeat_server: _Server) -> Iterator[_Client | None]:
    """aiohttp on an asyncio event loop of its own, one session for the module;
    None without aiohttp."""
    try:
        aiohttp = importlib.import_module("aiohttp")
    except ModuleNotFoundError:
        yield None
        return
    url = heartbeat_server.url
    with anyio.from_thread.start_blocking_portal("asyncio") as portal:

        async def open_session() -> Any:
            return aiohttp.ClientSession()

        session = portal.call(open_session)
        try:

            async def beat() -> None:
                async with session.post(url, json=_PAYLOAD, headers=_HEADERS) as answer:
                    document = await answer.json()
                assert answer.status == 200
                assert document["status"] == "R"

            yield _async_client(portal, beat)
        finally:
            portal.call(session.close)


def _record_loopback(
    benchmark: Any,
    server: _Server,
    client: _Client,
    baseline: _Client | None = None,
    target_ratio: float | None = None,
) -> None:
    """Benchmark `client.run_round`, each round preceded by an untimed round of
    `baseline` (when given) so that both see the same machine."""
    cpu: list[float] = []
    baseline_cpu: list[float] = []

    def run() -> None:
        cpu.append(client.run_round())

    def run_baseline() -> None:
        assert baseline is not None
        baseline_cpu.append(baseline.run_round())

    client.warm_up()
    before = server.counts()
    benchmark.pedantic(
        run,
        setup=None if baseline is None else run_baseline,
        rounds=_LOOPBACK_ROUNDS,
        warmup_rounds=_LOOPBACK_WARMUP,
    )
    after = server.counts()
    # Every heartbeat arrived, and all on connections opened before the rounds.
    # (With --benchmark-disable, pedantic runs one round.)
    assert after.beats - before.beats == _BEATS * (len(cpu) + len(baseline_cpu))
    assert after.beat_connections == before.beat_connections
    info: dict[str, object] = {
        "calls_per_round": _BEATS,
        "cpu_per_call": statistics.median(cpu[-_LOOPBACK_ROUNDS:]) / _BEATS,
    }
    if baseline_cpu:
        info["baseline_cpu_per_call"] = (
            statistics.median(baseline_cpu[-_LOOPBACK_ROUNDS:]) / _BEATS
        )
    if baseline is not None or target_ratio is not None:
        info.update(baseline=_AIOHTTP, target_ratio=target_ratio)
    benchmark.extra_info.update(info)


def test_loopback_aiohttp_asyncio(
    benchmark: Any, heartbeat_server: _Server, aiohttp_client: _Client | None
) -> None:
    pytest.importorskip("aiohttp")
    assert aiohttp_client is not None
    _record_loopback(benchmark, heartbeat_server, aiohttp_client)


def test_loopback_gateway_sync(
    benchmark: Any, heartbeat_server: _Server, aiohttp_client: _Client | None
) -> None:
    with HttpGateway(heartbeat_server.base_url, _RUN_ID) as gateway:

        def beat() -> None:
            assert gateway.log_heartbeat_sync("R", 45.0).status == "R"

        _record_loopback(
            benchmark, heartbeat_server, _sync_client(beat), aiohttp_client, 0.5
        )


def _gateway_async(
    benchmark: Any,
    server: _Server,
    aiohttp_client: _Client | None,
    backend: str,
    target_ratio: float,
) -> None:
    gateway = HttpGateway(server.base_url, _RUN_ID)
    with anyio.from_thread.start_blocking_portal(backend) as portal:
        try:

            async def beat() -> None:
                answer = await gateway.log_heartbeat("R", 45.0)
                assert answer.status == "R"

            _record_loopback(
                benchmark,
                server,
                _async_client(portal, beat),
                aiohttp_client,
                target_ratio,
            )
        finally:
            portal.call(gateway.aclose)


def test_loopback_gateway_asyncio(
    benchmark: Any, heartbeat_server: _Server, aiohttp_client: _Client | None
) -> None:
    _gateway_async(benchmark, heartbeat_server, aiohttp_client, "asyncio", 0.7)


def test_loopback_gateway_trio(
    benchmark: Any, heartbeat_server: _Server, aiohttp_client: _Client | None
) -> None:
    pytest.importorskip("trio")
    _gateway_async(benchmark, heartbeat_server, aiohttp_client, "trio", 0.7)


def test_loopback_http_client_sync(
    benchmark: Any, heartbeat_server: _Server, aiohttp_client: _Client | None
) -> None:
    """For context: the standard library's blocking client, no target."""
    conn = http.client.HTTPConnection("127.0.0.1", heartbeat_server.port, timeout=10)
    route = heartbeat_server.route
    try:

        def beat() -> None:
            conn.request("POST", route, json.dumps(_PAYLOAD).encode(), _HEADERS)
            answer = conn.getresponse()
            document = json.loads(answer.read())
            assert answer.status == 200
            assert document["status"] == "R"

        _record_loopback(
            benchmark, heartbeat_server, _sync_client(beat), aiohttp_client
        )
    finally:
        conn.close()
