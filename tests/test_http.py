"""The HTTP/1.1 wire codec: requests, every outcome, reuse, fuzzing, interop.

Responses are fed the h11 way: all at once, one byte at a time, and with trailing
garbage; the outcome must not depend on how the bytes were split.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.metadata
import itertools
import json
import math
import re
import socket
import threading
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sansbeat import SendHeartbeat, UsageError
from sansbeat._http import (
    DEFAULT_MAX_BODY_BYTES,
    USER_AGENT,
    Answered,
    Failed,
    HeartbeatConnection,
    HeartbeatEndpoint,
    Outcome,
    parse_base_url,
)
from sansbeat._machine import MAX_TIME
from sansbeat.adapters import HeartbeatRequestFailed
from sansbeat.adapters.http import HttpGateway

REASONS = {
    "http_status",
    "malformed_body",
    "body_too_large",
    "closed_before_response",
    "closed_early",
    "protocol_error",
}
ENDPOINT = HeartbeatEndpoint.from_url(
    "http://jobmon.test:5000/api/v3/",
    run_id=42,
    extra_headers=[("Authorization", "Bearer t0k3n")],
)
SPLITS = ["whole", "bytewise"]


def beat(seq: int = 1, status: str = "R", increment: float = 45.0) -> SendHeartbeat:
    return SendHeartbeat(
        seq=seq, status=status, next_report_increment=increment, deadline=100.0
    )


def response(
    status_line: bytes = b"HTTP/1.1 200 OK",
    body: bytes = b'{"status":"R"}\n',
    headers: Iterable[bytes] = (),
    *,
    content_length: bool = True,
) -> bytes:
    """A response as Jobmon sends it: compact JSON, a Content-Length."""
    lines = [status_line, b"Content-Type: application/json", *headers]
    if content_length:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def chunked(status_line: bytes, chunks: Iterable[bytes], trailer: bytes = b"") -> bytes:
    head = status_line + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks)
    return head + body + b"0\r\n" + trailer + b"\r\n"


def pieces(data: bytes, split: str) -> list[bytes]:
    if split == "whole":
        return [data] if data else []
    return [data[i : i + 1] for i in range(len(data))]


def split_cases(*small: bytes, large: Iterable[bytes] = ()) -> list[Any]:
    """Parameters (split, data): small inputs both ways, large ones whole only."""
    cases = [(split, data) for data in small for split in SPLITS]
    cases += [("whole", data) for data in large]
    return [pytest.param(*case, id=f"{case[0]}-{n}") for n, case in enumerate(cases)]


def feed(conn: HeartbeatConnection, chunks: Iterable[bytes]) -> tuple[Outcome, int]:
    """Feed `chunks` until an outcome; return it and how many chunks it took."""
    used = 0
    for chunk in chunks:
        used += 1
        outcome = conn.receive_data(chunk)
        if outcome is not None:
            return outcome, used
    raise AssertionError(f"no outcome after {used} chunks")


def exchange(
    data: bytes,
    split: str = "whole",
    *,
    eof: bool = False,
    endpoint: HeartbeatEndpoint = ENDPOINT,
) -> Outcome:
    """One heartbeat on a new connection; the outcome must come at the last byte."""
    conn = HeartbeatConnection(endpoint)
    conn.request_bytes(beat())
    chunks = pieces(data, split) + ([b""] if eof else [])
    outcome, used = feed(conn, chunks)
    assert used == len(chunks), "the outcome came before the response was complete"
    assert conn.reusable is outcome.keep_alive
    return outcome


def failure(outcome: Outcome | None) -> Failed:
    assert isinstance(outcome, Failed), outcome
    return outcome


def parse_request(data: bytes) -> tuple[h11.Request, bytes]:
    """Read our request back with h11 as a server would."""
    server = h11.Connection(our_role=h11.SERVER)
    server.receive_data(data)
    request = server.next_event()
    assert isinstance(request, h11.Request)
    body = b""
    while True:
        event = server.next_event()
        if isinstance(event, h11.EndOfMessage):
            break
        assert isinstance(event, h11.Data), event
        body += event.data
    assert server.trailing_data == (b"", False)  # nothing after the one request
    return request, body


# ---------------------------------------------------------------- the request


def test_request_is_a_post_to_log_heartbeat_with_a_json_body() -> None:
    request, body = parse_request(HeartbeatConnection(ENDPOINT).request_bytes(beat()))
    assert request.method == b"POST"
    assert request.target == b"/api/v3/workflow_run/42/log_heartbeat"
    assert request.http_version == b"1.1"
    headers = dict(request.headers)
    assert headers == {
        b"host": b"jobmon.test:5000",
        b"user-agent": USER_AGENT.encode(),
        b"content-type": b"application/json",
        b"content-length": str(len(body)).encode(),
        b"authorization": b"Bearer t0k3n",
    }
    assert json.loads(body) == {"status": "R", "next_report_increment": 45.0}


def test_request_body_has_the_jobmon_clients_form() -> None:
    data = HeartbeatConnection(ENDPOINT).request_bytes(beat(increment=45))
    assert data.endswith(b'\r\n\r\n{"status": "R", "next_report_increment": 45.0}')


def test_request_never_asks_for_100_continue_or_to_close() -> None:
    request, _ = parse_request(HeartbeatConnection(ENDPOINT).request_bytes(beat()))
    names = {name for name, _ in request.headers}
    assert not names & {b"expect", b"connection", b"transfer-encoding"}


def test_non_ascii_status_is_escaped_in_the_body() -> None:
    _, body = parse_request(
        HeartbeatConnection(ENDPOINT).request_bytes(beat(status="Ré"))
    )
    assert body.isascii()
    assert json.loads(body)["status"] == "Ré"


@pytest.mark.parametrize(
    ("url", "host_header", "target"),
    [
        ("http://jobmon.test", b"jobmon.test", b"/workflow_run/7/log_heartbeat"),
        ("http://jobmon.test:80/", b"jobmon.test", b"/workflow_run/7/log_heartbeat"),
        ("https://jobmon.test:443/api", b"jobmon.test", b"/api/workflow_run/7/"),
        ("https://jobmon.test:80", b"jobmon.test:80", b"/workflow_run/7/"),
        ("http://10.0.0.1:5000/a/b", b"10.0.0.1:5000", b"/a/b/workflow_run/7/"),
        ("http://[::1]:5000", b"[::1]:5000", b"/workflow_run/7/"),
        ("http://[::1]", b"[::1]", b"/workflow_run/7/"),
    ],
)
def test_host_header_and_target_follow_the_base_url(
    url: str, host_header: bytes, target: bytes
) -> None:
    endpoint = HeartbeatEndpoint.from_url(url, run_id=7)
    request, _ = parse_request(HeartbeatConnection(endpoint).request_bytes(beat()))
    assert dict(request.headers)[b"host"] == host_header
    assert request.target.startswith(target)
    assert request.target.endswith(b"/workflow_run/7/log_heartbeat")


def test_cached_request_is_identical_to_a_freshly_rendered_one() -> None:
    endpoint = HeartbeatEndpoint.from_url("http://h:1/p", run_id=3)
    first = HeartbeatConnection(endpoint).request_bytes(beat(status="R"))
    other = HeartbeatConnection(endpoint).request_bytes(beat(status="D"))
    again = HeartbeatConnection(endpoint).request_bytes(beat(seq=9, status="R"))
    fresh = HeartbeatEndpoint.from_url("http://h:1/p", run_id=3)
    assert again == first == HeartbeatConnection(fresh).request_bytes(beat())
    assert other != first
    assert json.loads(parse_request(other)[1])["status"] == "D"


def test_request_and_answer_caches_stay_bounded() -> None:
    endpoint = HeartbeatEndpoint(host="h", port=1, run_id=1)
    for n in range(1, 200):
        conn = HeartbeatConnection(endpoint)
        _, body = parse_request(conn.request_bytes(beat(increment=float(n))))
        assert json.loads(body)["next_report_increment"] == n
        answer = response(body=json.dumps({"status": f"S{n}"}).encode())
        assert conn.receive_data(answer) == Answered(
            seq=1, status=f"S{n}", keep_alive=True
        )
    assert 0 < len(endpoint._requests) <= 32
    assert 0 < len(endpoint._answers) <= 32


def test_user_agent_names_the_installed_version() -> None:
    version = importlib.metadata.version("sansbeat")
    assert USER_AGENT.split("/") == ["sansbeat", version]


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://jobmon.test", ("http", "jobmon.test", 80, "")),
        ("HTTPS://Jobmon.Test/", ("https", "jobmon.test", 443, "")),
        ("http://h:5000/api/v3//", ("http", "h", 5000, "/api/v3")),
        ("http://[2001:db8::1]:8080/x", ("http", "2001:db8::1", 8080, "/x")),
        ("http://h:/a%20b", ("http", "h", 80, "/a%20b")),
    ],
)
def test_parse_base_url_splits_and_normalizes(
    url: str, expected: tuple[str, str, int, str]
) -> None:
    assert parse_base_url(url) == expected


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("ftp://h", "base_url"),
        ("h:5000", "base_url"),
        ("http://user:pw@h", "base_url"),
        ("http://h/p?x=1", "base_url"),
        ("http://h/p#f", "base_url"),
        ("http://h /p", "base_url"),
        ("http://h\n/p", "base_url"),
        ("http://[::1/p", "base_url"),
        ("http://hé/p", "base_url"),
        ("http://", "base_url host"),
        ("http://[fe80::1%25eth0]/", "base_url host"),
        ("http://h:0", "base_url port"),
        ("http://h:99999", "base_url port"),
        ("http://h:x", "base_url port"),
        ("http://h/a b", "base_url"),
        ("http://h/a%zz", "base_url path"),
        ("http://h/a<b>", "base_url path"),
    ],
)
def test_bad_base_urls_are_refused_naming_the_part(url: str, field: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_base_url(url)
    assert caught.value.field == field
    with pytest.raises(UsageError):
        HeartbeatEndpoint.from_url(url, run_id=1)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"host": ""}, "host"),
        ({"host": "a b"}, "host"),
        ({"host": "[::1]"}, "host"),
        ({"host": "::g"}, "host"),
        ({"port": 0}, "port"),
        ({"port": 65536}, "port"),
        ({"port": True}, "port"),
        ({"port": "80"}, "port"),
        ({"run_id": -1}, "run_id"),
        ({"run_id": "42"}, "run_id"),
        ({"run_id": False}, "run_id"),
        ({"scheme": "HTTP"}, "scheme"),
        ({"base_path": "api"}, "base_path"),
        ({"base_path": "/api/"}, "base_path"),
        ({"base_path": "/a?b"}, "base_path"),
        ({"max_body_bytes": 0}, "max_body_bytes"),
        ({"max_body_bytes": 1.5}, "max_body_bytes"),
        ({"extra_headers": "Authorization: x"}, "extra_headers"),
        ({"extra_headers": {"Authorization": "x"}}, "extra_headers"),
        ({"extra_headers": [["Authorization", "x"]]}, "extra_headers"),
        ({"extra_headers": [("Bad Name", "x")]}, "extra_headers"),
        ({"extra_headers": [("X-A", "x\r\nInjected: 1")]}, "extra_headers"),
        ({"extra_headers": [("X-A", " padded")]}, "extra_headers"),
        ({"extra_headers": [("X-A", "caf\u00e9")]}, "extra_headers"),
        ({"extra_headers": [("X-A", b"bytes")]}, "extra_headers"),
        ({"extra_headers": [("content-length", "1")]}, "extra_headers"),
        ({"extra_headers": [("Expect", "100-continue")]}, "extra_headers"),
        ({"extra_headers": [("Connection", "close")]}, "extra_headers"),
        ({"extra_headers": [("Transfer-Encoding", "chunked")]}, "extra_headers"),
        ({"extra_headers": [("HOST", "evil")]}, "extra_headers"),
    ],
)
def test_bad_endpoint_fields_are_refused_naming_the_field(
    changes: dict[str, Any], field: str
) -> None:
    fields: dict[str, Any] = {"host": "h", "port": 80, "run_id": 1, **changes}
    with pytest.raises(UsageError) as caught:
        HeartbeatEndpoint(**fields)
    assert caught.value.field == field


def test_header_values_are_never_shown() -> None:
    assert "t0k3n" not in repr(ENDPOINT)
    assert "Authorization" in repr(ENDPOINT)
    with pytest.raises(UsageError) as caught:
        HeartbeatEndpoint.from_url(
            "http://h", run_id=1, extra_headers=[("Authorization", "Bearer s3cret\n")]
        )
    assert "s3cret" not in str(caught.value)
    assert "s3cret" not in repr(caught.value.value)
    for headers in ["Authorization: s3cret", [["Authorization", "s3cret"]]]:
        with pytest.raises(UsageError) as caught:
            HeartbeatEndpoint(host="h", port=80, run_id=1, extra_headers=headers)  # type: ignore[arg-type]
        assert "s3cret" not in str(caught.value)


def test_extra_headers_given_as_a_list_are_stored_as_a_tuple() -> None:
    endpoint = HeartbeatEndpoint(
        host="h",
        port=80,
        run_id=1,
        extra_headers=[("X-Empty", ""), ("X-A", "a\tb")],  # type: ignore[arg-type]
    )
    assert endpoint.extra_headers == (("X-Empty", ""), ("X-A", "a\tb"))
    assert hash(endpoint) == hash(
        HeartbeatEndpoint(
            host="h",
            port=80,
            run_id=1,
            extra_headers=(("X-Empty", ""), ("X-A", "a\tb")),
        )
    )


@pytest.mark.parametrize(
    ("send", "field"),
    [
        ("R", "send"),
        (beat(status=""), "send.status"),
        (
            SendHeartbeat(
                seq=1,
                status=1,  # type: ignore[arg-type]
                next_report_increment=1.0,
                deadline=1.0,
            ),
            "send.status",
        ),
        (beat(increment=0.0), "send.next_report_increment"),
        (beat(increment=-1.0), "send.next_report_increment"),
        (beat(increment=math.nan), "send.next_report_increment"),
        (beat(increment=math.inf), "send.next_report_increment"),
        (beat(increment=True), "send.next_report_increment"),
    ],
)
def test_bad_heartbeats_are_refused_and_change_nothing(send: Any, field: str) -> None:
    conn = HeartbeatConnection(ENDPOINT)
    with pytest.raises(UsageError) as caught:
        conn.request_bytes(send)
    assert caught.value.field == field
    assert conn.reusable
    assert conn.in_flight is None
    conn.request_bytes(beat(seq=5))
    assert conn.in_flight == 5


def test_connection_needs_an_endpoint() -> None:
    with pytest.raises(UsageError) as caught:
        HeartbeatConnection("http://h")  # type: ignore[arg-type]
    assert caught.value.field == "endpoint"


def test_never_pipelines_a_second_request() -> None:
    conn = HeartbeatConnection(ENDPOINT)
    conn.request_bytes(beat(seq=1))
    with pytest.raises(UsageError, match="one heartbeat at a time"):
        conn.request_bytes(beat(seq=2))
    assert conn.in_flight == 1
    outcome = conn.receive_data(response())
    assert outcome == Answered(seq=1, status="R", keep_alive=True)


def test_receive_data_wants_bytes() -> None:
    conn = HeartbeatConnection(ENDPOINT)
    conn.request_bytes(beat())
    with pytest.raises(UsageError):
        conn.receive_data("HTTP/1.1 200 OK")  # type: ignore[arg-type]
    assert conn.in_flight == 1
    assert isinstance(conn.receive_data(response()), Answered)


# ---------------------------------------------------------------- answers


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("status", ["R", "E", "C", "Ré"])
def test_200_with_a_status_is_answered_with_that_status(
    split: str, status: str
) -> None:
    body = json.dumps({"status": status}).encode()
    assert exchange(response(body=body), split) == Answered(
        seq=1, status=status, keep_alive=True
    )


@pytest.mark.parametrize("split", SPLITS)
def test_answer_tolerates_extra_fields_and_other_2xx(split: str) -> None:
    data = response(b"HTTP/1.1 201 Created", b'{"x": [1], "status": "D"}')
    assert exchange(data, split) == Answered(seq=1, status="D", keep_alive=True)


@pytest.mark.parametrize("split", SPLITS)
def test_connection_close_response_is_answered_but_not_reusable(split: str) -> None:
    data = response(headers=[b"Server: Werkzeug/3.0", b"Connection: close"])
    assert exchange(data, split) == Answered(seq=1, status="R", keep_alive=False)


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("connection", [b"X-No: header", b"Connection: keep-alive"])
def test_http_1_0_response_is_answered_but_never_reused(
    split: str, connection: bytes
) -> None:
    data = response(b"HTTP/1.0 200 OK", headers=[connection])
    assert exchange(data, split) == Answered(seq=1, status="R", keep_alive=False)


@pytest.mark.parametrize("split", SPLITS)
def test_http_1_0_body_without_length_ends_at_end_of_file(split: str) -> None:
    data = response(b"HTTP/1.0 200 OK", content_length=False)
    conn = HeartbeatConnection(ENDPOINT)
    conn.request_bytes(beat())
    for chunk in pieces(data, split):
        assert conn.receive_data(chunk) is None
    assert conn.receive_data(b"") == Answered(seq=1, status="R", keep_alive=False)


@pytest.mark.parametrize("split", SPLITS)
def test_http_1_1_body_without_length_ends_at_end_of_file_and_is_not_reused(
    split: str,
) -> None:
    # Hypothesis found it: h11 calls both sides DONE after a close-delimited
    # HTTP/1.1 body, and the connection (closed by the server) was kept, so
    # the next exchange fed h11 data after its end of file and h11 raised.
    data = response(content_length=False)
    conn = HeartbeatConnection(ENDPOINT)
    conn.request_bytes(beat())
    for chunk in pieces(data, split):
        assert conn.receive_data(chunk) is None
    assert conn.receive_data(b"") == Answered(seq=1, status="R", keep_alive=False)
    assert not conn.reusable


@pytest.mark.parametrize("split", SPLITS)
def test_chunked_body_is_answered_and_reusable(split: str) -> None:
    data = chunked(b"HTTP/1.1 200 OK", [b'{"sta', b'tus": ', b'"H"}\n'], b"X-T: 1\r\n")
    assert exchange(data, split) == Answered(seq=1, status="H", keep_alive=True)


@pytest.mark.parametrize("split", SPLITS)
def test_interim_1xx_responses_are_skipped(split: str) -> None:
    interim = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
    )
    assert exchange(interim + response(), split) == Answered(
        seq=1, status="R", keep_alive=True
    )


@pytest.mark.parametrize("split", SPLITS)
def test_outcome_quotes_the_heartbeats_seq(split: str) -> None:
    conn = HeartbeatConnection(ENDPOINT)
    conn.request_bytes(beat(seq=17))
    outcome, _ = feed(conn, pieces(response(b"HTTP/1.1 500 Oops"), split))
    assert outcome.seq == 17


# ---------------------------------------------------------------- failures


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("code", [301, 400, 404, 500])
def test_non_2xx_is_http_status_and_keeps_the_connection(split: str, code: int) -> None:
    data = response(b"HTTP/1.1 %d Whatever" % code, b"<html>no</html>")
    outcome = failure(exchange(data, split))
    assert (outcome.reason, outcome.http_status) == ("http_status", code)
    assert outcome.retry_after is None
    assert outcome.keep_alive


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [
        ([b"Retry-After: 7"], 7.0),
        ([b"Retry-After: 0"], 0.0),
        ([b"Retry-After: 007"], 7.0),
        ([b"Retry-After: 3", b"Retry-After: 9"], 3.0),
        ([b"Retry-After: " + b"9" * 30], MAX_TIME),
        ([b"Retry-After: " + b"9" * 5000], MAX_TIME),
        ([b"Retry-After: 1.5"], None),
        ([b"Retry-After: -1"], None),
        ([b"Retry-After: soon"], None),
        (
            [
                b"Date: Mon, 01 Jan 2024 00:00:00 GMT",
                b"Retry-After: Mon, 01 Jan 2024 00:02:00 GMT",
            ],
            120.0,
        ),
        (
            [
                b"Date: Thu, 29 Feb 2024 23:59:30 GMT",
                b"Retry-After: Fri, 01 Mar 2024 00:00:00 GMT",
            ],
            30.0,
        ),
        (
            [
                b"Retry-After: Mon, 01 Jan 2024 00:00:00 GMT",
                b"Date: Mon, 01 Jan 2024 00:05:00 GMT",
            ],
            0.0,
        ),
        ([b"Retry-After: Mon, 01 Jan 2024 00:02:00 GMT"], None),
        (
            [
                b"Date: Mon, 31 Feb 2024 00:00:00 GMT",
                b"Retry-After: Mon, 01 Mar 2024 00:02:00 GMT",
            ],
            None,
        ),
        (
            [
                b"Date: Monday, 01-Jan-24 00:00:00 GMT",
                b"Retry-After: Mon, 01 Jan 2024 00:02:00 GMT",
            ],
            None,
        ),
    ],
)
def test_retry_after_is_read_from_delta_seconds_or_dates(
    split: str, headers: list[bytes], retry_after: float | None
) -> None:
    data = response(b"HTTP/1.1 503 Service Unavailable", b"busy", headers)
    outcome = failure(exchange(data, split))
    assert (outcome.reason, outcome.http_status) == ("http_status", 503)
    assert outcome.retry_after == retry_after


def test_retry_after_on_a_2xx_is_ignored() -> None:
    outcome = exchange(response(headers=[b"Retry-After: 5"]))
    assert outcome == Answered(seq=1, status="R", keep_alive=True)


@pytest.mark.parametrize(
    ("split", "body"),
    split_cases(
        b"",
        b"R",
        b"<html>proxy error</html>",
        b'["R"]',
        b'"R"',
        b"{}",
        b'{"state": "R"}',
        b'{"status": 1}',
        b'{"status": null}',
        b'{"status": ""}',
        b'{"status": "R"',
        b'{"status": "\xff"}',
        large=[
            b"[" * 50_000 + b"]" * 50_000,
            b'{"status": "R", "n": 1' + b"0" * 5000 + b"}",
        ],
    ),
)
def test_2xx_without_a_status_string_is_malformed_body(split: str, body: bytes) -> None:
    endpoint = HeartbeatEndpoint(host="h", port=80, run_id=1, max_body_bytes=200_000)
    outcome = failure(exchange(response(body=body), split, endpoint=endpoint))
    assert (outcome.reason, outcome.http_status) == ("malformed_body", 200)
    assert not outcome.keep_alive


def test_default_body_limit_is_64_kib() -> None:
    assert DEFAULT_MAX_BODY_BYTES == 64 * 1024
    body = b'{"status": "R"}'.ljust(DEFAULT_MAX_BODY_BYTES)
    assert isinstance(exchange(response(body=body)), Answered)
    outcome = failure(exchange(response(body=body + b" ")))
    assert outcome.reason == "body_too_large"


def test_204_no_content_is_malformed_body() -> None:
    data = b"HTTP/1.1 204 No Content\r\nContent-Length: 99999999\r\n\r\n"
    outcome = failure(exchange(data))
    assert (outcome.reason, outcome.http_status) == ("malformed_body", 204)


LIMIT = 100
SMALL = HeartbeatEndpoint(host="h", port=80, run_id=1, max_body_bytes=LIMIT)


@pytest.mark.parametrize("split", SPLITS)
def test_body_exactly_at_the_limit_is_read(split: str) -> None:
    body = b'{"status": "R"}'.ljust(LIMIT)
    assert exchange(response(body=body), split, endpoint=SMALL) == Answered(
        seq=1, status="R", keep_alive=True
    )
    data = chunked(b"HTTP/1.1 200 OK", [body[:50], body[50:]])
    assert exchange(data, split, endpoint=SMALL).keep_alive


@pytest.mark.parametrize("split", SPLITS)
def test_declared_body_over_the_limit_fails_before_reading_it(split: str) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (LIMIT + 1)
    outcome = failure(exchange(head, split, endpoint=SMALL))
    assert (outcome.reason, outcome.http_status) == ("body_too_large", 200)
    assert not outcome.keep_alive
    assert str(LIMIT + 1) in outcome.detail


@pytest.mark.parametrize("split", SPLITS)
def test_received_body_over_the_limit_stops_the_reading_at_the_limit(
    split: str,
) -> None:
    data = chunked(b"HTTP/1.1 200 OK", [b" " * 60, b" " * 60, b'{"status":"R"}'])
    conn = HeartbeatConnection(SMALL)
    conn.request_bytes(beat())
    outcome, used = feed(conn, pieces(data, split))
    assert failure(outcome).reason == "body_too_large"
    assert not outcome.keep_alive
    if split == "bytewise":
        # The byte that crossed the limit: the 41st of the second chunk's data.
        second_chunk = data.index(b"\r\n\r\n") + 4 + len(b"3c\r\n") + 60 + 2
        assert used == second_chunk + len(b"3c\r\n") + 41
    # Input after the outcome is not read.
    assert conn.receive_data(b" " * 10_000) is None
    assert not conn.reusable


@pytest.mark.parametrize("split", SPLITS)
def test_large_error_body_is_http_status_not_kept(split: str) -> None:
    data = response(
        b"HTTP/1.1 502 Bad Gateway", b"x" * (LIMIT + 50), [b"Retry-After: 2"]
    )
    conn = HeartbeatConnection(SMALL)
    conn.request_bytes(beat())
    outcome, used = feed(conn, pieces(data, split))
    failed = failure(outcome)
    assert (failed.reason, failed.http_status, failed.retry_after) == (
        "http_status",
        502,
        2.0,
    )
    assert not failed.keep_alive
    if split == "bytewise":  # declared too large: no byte of the body is read
        assert used == data.index(b"\r\n\r\n") + 4


@pytest.mark.parametrize("split", SPLITS)
def test_end_of_file_before_any_byte_is_closed_before_response(split: str) -> None:
    outcome = failure(exchange(b"", split, eof=True))
    assert (outcome.reason, outcome.http_status) == ("closed_before_response", None)
    assert not outcome.keep_alive


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize(
    ("partial", "http_status"),
    [
        (b"H", None),
        (b"HTTP/1.1 200 OK\r\nContent-Le", None),
        (b"HTTP/1.1 100 Continue\r\n\r\n", None),
        (response()[:-3], 200),
        (chunked(b"HTTP/1.1 200 OK", [b'{"status": "R"}'])[:-5], 200),
    ],
)
def test_end_of_file_mid_response_is_closed_early(
    split: str, partial: bytes, http_status: int | None
) -> None:
    outcome = failure(exchange(partial, split, eof=True))
    assert (outcome.reason, outcome.http_status) == ("closed_early", http_status)
    assert not outcome.keep_alive


@pytest.mark.parametrize("split", SPLITS)
def test_end_of_file_mid_error_body_is_still_http_status(split: str) -> None:
    data = response(b"HTTP/1.1 503 Busy", b"come back later", [b"Retry-After: 4"])
    outcome = failure(exchange(data[:-4], split, eof=True))
    assert (outcome.reason, outcome.http_status, outcome.retry_after) == (
        "http_status",
        503,
        4.0,
    )
    assert not outcome.keep_alive


@pytest.mark.parametrize(
    ("split", "data"),
    split_cases(
        b"HELLO\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/2 200\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
        large=[b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 20_000],
    ),
)
def test_what_h11_rejects_is_a_protocol_error(split: str, data: bytes) -> None:
    outcome = failure(exchange(data, split))
    assert outcome.reason == "protocol_error"
    assert outcome.detail
    assert not outcome.keep_alive


def test_bad_chunk_in_an_error_body_is_still_http_status() -> None:
    data = b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    outcome = failure(exchange(data))
    assert (outcome.reason, outcome.http_status) == ("http_status", 500)
    assert not outcome.keep_alive


# ---------------------------------------------------------------- reuse


@pytest.mark.parametrize(
    "data",
    [response(), chunked(b"HTTP/1.1 200 OK", [b'{"status": "R"}'])],
)
def test_trailing_garbage_gives_the_same_answer_but_no_reuse(data: bytes) -> None:
    assert exchange(data + b"HTTP/1.1 200 OK\r\n\r\ngarbage") == Answered(
        seq=1, status="R", keep_alive=False
    )


def test_both_transfer_encoding_and_content_length_prevent_reuse() -> None:
    data = chunked(b"HTTP/1.1 200 OK\r\nContent-Length: 999999", [b'{"status":"R"}'])
    assert exchange(data) == Answered(seq=1, status="R", keep_alive=False)


def test_trailing_garbage_after_an_error_prevents_reuse() -> None:
    outcome = failure(exchange(response(b"HTTP/1.1 500 Oops", b"x") + b"junk"))
    assert (outcome.reason, outcome.keep_alive) == ("http_status", False)


@pytest.mark.parametrize("idle_input", [b"", b"HTTP/1.1 408 Request Timeout\r\n\r\n"])
def test_input_on_an_idle_connection_makes_it_not_reusable(idle_input: bytes) -> None:
    conn = HeartbeatConnection(ENDPOINT)
    conn.request_bytes(beat())
    assert conn.receive_data(response()) == Answered(seq=1, status="R", keep_alive=True)
    assert conn.reusable
    assert conn.receive_data(idle_input) is None
    assert not conn.reusable
    with pytest.raises(UsageError, match="closed"):
        conn.request_bytes(beat(seq=2))


def test_input_before_the_first_request_makes_it_not_reusable() -> None:
    conn = HeartbeatConnection(ENDPOINT)
    assert conn.receive_data(b"") is None
    assert not conn.reusable


@pytest.mark.parametrize("split", SPLITS)
def test_keep_alive_carries_heartbeats_over_cycles(split: str) -> None:
    conn = HeartbeatConnection(ENDPOINT)
    answers = [
        response(),
        chunked(b"HTTP/1.1 200 OK", [b'{"status": "D"}']),
        response(b"HTTP/1.1 500 Oops", b"x"),
        b"HTTP/1.1 100 Continue\r\n\r\n" + response(body=b'{"status":"E"}'),
        response(headers=[b"Connection: close"]),
    ]
    outcomes: list[Outcome] = []
    requests: list[bytes] = []
    for seq, data in enumerate(answers, start=1):
        requests.append(conn.request_bytes(beat(seq=seq)))
        assert conn.in_flight == seq
        outcome, used = feed(conn, pieces(data, split))
        assert used == len(pieces(data, split))
        assert conn.in_flight is None
        outcomes.append(outcome)
    assert len(set(requests)) == 1
    assert outcomes[:2] == [
        Answered(seq=1, status="R", keep_alive=True),
        Answered(seq=2, status="D", keep_alive=True),
    ]
    assert failure(outcomes[2]).reason == "http_status"
    assert outcomes[2].keep_alive
    assert outcomes[3:] == [
        Answered(seq=4, status="E", keep_alive=True),
        Answered(seq=5, status="R", keep_alive=False),
    ]
    assert not conn.reusable
    assert conn.receive_data(b"") is None  # the server's close, after the answer


def test_failure_ends_the_connection() -> None:
    conn = HeartbeatConnection(ENDPOINT)
    conn.request_bytes(beat())
    assert failure(conn.receive_data(b"JUNK\r\n\r\n")).reason == "protocol_error"
    assert not conn.reusable
    assert conn.receive_data(response()) is None
    with pytest.raises(UsageError):
        conn.request_bytes(beat(seq=2))


# ---------------------------------------------------------------- fuzzing

VALID_RESPONSES = [
    response(),
    response(headers=[b"Connection: close"]),
    response(b"HTTP/1.0 200 OK", content_length=False),
    response(b"HTTP/1.1 503 Busy", b"later", [b"Retry-After: 3"]),
    chunked(b"HTTP/1.1 200 OK", [b'{"status":', b' "R"}'], b"X-T: 1\r\n"),
    b"HTTP/1.1 100 Continue\r\n\r\n" + response(body=b'{"status": "E"}'),
]


def check(outcome: Outcome) -> None:
    """What every outcome promises, whatever the input."""
    assert outcome.seq == 1
    if isinstance(outcome, Answered):
        assert type(outcome.status) is str
        assert outcome.status
        return
    assert outcome.reason in REASONS
    assert isinstance(outcome.detail, str)
    assert outcome.http_status is None or 200 <= outcome.http_status <= 999
    if outcome.reason != "http_status":
        assert outcome.retry_after is None
        assert not outcome.keep_alive
    if outcome.retry_after is not None:
        assert 0 <= outcome.retry_after <= MAX_TIME


def run_to_end(data: bytes, cuts: list[int], endpoint: HeartbeatEndpoint) -> Outcome:
    """Feed `data` cut at `cuts`, then end of file: an outcome must come."""
    conn = HeartbeatConnection(endpoint)
    conn.request_bytes(beat())
    bounds = [0, *sorted(set(cuts)), len(data)]
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    for chunk in [*chunks, b""]:
        outcome = conn.receive_data(chunk)
        if outcome is not None:
            check(outcome)
            assert conn.reusable is outcome.keep_alive
            assert conn.in_flight is None
            return outcome
    raise AssertionError("end of file gave no outcome")


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(VALID_RESPONSES)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = draw(
            st.binary(min_size=1, max_size=8)
            | st.sampled_from(
                [b"\r\n", b"\r\n\r\n", b":", b" ", b"0", b"\x00", b"\xff", b"HTTP/1.1 "]
            )
        )
        if kind == "insert":
            data[at:at] = piece
        elif kind == "delete":
            del data[at : at + len(piece)]
        else:
            data[at : at + len(piece)] = piece
    return bytes(data)


INPUTS = (
    st.binary(max_size=200)
    | st.binary(max_size=200).map(lambda tail: b"HTTP/1.1 200 OK\r\n" + tail)
    | mutated()
)
ENDPOINTS = st.sampled_from(
    [ENDPOINT, HeartbeatEndpoint(host="h", port=80, run_id=1, max_body_bytes=8)]
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=INPUTS, cuts=st.lists(st.integers(0, 300), max_size=6), endpoint=ENDPOINTS)
def test_fuzz_any_bytes_give_an_outcome_and_never_raise(
    data: bytes, cuts: list[int], endpoint: HeartbeatEndpoint
) -> None:
    run_to_end(data, [c for c in cuts if c < len(data)], endpoint)


@settings(max_examples=200, deadline=None)
@given(
    data=st.sampled_from(VALID_RESPONSES) | mutated(),
    cuts=st.lists(st.integers(0, 300), max_size=10),
)
def test_fuzz_outcome_does_not_depend_on_how_bytes_are_split(
    data: bytes, cuts: list[int]
) -> None:
    whole = run_to_end(data, [], ENDPOINT)
    split = run_to_end(data, [c for c in cuts if c < len(data)], ENDPOINT)
    if isinstance(whole, Failed) and isinstance(split, Failed):
        # h11's error texts may name the piece it was looking at.
        assert (whole.reason, whole.http_status, whole.retry_after) == (
            split.reason,
            split.http_status,
            split.retry_after,
        )
        # Bytes after a complete response: whole sees them, a split may not yet.
        assert whole.keep_alive <= split.keep_alive
    elif isinstance(whole, Answered) and isinstance(split, Answered):
        assert whole.status == split.status
        assert whole.keep_alive <= split.keep_alive
    else:
        raise AssertionError((whole, split))


# ---------------------------------------------------------------- purity


def test_codec_module_does_no_io_and_reads_no_clock() -> None:
    import sansbeat._http

    tree = ast.parse(Path(sansbeat._http.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imported.add(node.module.split(".")[0])
    assert "h11" in imported
    forbidden = {"time", "socket", "select", "threading", "asyncio", "trio", "anyio"}
    assert not imported & forbidden


# ---------------------------------------------------------------- interop


class _JobmonHandler(BaseHTTPRequestHandler):
    """Jobmon's log_heartbeat route as DESIGN.md records it; Werkzeug's manners."""

    protocol_version = "HTTP/1.0"
    route = re.compile(r"/api/v3/workflow_run/(\d+)/log_heartbeat")
    timeout = 5  # a stuck test cannot hang the server's threads

    def do_POST(self) -> None:
        server = self.server
        assert isinstance(server, _Server)
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        server.received.append((self.path, dict(self.headers.items()), raw))
        match = self.route.fullmatch(self.path)
        if match is None:
            return self._answer(404, b"not found")
        if self.headers.get("Content-Type") != "application/json":
            return self._answer(500, b"wrong content type")
        try:
            body = json.loads(raw)
            status, increment = body["status"], body["next_report_increment"]
        except (ValueError, KeyError, TypeError):
            return self._answer(400, b"bad body")
        run_id = int(match.group(1))
        if run_id == 503:
            return self._answer(503, b"busy", [("Retry-After", "11")])
        if run_id not in server.runs or not isinstance(increment, float):
            return self._answer(500, b"unknown run")
        if server.runs[run_id] != "E":  # a reaped run stays reaped
            server.runs[run_id] = status
        answer = json.dumps({"status": server.runs[run_id]}, separators=(",", ":"))
        self._answer(200, answer.encode() + b"\n")

    def _answer(
        self, code: int, body: bytes, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.protocol_version == "HTTP/1.0":
            self.send_header("Connection", "close")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read `received` instead."""


class _KeepAliveHandler(_JobmonHandler):
    """The same route with gunicorn's manners: HTTP/1.1 persistent connections."""

    protocol_version = "HTTP/1.1"


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins every handler thread

    def __init__(self, handler: type[_JobmonHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.keep_alive = handler.protocol_version == "HTTP/1.1"
        self.runs: dict[int, str] = {42: "R", 7: "E"}
        self.received: list[tuple[str, dict[str, str], bytes]] = []


@pytest.fixture(
    params=[_JobmonHandler, _KeepAliveHandler], ids=["werkzeug", "gunicorn"]
)
def jobmon(request: pytest.FixtureRequest) -> Iterator[_Server]:
    """A Jobmon-like server on loopback: closing (Werkzeug) or keep-alive (gunicorn)."""
    server = _Server(request.param)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _endpoint(server: _Server, run_id: int) -> HeartbeatEndpoint:
    port = server.server_address[1]
    return HeartbeatEndpoint.from_url(
        f"http://127.0.0.1:{port}/api/v3",
        run_id=run_id,
        extra_headers=[("X-Test", "1")],
    )


def _connect(endpoint: HeartbeatEndpoint) -> socket.socket:
    return socket.create_connection((endpoint.host, endpoint.port), timeout=5)


def _exchange(
    sock: socket.socket, conn: HeartbeatConnection, send: SendHeartbeat
) -> Outcome:
    sock.sendall(conn.request_bytes(send))
    while True:
        outcome = conn.receive_data(sock.recv(65536))
        if outcome is not None:
            return outcome


def test_interop_heartbeats_against_http_server(jobmon: _Server) -> None:
    endpoint = _endpoint(jobmon, 42)
    outcomes: list[Outcome] = []
    connections = 0
    with contextlib.ExitStack() as sockets:
        conn: HeartbeatConnection | None = None
        for send in [beat(seq=1, status="R"), beat(seq=2, status="D")]:
            if conn is None or not conn.reusable:
                sock = sockets.enter_context(_connect(endpoint))
                conn = HeartbeatConnection(endpoint)
                connections += 1
            outcomes.append(_exchange(sock, conn, send))
    keep_alive = jobmon.keep_alive
    assert connections == (1 if keep_alive else 2)
    assert outcomes == [
        Answered(seq=1, status="R", keep_alive=keep_alive),
        Answered(seq=2, status="D", keep_alive=keep_alive),
    ]
    assert jobmon.runs[42] == "D"
    paths = [path for path, _, _ in jobmon.received]
    assert paths == ["/api/v3/workflow_run/42/log_heartbeat"] * 2
    _, headers, raw = jobmon.received[0]
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == USER_AGENT
    assert headers["X-Test"] == "1"
    assert "Expect" not in headers
    assert json.loads(raw) == {"status": "R", "next_report_increment": 45.0}


@pytest.mark.parametrize(
    ("run_id", "reason", "http_status", "status"),
    [
        (7, None, None, "E"),  # reaped: the server's status is a signal
        (99, "http_status", 500, None),  # unknown run
        (503, "http_status", 503, None),
    ],
)
def test_interop_signals_and_errors(
    jobmon: _Server,
    run_id: int,
    reason: str | None,
    http_status: int | None,
    status: str | None,
) -> None:
    endpoint = _endpoint(jobmon, run_id)
    with _connect(endpoint) as sock:
        outcome = _exchange(sock, HeartbeatConnection(endpoint), beat(status="R"))
    assert outcome.keep_alive is jobmon.keep_alive
    if status is not None:
        assert outcome == Answered(seq=1, status=status, keep_alive=jobmon.keep_alive)
    else:
        failed = failure(outcome)
        assert (failed.reason, failed.http_status) == (reason, http_status)
        assert failed.retry_after == (11.0 if run_id == 503 else None)


def test_interop_server_close_is_seen_as_end_of_file(jobmon: _Server) -> None:
    endpoint = _endpoint(jobmon, 42)
    with _connect(endpoint) as sock:
        conn = HeartbeatConnection(endpoint)
        assert isinstance(_exchange(sock, conn, beat()), Answered)
        assert conn.reusable is jobmon.keep_alive
        if jobmon.keep_alive:
            sock.shutdown(socket.SHUT_WR)  # we close our side; the server follows
        assert sock.recv(65536) == b""
        assert conn.receive_data(b"") is None
    assert not conn.reusable


# ---------------------------------------------------------------- the fast path
#
# The codec reads the common answer itself and leaves anything else to h11 (see
# the module's strategy). `H11Only` is the codec with that fast path off: one h11
# connection reads every byte, as the codec did before it had one. For any
# response, however split, each call must give the same result on both.


class H11Only(HeartbeatConnection):
    """The codec with every response left to h11: the fast path's reference."""

    _FAST_PATH = False


GUNICORN = (
    b"HTTP/1.1 200 OK\r\nServer: gunicorn\r\nDate: Tue, 01 Dec 2026 09:00:00 GMT\r\n"
    b"Connection: keep-alive\r\nContent-Type: application/json\r\n"
    b'Content-Length: 15\r\n\r\n{"status":"R"}\n'
)
WERKZEUG = (
    b"HTTP/1.1 200 OK\r\nServer: Werkzeug/3.0.1 Python/3.11.9\r\n"
    b"Date: Tue, 01 Dec 2026 09:00:00 GMT\r\nContent-Type: application/json\r\n"
    b'Content-Length: 15\r\nConnection: close\r\n\r\n{"status":"R"}\n'
)


def h11_request_bytes(endpoint: HeartbeatEndpoint, send: SendHeartbeat) -> bytes:
    """The request rendered from scratch and written by a new h11 connection."""
    body = json.dumps(
        {
            "status": send.status,
            "next_report_increment": float(send.next_report_increment),
        }
    ).encode()
    conn = h11.Connection(our_role=h11.CLIENT)
    head = h11.Request(
        method="POST",
        target=f"{endpoint.base_path}/workflow_run/{endpoint.run_id}/log_heartbeat",
        headers=[
            ("Host", endpoint.host_header),
            ("User-Agent", USER_AGENT),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            *endpoint.extra_headers,
        ],
    )
    wire = [
        conn.send(event) for event in (head, h11.Data(data=body), h11.EndOfMessage())
    ]
    return b"".join(part for part in wire if part is not None)


@pytest.mark.parametrize(
    "endpoint",
    [
        ENDPOINT,
        HeartbeatEndpoint.from_url("https://jobmon.test", run_id=0),
        HeartbeatEndpoint.from_url(
            "http://[::1]:8080/a/b",
            run_id=7,
            extra_headers=[("X-A", "1"), ("Authorization", "Basic  x  y")],
        ),
    ],
)
@pytest.mark.parametrize(
    "send", [beat(), beat(seq=5, status="Ré", increment=0.25), beat(increment=90)]
)
def test_cached_request_bytes_are_what_h11_writes(
    endpoint: HeartbeatEndpoint, send: SendHeartbeat
) -> None:
    expected = h11_request_bytes(endpoint, send)
    fast, reference = HeartbeatConnection(endpoint), H11Only(endpoint)
    for _ in range(2):  # on a new connection, then on one kept alive
        assert fast.request_bytes(send) == reference.request_bytes(send) == expected
        assert fast.receive_data(GUNICORN) == reference.receive_data(GUNICORN)
        assert fast.reusable


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize(
    ("data", "keep_alive"),
    [
        (GUNICORN, True),
        (WERKZEUG, False),
        (b'HTTP/1.1 201\r\ncontent-length:  015 \r\n\r\n{"status":"R"}\n', True),
        (b'HTTP/1.1 299 \r\nCONTENT-LENGTH:14\r\n\r\n{"status":"R"}', True),
        (response(headers=[b"Connection: Keep-Alive, close", b"Keep-Alive: 5"]), False),
        (response(headers=[b"connection:", b"Connection: ,keep-alive ,"]), True),
    ],
)
def test_plain_answers_are_read_without_h11(
    split: str, data: bytes, keep_alive: bool
) -> None:
    conn = HeartbeatConnection(ENDPOINT)
    conn.request_bytes(beat())
    outcome, used = feed(conn, pieces(data, split))
    assert used == len(pieces(data, split))
    assert outcome == Answered(seq=1, status="R", keep_alive=keep_alive)
    assert conn._h11 is None
    assert not conn._received


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 100 Continue\r\n\r\n" + GUNICORN,
        GUNICORN.replace(b"HTTP/1.1", b"HTTP/1.0"),
        GUNICORN.replace(b"200 OK", b"204 No Content"),
        GUNICORN.replace(b"200 OK", b"503 Busy"),
        GUNICORN.replace(b"\r\nServer", b"\nServer"),
        GUNICORN.replace(b"\r\nServer", b"\r\n Server"),
        GUNICORN.replace(b"Server: gunicorn", b"Server: gunicorn\x7f"),
        GUNICORN.replace(b"Server: gunicorn", b"Server: g\x01\xe9"),
        GUNICORN.replace(b"Server: gunicorn", b"Server: g\x00"),
        GUNICORN.replace(b"200 OK", b"200 O\x00K"),
        GUNICORN.replace(b"200 OK", b"200 O\x0bK"),
        GUNICORN.replace(b"200 OK", b"200 \xc3\xa9"),
        GUNICORN.replace(b"Server: gunicorn", b"Content-Length: 15"),
        GUNICORN.replace(b"Server: gunicorn", b"Content-Length: 16"),
        GUNICORN.replace(b"Server: gunicorn", b"Transfer-Encoding: identity"),
        GUNICORN.replace(b"Server: gunicorn", b"Retry-After: 5"),
        GUNICORN.replace(b"keep-alive", b"upgrade"),
        GUNICORN.replace(b": 15", b": 15, 15"),
        GUNICORN.replace(b": 15", b": 14"),
        GUNICORN.replace(b'"R"', b"1 "),
        GUNICORN + b"HTTP/1.1 200 OK\r\n",
        chunked(b"HTTP/1.1 200 OK", [b'{"status":"R"}']),
    ],
)
def test_doubtful_answers_are_left_to_h11(data: bytes) -> None:
    for split in SPLITS:
        conn, reference = HeartbeatConnection(ENDPOINT), H11Only(ENDPOINT)
        conn.request_bytes(beat())
        reference.request_bytes(beat())
        for chunk in [*pieces(data, split), b""]:
            assert conn.receive_data(chunk) == reference.receive_data(chunk)
        # (Bytewise, a body longer than declared ends before the extra byte.)
        assert conn._h11 is not None or split == "bytewise"


def test_fast_path_holds_at_most_a_small_head() -> None:
    conn, reference = HeartbeatConnection(ENDPOINT), H11Only(ENDPOINT)
    conn.request_bytes(beat())
    reference.request_bytes(beat())
    data = b"HTTP/1.1 200 OK\r\n" + b"X-Pad: 0123456789abcdef\r\n" * 500 + GUNICORN[17:]
    for at in range(0, len(data), 100):
        chunk = data[at : at + 100]
        assert conn.receive_data(chunk) == reference.receive_data(chunk)
        assert len(conn._received) <= 8 * 1024
    assert conn._h11 is not None
    assert conn.reusable
    # The next exchange on the connection is read by the fast path again.
    for codec in (conn, reference):
        codec.request_bytes(beat(seq=2))
    assert conn.receive_data(GUNICORN) == reference.receive_data(GUNICORN)
    assert conn._h11 is None


def test_fast_path_body_respects_the_limit() -> None:
    limited = HeartbeatEndpoint(host="h", port=80, run_id=1, max_body_bytes=15)
    over = GUNICORN.replace(b'"R"', b'"RR"').replace(b": 15", b": 16")
    for data, fits in [(GUNICORN, True), (over, False)]:
        conn, reference = HeartbeatConnection(limited), H11Only(limited)
        conn.request_bytes(beat())
        reference.request_bytes(beat())
        outcome = conn.receive_data(data)
        assert outcome == reference.receive_data(data)
        if fits:
            assert outcome == Answered(seq=1, status="R", keep_alive=True)
        else:
            assert failure(outcome).reason == "body_too_large"


# Differential fuzzing: generated answers, plain and mutated, in random pieces.

_TOKEN_CHARS = (
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
_TEXT_CHARS = "\t" + "".join(map(chr, range(0x20, 0x7F)))
_OWS = st.sampled_from([b"", b" ", b"  ", b"\t", b" \t "])
_HEADER_NAMES = [
    "Server",
    "Date",
    "Content-Type",
    "Keep-Alive",
    "X-Request-Id",
    "Vary",
    "Set-Cookie",
    "Retry-After",
]


@st.composite
def recased(draw: st.DrawFn, name: str) -> bytes:
    flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return "".join(
        char.swapcase() if flip else char
        for char, flip in zip(name, flips, strict=True)
    ).encode()


@st.composite
def plain_answers(draw: st.DrawFn) -> bytes:
    """Answers as a healthy server sends them, in all the forms the fast path
    reads (and a few it leaves to h11: 204, Retry-After, long heads)."""
    code = draw(st.sampled_from([200, 200, 200, 201, 202, 204, 299]))
    reason = draw(st.none() | st.text(_TEXT_CHARS, max_size=12))
    status_line = b"HTTP/1.1 %d" % code
    if reason is not None:
        status_line += b" " + reason.encode()
    extra = draw(st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
    status = draw(st.text(min_size=1, max_size=4))
    document = {**extra, "status": status}
    body = json.dumps(document, ensure_ascii=draw(st.booleans())).encode()
    body += draw(st.sampled_from([b"", b"\n", b"  "]))
    names = draw(
        st.lists(
            st.sampled_from(_HEADER_NAMES).flatmap(recased)
            | st.text(_TOKEN_CHARS, min_size=1, max_size=6).map(str.encode),
            max_size=5,
        )
    )
    lines = [
        name + b":" + draw(_OWS) + draw(st.text(_TEXT_CHARS, max_size=20)).encode()
        for name in names
    ]
    length = draw(st.sampled_from([b"", b"0", b"00"])) + b"%d" % len(body)
    lines.insert(
        draw(st.integers(0, len(lines))),
        draw(recased("Content-Length")) + b":" + draw(_OWS) + length + draw(_OWS),
    )
    connection = draw(
        st.none()
        | st.sampled_from(
            [b"keep-alive", b"close", b"Keep-Alive", b"keep-alive, close", b" ,", b""]
        )
    )
    if connection is not None:
        lines.insert(
            draw(st.integers(0, len(lines))),
            draw(recased("Connection")) + b":" + draw(_OWS) + connection,
        )
    return b"\r\n".join([status_line, *lines]) + b"\r\n\r\n" + body


@st.composite
def doubtful(draw: st.DrawFn) -> bytes:
    """A plain answer changed the way broken or unusual servers change it."""
    data = draw(plain_answers())
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):
        kind = draw(
            st.sampled_from(
                [
                    "bytes",
                    "lf",
                    "fold",
                    "interim",
                    "trail",
                    "cut",
                    "http10",
                    "chunked",
                    "length",
                ]
            )
        )
        if kind == "bytes":
            at = draw(st.integers(0, len(data)))
            piece = draw(
                st.binary(min_size=1, max_size=4)
                | st.sampled_from([b"\r\n", b"\n", b"\r", b":", b" ", b"\x00", b"\xff"])
            )
            data = data[:at] + piece + data[at + draw(st.integers(0, 3)) :]
        elif kind == "lf":
            data = data.replace(b"\r\n", b"\n", draw(st.integers(1, 3)))
        elif kind == "fold":
            data = data.replace(b"\r\n", b"\r\n\tfolded\r\n", 1)
        elif kind == "interim":
            data = b"HTTP/1.1 100 Continue\r\n\r\n" + data
        elif kind == "trail":
            data += draw(st.sampled_from([b"x", b"\r\n", b"HTTP/1.1 200 OK\r\n"]))
        elif kind == "cut":
            data = data[: draw(st.integers(0, len(data)))]
        elif kind == "http10":
            data = data.replace(b"HTTP/1.1", b"HTTP/1.0", 1)
        elif kind == "length":  # a second Content-Length, the same or not
            size = len(data) - data.find(b"\r\n\r\n") - 4 + draw(st.integers(-1, 1))
            data = data.replace(b"\r\n", b"\r\ncontent-length: %d\r\n" % size, 1)
        else:
            data = data.replace(b"\r\n", b"\r\nTransfer-Encoding: chunked\r\n", 1)
    return data


ANSWERS = st.one_of(
    plain_answers(),
    plain_answers(),
    doubtful(),
    doubtful(),
    st.sampled_from(VALID_RESPONSES),
)
LIMITED = st.sampled_from(
    [
        ENDPOINT,
        ENDPOINT,
        ENDPOINT,
        HeartbeatEndpoint(host="h", port=80, run_id=1, max_body_bytes=16),
        HeartbeatEndpoint(host="h", port=80, run_id=1, max_body_bytes=40),
    ]
)


@st.composite
def deliveries(
    draw: st.DrawFn, answers: st.SearchStrategy[bytes] = ANSWERS
) -> tuple[bytes, list[bytes | memoryview]]:
    """An answer and the pieces it arrives in, perhaps with the end of file."""
    data = draw(answers)
    shape = draw(st.sampled_from(["whole", "whole", "bytewise", "cut", "cut", "cut"]))
    if shape == "whole":
        cuts = []
    elif shape == "bytewise":
        cuts = list(range(1, len(data)))
    else:
        cuts = sorted(
            set(draw(st.lists(st.integers(1, max(len(data), 1)), max_size=6)))
        )
    bounds = [0, *[cut for cut in cuts if cut < len(data)], len(data)]
    chunks: list[bytes | memoryview] = [
        data[a:b] for a, b in itertools.pairwise(bounds) if b > a
    ]
    if draw(st.booleans()):
        chunks = [
            memoryview(chunk) if draw(st.booleans()) else chunk for chunk in chunks
        ]
    if draw(st.integers(0, 3)) == 0:
        chunks.append(b"")
    return data, chunks


def same_exchange(
    fast: HeartbeatConnection,
    reference: HeartbeatConnection,
    send: SendHeartbeat,
    chunks: list[bytes | memoryview],
) -> None:
    assert fast.request_bytes(send) == reference.request_bytes(send)
    for chunk in chunks:
        got = fast.receive_data(chunk)  # type: ignore[arg-type]
        want = reference.receive_data(bytes(chunk))
        assert got == want
        assert (fast.reusable, fast.in_flight) == (
            reference.reusable,
            reference.in_flight,
        )


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    # Often a plain answer first, so that a second exchange follows on the
    # same connection.
    first=deliveries(plain_answers() | ANSWERS),
    second=deliveries(),
    endpoint=LIMITED,
)
def test_fuzz_fast_path_gives_what_h11_alone_gives(
    first: tuple[bytes, list[bytes | memoryview]],
    second: tuple[bytes, list[bytes | memoryview]],
    endpoint: HeartbeatEndpoint,
) -> None:
    fast, reference = HeartbeatConnection(endpoint), H11Only(endpoint)
    same_exchange(fast, reference, beat(seq=1), first[1])
    if reference.reusable:  # the same connection carries the next heartbeat
        same_exchange(fast, reference, beat(seq=2, status="D"), second[1])


# ---------------------------------------------------------------- the gateway's bounds


@pytest.fixture
def silent_server() -> Iterator[str]:
    """The base URL of a server that takes connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_async_gateway_timeout_is_a_failed_heartbeat(
    silent_server: str, backend: str
) -> None:
    async def main() -> None:
        gateway = HttpGateway(silent_server, 1, timeout=0.2)
        with pytest.raises(HeartbeatRequestFailed) as raised:
            await gateway.log_heartbeat("R", 45.0)
        assert raised.value.reason == "timeout"
        assert gateway._stream is None  # closed on the way out

    anyio.run(main, backend=backend)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_async_gateway_lets_an_outer_cancellation_through(
    silent_server: str, backend: str
) -> None:
    async def main() -> None:
        gateway = HttpGateway(silent_server, 1, timeout=30.0)
        with anyio.move_on_after(0.2) as outer:
            await gateway.log_heartbeat("R", 45.0)
        assert outer.cancelled_caught
        assert gateway._stream is None

    anyio.run(main, backend=backend)


def test_sync_gateway_applies_each_calls_timeout() -> None:
    server = _Server(_KeepAliveHandler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}
    )
    thread.start()
    try:
        base_url = f"http://127.0.0.1:{server.server_address[1]}/api/v3"
        with HttpGateway(base_url, 42, timeout=7.0) as gateway:
            for timeout, expected in [
                (None, 7.0),
                (None, 7.0),
                (3.0, 3.0),
                (None, 7.0),
            ]:
                answer = gateway.log_heartbeat_sync("R", 45.0, timeout=timeout)
                assert answer.status == "R"
                assert gateway._sock is not None  # kept alive
                # Re-armed with what is left of the call's budget at each read.
                left = gateway._sock.gettimeout()
                assert left is not None
                assert expected - 0.5 < left <= expected
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_sync_gateway_timeout_is_a_failed_heartbeat(silent_server: str) -> None:
    with HttpGateway(silent_server, 1) as gateway:
        with pytest.raises(HeartbeatRequestFailed) as raised:
            gateway.log_heartbeat_sync("R", 45.0, timeout=0.2)
        assert raised.value.reason == "timeout"
        assert gateway._sock is None
