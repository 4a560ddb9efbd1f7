"""Tests of the stand-in Jobmon server itself, over real sockets on 127.0.0.1.

The client side is the standard library's `http.client` (or a raw socket where the
exact bytes or the moment of a close matter), so that these tests do not depend on
sansbeat. Nothing sleeps: waits are bounded reads or condition waits.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from sansbeat.adapters.testing import (
    FINAL_STATUSES,
    STATUSES,
    TRANSITIONS,
    JobmonServer,
    Reap,
    move_allowed,
)

RUN = 1
#: Bound (seconds) on every wait for the server; only reached when a test fails.
PATIENCE = 5.0


@pytest.fixture
def server() -> Iterator[JobmonServer]:
    """A Werkzeug-like server under /api/v3 holding run 1 in status R."""
    with JobmonServer(prefix="/api/v3") as running:
        running.add_run(RUN, "R")
        yield running


@contextlib.contextmanager
def connect(server: JobmonServer) -> Iterator[http.client.HTTPConnection]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=PATIENCE)
    try:
        yield connection
    finally:
        connection.close()


def beat_path(server: JobmonServer, run_id: int = RUN) -> str:
    return f"{server.prefix}/workflow_run/{run_id}/log_heartbeat"


def beat_body(status: str = "R", increment: float = 45.0) -> bytes:
    return json.dumps({"status": status, "next_report_increment": increment}).encode()


def send(
    connection: http.client.HTTPConnection,
    path: str,
    body: bytes | None,
    *,
    method: str = "POST",
    content_type: str | None = "application/json",
) -> tuple[http.client.HTTPResponse, bytes]:
    headers = {} if content_type is None else {"Content-Type": content_type}
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    return response, response.read()


def beat(
    server: JobmonServer, status: str = "R", increment: float = 45.0, run_id: int = RUN
) -> str:
    """Send one beat on a fresh connection; the status answered."""
    with connect(server) as connection:
        response, body = send(
            connection, beat_path(server, run_id), beat_body(status, increment)
        )
    assert response.status == 200
    answer = json.loads(body)["status"]
    assert isinstance(answer, str)
    return answer


def read_until_eof(sock: socket.socket) -> bytes:
    """Everything the peer sends until it closes; TimeoutError if it does not."""
    sock.settimeout(PATIENCE)
    chunks = []
    while chunk := sock.recv(4096):
        chunks.append(chunk)
    return b"".join(chunks)


# -- The transition table ---------------------------------------------------------


def test_transition_table_covers_every_status_and_ends_stay_ended() -> None:
    assert set(TRANSITIONS) == set(STATUSES)
    assert all(targets <= set(STATUSES) for targets in TRANSITIONS.values())
    assert set("ADSET") == FINAL_STATUSES
    assert TRANSITIONS["R"] == set("DSECH")
    assert all(move_allowed(status, status) for status in STATUSES)
    assert not move_allowed("R", "X")


# -- Renewal and refusal ------------------------------------------------------------


def test_beat_in_held_status_renews_with_compact_json_and_content_length(
    server: JobmonServer,
) -> None:
    with connect(server) as connection:
        response, body = send(connection, beat_path(server), beat_body("R", 45.0))
    assert response.status == 200
    assert body == b'{"status":"R"}\n'
    assert response.getheader("Content-Length") == str(len(body))
    assert response.getheader("Transfer-Encoding") is None
    assert response.getheader("Content-Type") == "application/json"
    (logged,) = server.beats
    assert (logged.run_id, logged.status_sent, logged.next_report_increment) == (
        1,
        "R",
        45,
    )
    assert (logged.answer, logged.renewed) == ("R", True)
    assert server.deadline(RUN) == math.floor(logged.received_at + 45.0)


def test_allowed_move_takes_the_status_sent_and_renews(server: JobmonServer) -> None:
    assert beat(server, "D") == "D"
    assert server.status(RUN) == "D"
    (logged,) = server.beats
    assert logged.renewed
    assert server.deadline(RUN) == math.floor(logged.received_at + 45.0)


def test_refused_move_answers_held_status_and_does_not_extend(
    server: JobmonServer,
) -> None:
    beat(server, "D", increment=10.0)
    deadline_when_done = server.deadline(RUN)
    assert beat(server, "R", increment=99.0) == "D"
    assert server.status(RUN) == "D"
    assert server.deadline(RUN) == deadline_when_done
    assert not server.beats[-1].renewed


@pytest.mark.parametrize("increment", [45, 2.4, 0.5, 0.001])
def test_deadline_is_receipt_plus_increment_rounded_down_to_whole_seconds(
    server: JobmonServer, increment: float
) -> None:
    beat(server, "R", increment)
    (logged,) = server.beats
    exact = logged.received_at + increment
    deadline = server.deadline(RUN)
    assert deadline is not None
    assert deadline.is_integer()
    assert exact - 1 < deadline <= exact


def test_content_type_with_charset_parameter_is_json(server: JobmonServer) -> None:
    with connect(server) as connection:
        response, _ = send(
            connection,
            beat_path(server),
            beat_body(),
            content_type="application/json; charset=utf-8",
        )
    assert response.status == 200
    assert len(server.beats) == 1


# -- Requests that are not beats ----------------------------------------------------

VALID = beat_body()
ROUTE = "{prefix}/workflow_run/1/log_heartbeat"


@pytest.mark.parametrize(
    ("method", "path", "content_type", "body", "code"),
    [
        pytest.param("POST", ROUTE, None, VALID, 500, id="no-content-type"),
        pytest.param("POST", ROUTE, "text/plain", VALID, 500, id="text-content-type"),
        pytest.param("POST", ROUTE, "application/json", b"R,45", 400, id="not-json"),
        pytest.param("POST", ROUTE, "application/json", b"", 400, id="empty-body"),
        pytest.param("POST", ROUTE, "application/json", b'["R"]', 400, id="array"),
        pytest.param(
            "POST",
            ROUTE,
            "application/json",
            b'{"next_report_increment": 45}',
            400,
            id="no-status",
        ),
        pytest.param(
            "POST",
            ROUTE,
            "application/json",
            b'{"status": "R"}',
            400,
            id="no-increment",
        ),
        pytest.param(
            "POST",
            ROUTE,
            "application/json",
            b'{"status": 5, "next_report_increment": 45}',
            400,
            id="status-not-text",
        ),
        pytest.param(
            "POST",
            ROUTE,
            "application/json",
            b'{"status": "R", "next_report_increment": "45"}',
            400,
            id="increment-text",
        ),
        pytest.param(
            "POST",
            ROUTE,
            "application/json",
            b'{"status": "R", "next_report_increment": true}',
            400,
            id="increment-bool",
        ),
        pytest.param(
            "POST",
            ROUTE,
            "application/json",
            b'{"status": "R", "next_report_increment": NaN}',
            400,
            id="increment-nan",
        ),
        pytest.param(
            "POST",
            "{prefix}/workflow_run/999/log_heartbeat",
            "application/json",
            VALID,
            500,
            id="unknown-run",
        ),
        pytest.param(
            "POST",
            "{prefix}/workflow_run/one/log_heartbeat",
            "application/json",
            VALID,
            500,
            id="run-not-a-number",
        ),
        pytest.param("GET", ROUTE, None, None, 500, id="get"),
        pytest.param("PUT", ROUTE, "application/json", VALID, 500, id="put"),
        pytest.param(
            "POST",
            "/workflow_run/1/log_heartbeat",
            "application/json",
            VALID,
            404,
            id="no-prefix",
        ),
    ],
)
def test_malformed_request_is_refused_and_changes_nothing(
    server: JobmonServer,
    method: str,
    path: str,
    content_type: str | None,
    body: bytes | None,
    code: int,
) -> None:
    with connect(server) as connection:
        response, answer = send(
            connection,
            path.format(prefix=server.prefix),
            body,
            method=method,
            content_type=content_type,
        )
    assert response.status == code
    assert response.getheader("Content-Type") == "application/json"
    assert answer.endswith(b"\n")
    assert "error" in json.loads(answer)
    assert server.beats == ()
    assert (server.status(RUN), server.deadline(RUN)) == ("R", None)


def test_chunked_body_is_refused_and_the_connection_closed(
    server: JobmonServer,
) -> None:
    request = (
        (
            f"POST {beat_path(server)} HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            f"{len(VALID):x}\r\n"
        ).encode()
        + VALID
        + b"\r\n0\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=PATIENCE) as sock:
        sock.sendall(request)
        reply = read_until_eof(sock)
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert server.beats == ()


# -- Connections ------------------------------------------------------------------


def test_close_mode_sends_connection_close_then_closes() -> None:
    with JobmonServer() as server:
        server.add_run(RUN)
        request = (
            f"POST {beat_path(server)} HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(VALID)}\r\n\r\n"
        ).encode() + VALID
        with socket.create_connection(
            ("127.0.0.1", server.port), timeout=PATIENCE
        ) as sock:
            sock.sendall(request)
            reply = read_until_eof(sock)  # the server closes first
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"\r\nConnection: close" in head
        assert b"\r\nContent-Length: 15" in head
        assert body == b'{"status":"R"}\n'
        # http.client reconnects after a close: each beat gets its own connection.
        beat(server)
        beat(server)
        assert len({logged.connection_id for logged in server.beats}) == 3


def test_keep_alive_answers_two_requests_on_one_connection() -> None:
    with JobmonServer(keep_alive=True) as server:
        server.add_run(RUN)
        with connect(server) as connection:
            first, _ = send(connection, beat_path(server), beat_body())
            first_socket = connection.sock
            second, body = send(connection, beat_path(server), beat_body())
            assert connection.sock is first_socket
        assert first.getheader("Connection") == "keep-alive"
        assert (second.status, body) == (200, b'{"status":"R"}\n')
        one, two = server.beats
        assert one.connection_id == two.connection_id


def test_keep_alive_drops_a_connection_idle_for_idle_timeout() -> None:
    idle_timeout = 0.2
    with JobmonServer(keep_alive=True, idle_timeout=idle_timeout) as server:
        server.add_run(RUN)
        with connect(server) as connection:
            send(connection, beat_path(server), beat_body())
            answered_at = time.monotonic()
            assert connection.sock is not None
            assert read_until_eof(connection.sock) == b""
            idle = time.monotonic() - answered_at
    # The server's idle clock starts a little before the client's.
    assert idle_timeout / 2 <= idle < PATIENCE


def test_keep_alive_honours_a_client_connection_close() -> None:
    with JobmonServer(keep_alive=True) as server:
        server.add_run(RUN)
        with connect(server) as connection:
            connection.request(
                "POST",
                beat_path(server),
                body=VALID,
                headers={"Content-Type": "application/json", "Connection": "close"},
            )
            response = connection.getresponse()
            response.read()
        assert response.getheader("Connection") == "close"


# -- Signals and the reaper -----------------------------------------------------------


def test_signal_is_answered_without_renewal_until_the_run_moves_on(
    server: JobmonServer,
) -> None:
    assert server.signal(RUN, "C")
    assert beat(server, "R") == "C"
    assert not server.beats[-1].renewed
    assert server.deadline(RUN) is None
    assert beat(server, "T") == "T"
    assert server.beats[-1].renewed


def test_signal_obeys_the_transition_table(server: JobmonServer) -> None:
    beat(server, "D")
    assert not server.signal(RUN, "H")  # done is final
    assert server.status(RUN) == "D"
    assert beat(server, "D") == "D"


def test_signal_and_add_run_refuse_unknown_statuses(server: JobmonServer) -> None:
    with pytest.raises(ValueError, match="status must be one of"):
        server.signal(RUN, "X")
    with pytest.raises(ValueError, match="status must be one of"):
        server.add_run(2, "running")
    with pytest.raises(KeyError):
        server.signal(2, "C")
    assert server.status(RUN) == "R"


def test_reap_marks_runs_lost_once_their_deadline_passed(server: JobmonServer) -> None:
    server.add_run(2, "R")  # never beats: no deadline, never reaped
    server.add_run(3, "R")
    server.add_run(4, "R")
    beat(server, "R", 2.0)
    beat(server, "D", 2.0, run_id=3)  # done is final: never reaped
    beat(server, "R", 9.0, run_id=4)
    assert server.signal(4, "H")  # asked to resume, never acknowledged
    deadline, resume_deadline = server.deadline(RUN), server.deadline(4)
    assert deadline is not None
    assert resume_deadline is not None
    assert server.reap(now=deadline - 0.001) == ()
    assert server.status(RUN) == "R"
    reaped = server.reap(now=deadline)
    assert reaped == (Reap(at=deadline, run_id=RUN, old_status="R", deadline=deadline),)
    assert server.reap(now=resume_deadline) == (
        Reap(at=resume_deadline, run_id=4, old_status="H", deadline=resume_deadline),
    )
    assert len(server.reaps) == 2
    assert server.reap(now=resume_deadline + 1000.0) == ()
    assert [server.status(run) for run in (1, 2, 3, 4)] == ["E", "R", "D", "E"]
    # A lost run refuses to run again, and its deadline stays.
    assert beat(server, "R") == "E"
    assert server.deadline(RUN) == deadline


def test_background_reaper_marks_a_lapsed_run_lost() -> None:
    with JobmonServer(reap_period=0.02) as server:
        server.add_run(RUN)
        beat(server, "R", 0.1)  # the deadline is at most 0.1 s after the receipt
        (reaped,) = server.wait_for_reaps(1, PATIENCE)
        assert (reaped.run_id, reaped.old_status) == (RUN, "R")
        assert server.status(RUN) == "E"


def test_wait_for_beats_wakes_on_a_beat_and_times_out_without_one(
    server: JobmonServer,
) -> None:
    with pytest.raises(TimeoutError, match="0 beats"):
        server.wait_for_beats(1, timeout=0.05)
    sender = threading.Thread(target=beat, args=(server,))
    wait_began = time.monotonic()
    sender.start()
    try:
        (logged,) = server.wait_for_beats(1, PATIENCE)
    finally:
        sender.join()
    # Woken by the beat, not by the timeout (after which the count is checked too).
    assert time.monotonic() - wait_began < PATIENCE / 2
    assert logged.answer == "R"


# -- Lifecycle ----------------------------------------------------------------------


def test_stop_then_start_serves_the_same_port_and_keeps_the_runs(
    server: JobmonServer,
) -> None:
    beat(server)
    port = server.port
    server.stop()
    assert not server.running
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", port), timeout=PATIENCE),
    ):
        pass
    server.signal(RUN, "H")
    server.start()
    assert server.port == port
    assert server.base_url == f"http://127.0.0.1:{port}/api/v3"
    assert beat(server) == "H"
    assert len(server.beats) == 2


def test_stop_is_prompt_and_leaves_no_thread_with_an_idle_keep_alive_connection() -> (
    None
):
    threads_before = set(threading.enumerate())
    server = JobmonServer(keep_alive=True, idle_timeout=30.0, reap_period=30.0)
    server.start()
    try:
        server.add_run(RUN)
        with connect(server) as connection:
            send(connection, beat_path(server), beat_body())
            assert len(set(threading.enumerate()) - threads_before) == 3
            stop_began = time.monotonic()
            server.stop()
            stop_took = time.monotonic() - stop_began
            assert connection.sock is not None
            assert read_until_eof(connection.sock) == b""
    finally:
        server.stop()
    assert stop_took < 1.0
    assert set(threading.enumerate()) - threads_before == set()


def test_start_twice_is_refused_and_stop_twice_is_harmless(
    server: JobmonServer,
) -> None:
    with pytest.raises(RuntimeError, match="already running"):
        server.start()
    server.stop()
    server.stop()
    assert not server.running


@pytest.mark.parametrize(
    "arguments",
    [
        {"prefix": "api"},
        {"prefix": "/api/"},
        {"idle_timeout": 0.0},
        {"reap_period": -1.0},
    ],
)
def test_invalid_configuration_is_refused(arguments: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must be"):
        JobmonServer(**arguments)  # type: ignore[arg-type]
