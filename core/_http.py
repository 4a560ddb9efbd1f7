"""The heartbeat's HTTP/1.1 wire codec: bytes in, bytes out, built on h11.

Strategy: h11 is the authority on HTTP/1.1 (its framing, its validation, the
connection's state); this module only decides what to send, reads the JSON
answer, and sorts every way an exchange can end into one `Outcome`. It owns no
socket and no clock: the driver writes `request_bytes(...)` to its connection,
feeds whatever it reads to `receive_data(...)` (b"" for end of file) and gets
None until the exchange is over. The request's deadline is the driver's to
enforce.

Speed: a fast path skips h11 where h11's reading is known in advance, and falls
back to h11 on any doubt (benchmarks/test_bench_http.py compares a cycle with a
plain h11 one; tests/test_http.py checks, by differential fuzzing, that the
codec gives what h11 alone gives).

- The request. For one endpoint the request for a given (status, increment)
  never changes, so it is rendered once and cached on the `HeartbeatEndpoint`:
  its h11 events (the `Request` head and the `Data` body), built and validated,
  and the bytes a new h11 connection writes for them. h11 writes a request from
  its events alone (it adds and changes nothing in one), so those bytes are
  what h11 would write for every request; `request_bytes` returns them.
- The answer. A strict recogniser reads the one answer a healthy Jobmon sends:
  the status line `HTTP/1.1 2xx reason` (not 204; the reason may be empty);
  header lines `name: value`, a token name and a value of visible ASCII,
  spaces and tabs (so no obs-fold, no bare LF, no other byte); exactly one
  Content-Length, digits only and within `max_body_bytes`; no
  Transfer-Encoding and no Retry-After; Connection, if any, with only
  keep-alive and close tokens; then exactly Content-Length bytes of body that
  are a JSON object with a non-empty "status" string, and no byte after them.
  h11 accepts every such response and reads the same status, body and
  keep-alive from it (keep-alive unless a close token), and the rules below
  make it `Answered`, so the recogniser gives the outcome h11 would. While such
  an answer is incomplete it waits, holding at most `_PLAIN_HEAD_LIMIT` bytes
  of head and then a body within the limit; h11 would wait too: with no LF
  outside a CRLF and no CRLF CRLF it sees no end of the head, and bytes that
  start like `HTTP/1.1 ` give it nothing to reject early.
- The fall-back. Anything else (end of file, 1xx, non-2xx, 204, chunked,
  HTTP/1.0, duplicate or unusual headers, a larger head or body, bytes after
  the body, a body that is not such a JSON object) hands the exchange to h11:
  a new `h11.Connection` is sent the cached request events and fed at once
  every byte received in this exchange, and the exchange goes on there as it
  always did. A new connection is as good as the previous exchange's, since
  only a kept-alive one goes on and it keeps nothing from that exchange; and
  h11 gives the same events for any split of its input but for the checks it
  makes while waiting for more, which the bytes the recogniser waited on
  always pass. So the outcome is the one h11 would have given reading from the
  first byte.
- Each distinct answer body is decoded once, on either path.

The connection's states, and the only moves between them (while
AWAITING_RESPONSE, the recogniser reads until it answers or falls back to h11,
once per exchange and for the rest of it):

    from               on                                        to
    IDLE               request_bytes                             AWAITING_RESPONSE
    AWAITING_RESPONSE  receive_data: an outcome with keep_alive  IDLE
    AWAITING_RESPONSE  receive_data: any other outcome           CLOSED
    IDLE               receive_data: any bytes, or end of file   CLOSED

`request_bytes` is refused (UsageError) unless IDLE: one request at a time, no
pipelining. A new TCP connection needs a new `HeartbeatConnection`.

Rules for sorting a response (`Failed.reason` in quotes):

1. Interim 1xx responses are skipped (a 101 is a protocol error: we never ask to
   switch protocols). `Expect: 100-continue` is never sent.
2. A final 2xx response whose body is a JSON object with a non-empty string
   "status" is `Answered`. Any other 2xx body is "malformed_body".
3. A final non-2xx response is "http_status", with its Retry-After. From then on
   that status is the reason: a body that is too large, cut short or badly framed
   only makes the connection not reusable. Its body is counted, never kept.
4. A body larger than `max_body_bytes`, declared or received, stops the reading at
   once: "body_too_large" (for a 2xx). No byte beyond the limit is kept.
5. End of file before any byte of the response: "closed_before_response" (on a
   reused connection, usually the server dropping it as idle; the heartbeat can go
   again on a new connection). End of file after part of it: "closed_early".
6. Anything else h11 rejects (h11.RemoteProtocolError): "protocol_error".
7. `keep_alive` is True only when the response was complete, h11 left both sides
   DONE (HTTP/1.1 and no `Connection: close`; h11 never reuses an HTTP/1.0
   connection), no unrequested byte followed it, it did not carry both
   Transfer-Encoding and Content-Length (a sign of response splitting), and the
   outcome is `Answered` or "http_status". Then the connection is ready for the
   next request. (The recogniser reads the same facts from the plain answer.)

Retry-After: delta-seconds are used as they are (clamped to MAX_TIME). An
HTTP-date is turned into seconds by subtracting the response's own Date header,
both in IMF-fixdate form, so no clock is read; without a Date it is ignored.

Malformed input from the peer never raises: it is a `Failed` outcome, because a
driver treats every failed heartbeat the same way (`handle_failure`). Exceptions
are for the caller's mistakes only (`UsageError`). Header values may be
credentials: reprs and error messages never show them.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar, Literal, NamedTuple
from urllib.parse import urlsplit

import h11

from ._actions import SendHeartbeat
from ._errors import UsageError
from ._machine import MAX_TIME

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "USER_AGENT",
    "Answered",
    "Failed",
    "FailureReason",
    "HeartbeatConnection",
    "HeartbeatEndpoint",
    "Outcome",
    "parse_base_url",
]

#: The User-Agent header sansbeat sends (a test keeps it equal to the package's
#: version).
USER_AGENT = "sansbeat/0.1.0"
#: Default largest response body (bytes); a Jobmon answer is about 15 bytes.
DEFAULT_MAX_BODY_BYTES = 64 * 1024

FailureReason = Literal[
    "http_status",
    "malformed_body",
    "body_too_large",
    "closed_before_response",
    "closed_early",
    "protocol_error",
]

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Headers sansbeat writes itself, and headers that would change the message
# framing or the connection handling, which sansbeat and h11 manage.
_RESERVED_HEADERS = frozenset(
    {
        "host",
        "user-agent",
        "content-type",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "expect",
        "te",
        "trailer",
        "upgrade",
    }
)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Visible ASCII, with inner spaces and tabs; h11 forbids surrounding whitespace.
_FIELD_VALUE = re.compile(r"(?:[\x21-\x7e](?:[\t\x20-\x7e]*[\x21-\x7e])?)?")
_REG_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252})")
_PATH_CHAR = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})"
_BASE_PATH = re.compile(rf"(?:/{_PATH_CHAR}*)*")
_URL_CHARS = re.compile(r"[\x21-\x7e]+")
_IMF_FIXDATE = re.compile(
    rb"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), ([0-9]{2}) "
    rb"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([0-9]{4}) "
    rb"([0-9]{2}):([0-9]{2}):([0-9]{2}) GMT"
)
_MONTHS = {
    name: number
    for number, name in enumerate(
        b"Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(),
        start=1,
    )
}
# More digits than this is beyond MAX_TIME (2**40 has 13), so int() never sees a
# huge string.
_MAX_DELAY_DIGITS = len(str(int(MAX_TIME)))
# Cached requests and answers per endpoint: statuses are few and the increment is
# fixed per machine, so this is only a guard against unbounded growth.
_CACHE_LIMIT = 32
_END = h11.EndOfMessage()
# The fast path (see the strategy): the plain answer's head, validated in one
# match. Group 1 is the status code. Names are tokens; values are visible ASCII
# with spaces and tabs (h11 strips the spaces and tabs around them), so neither
# holds a CR or LF and every CRLF in a head that matches starts a header line.
_PLAIN_HEAD = re.compile(
    rb"HTTP/1\.1 (2[0-9][0-9])(?: [\t\x20-\x7e]*)?"
    rb"(?:\r\n[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e]*)*"
)
_PLAIN_START = b"HTTP/1.1 "
# The largest head the fast path holds (h11 allows 16 KiB): beyond it, h11 reads.
_PLAIN_HEAD_LIMIT = 8 * 1024
# A longer Content-Length is left to h11 (it takes up to 20 digits).
_PLAIN_LENGTH_DIGITS = 15
_REDACTED = "<redacted>"


# ---------------------------------------------------------------- validation


def _check_host(field_name: str, host: object) -> str:
    if type(host) is not str or not host:
        raise UsageError(field_name, host, "must be a non-empty string")
    if ":" in host:
        try:
            address = ipaddress.IPv6Address(host)
        except ValueError:
            address = None
        if address is None or address.scope_id is not None:
            raise UsageError(
                field_name,
                host,
                "must be a DNS name, an IPv4 address or an IPv6 address without "
                "brackets or zone",
            )
    elif not _REG_NAME.fullmatch(host):
        raise UsageError(
            field_name,
            host,
            "must be an ASCII DNS name or IP address (at most 253 characters)",
        )
    return host


def _check_port(field_name: str, port: object) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise UsageError(field_name, port, "must be an int from 1 to 65535")
    return port


def _check_base_path(field_name: str, base_path: object) -> str:
    if type(base_path) is not str or not _BASE_PATH.fullmatch(base_path):
        raise UsageError(
            field_name,
            base_path,
            'must be "" or a URL path starting with "/" (RFC 3986 characters)',
        )
    if base_path.endswith("/"):
        raise UsageError(field_name, base_path, 'must not end with "/"')
    return base_path


def _check_headers(headers: object) -> tuple[tuple[str, str], ...]:
    if isinstance(headers, (str, bytes, dict)) or not isinstance(headers, Iterable):
        raise UsageError(
            "extra_headers", _REDACTED, "must be a sequence of (name, value) pairs"
        )
    checked = []
    for pair in headers:
        if type(pair) is not tuple or len(pair) != 2:
            raise UsageError("extra_headers", _REDACTED, "must be (name, value) tuples")
        name, value = pair
        if type(name) is not str or not _TOKEN.fullmatch(name):
            raise UsageError(
                "extra_headers", name, "a header name must be an HTTP token"
            )
        if name.lower() in _RESERVED_HEADERS:
            raise UsageError(
                "extra_headers",
                name,
                "sansbeat sets this header itself, or it would change the framing "
                "or the connection handling",
            )
        if type(value) is not str or not _FIELD_VALUE.fullmatch(value):
            raise UsageError(
                "extra_headers",
                _REDACTED,
                f"the value of {name} must be visible ASCII, inner spaces allowed, "
                "no line breaks and no surrounding whitespace",
            )
        checked.append((name, value))
    return tuple(checked)


def parse_base_url(url: str) -> tuple[str, str, int, str]:
    """Split a Jobmon base URL into (scheme, host, port, base_path).

    `url` is like "http://jobmon.example.org:5000" or "https://host/api/v3"; the
    heartbeat routes live under its path. The scheme is lower-cased, an IPv6 host
    loses its brackets, the port defaults to 80 or 443 and trailing slashes are
    dropped from the path ("" for none).

    Raises:
        UsageError: the URL is not http or https, carries credentials, a query or
            a fragment, or has a bad host, port or path. (Credentials belong in an
            Authorization header in `extra_headers`.)
    """
    if type(url) is not str or not _URL_CHARS.fullmatch(url):
        raise UsageError(
            "base_url", url, "must be a string of visible ASCII (no spaces)"
        )
    try:
        parts = urlsplit(url)
    except ValueError as error:  # such as an unclosed "[" around an IPv6 host
        raise UsageError("base_url", url, str(error)) from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise UsageError("base_url", url, "the scheme must be http or https")
    if "@" in parts.netloc:
        raise UsageError(
            "base_url",
            url,
            "must not carry credentials: pass an Authorization header instead",
        )
    if "?" in url or "#" in url:
        raise UsageError("base_url", url, "must not have a query or a fragment")
    host = _check_host("base_url host", parts.hostname or "")
    try:
        explicit_port = parts.port
    except ValueError:
        explicit_port = 0
    if explicit_port is None:
        port = _DEFAULT_PORTS[scheme]
    else:
        port = _check_port("base_url port", explicit_port)
    base_path = _check_base_path("base_url path", parts.path.rstrip("/"))
    return scheme, host, port, base_path


# ---------------------------------------------------------------- the endpoint


class _Request(NamedTuple):
    """One rendered heartbeat request: its h11 events and the bytes h11 writes
    for them."""

    head: h11.Request
    body: h11.Data
    wire: bytes


def _send_request(conn: h11.Connection, head: h11.Request, body: h11.Data) -> bytes:
    """Send one request through `conn` (idle); returns the bytes h11 wrote."""
    data = conn.send(head)
    more = conn.send(body)
    end = conn.send(_END)
    # send() returns None only for ConnectionClosed, which is never sent.
    assert data is not None
    assert more is not None
    assert end is not None
    return data + more + end


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class HeartbeatEndpoint:
    """Where one workflow run's heartbeats go, and how; validated at construction.

    Build it from a URL with `HeartbeatEndpoint.from_url`. It is immutable and may
    be shared by any number of connections (it caches the rendered requests).

    Attributes:
        host: DNS name or IP address of the server (IPv6 without brackets).
        port: TCP port, 1 to 65535.
        run_id: Jobmon's workflow_run_id, an int >= 0.
        scheme: "http" or "https". It only decides whether Host shows the port;
            TLS, if any, is the driver's job.
        base_path: "" or the path the routes live under, starting with "/" and
            not ending with "/", e.g. "/api/v3".
        extra_headers: (name, value) pairs sent on every request, such as
            ("Authorization", "Bearer ..."). Headers sansbeat writes or that
            govern framing and connection handling are refused. The values are
            not shown by repr().
        max_body_bytes: the largest response body (bytes) read before the
            exchange fails with "body_too_large"; an int >= 1.

    Raises:
        UsageError: a field breaks its rule; the message names it.
    """

    host: str
    port: int
    run_id: int
    scheme: str = "http"
    base_path: str = ""
    extra_headers: tuple[tuple[str, str], ...] = ()
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    _requests: dict[tuple[str, float], _Request] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _answers: dict[bytes, str] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        _check_host("host", self.host)
        _check_port("port", self.port)
        run_id = self.run_id
        if isinstance(run_id, bool) or not isinstance(run_id, int) or run_id < 0:
            raise UsageError("run_id", run_id, "must be an int >= 0")
        if self.scheme not in _DEFAULT_PORTS:
            raise UsageError("scheme", self.scheme, 'must be "http" or "https"')
        _check_base_path("base_path", self.base_path)
        headers = _check_headers(self.extra_headers)
        limit = self.max_body_bytes
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise UsageError("max_body_bytes", limit, "must be an int >= 1")
        # A list of pairs is accepted and stored as a tuple, so the endpoint
        # stays hashable.
        object.__setattr__(self, "extra_headers", headers)

    def __repr__(self) -> str:
        headers = tuple((name, _REDACTED) for name, _ in self.extra_headers)
        return (
            f"HeartbeatEndpoint(host={self.host!r}, port={self.port!r}, "
            f"run_id={self.run_id!r}, scheme={self.scheme!r}, "
            f"base_path={self.base_path!r}, extra_headers={headers!r}, "
            f"max_body_bytes={self.max_body_bytes!r})"
        )

    @classmethod
    def from_url(
        cls,
        base_url: str,
        *,
        run_id: int,
        extra_headers: Iterable[tuple[str, str]] = (),
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> HeartbeatEndpoint:
        """The endpoint for run `run_id` of the Jobmon server at `base_url`.

        `base_url` is split by `parse_base_url`; the other arguments are the
        fields of the same names.

        Raises:
            UsageError: the URL or a field breaks its rule.
        """
        scheme, host, port, base_path = parse_base_url(base_url)
        return cls(
            host=host,
            port=port,
            run_id=run_id,
            scheme=scheme,
            base_path=base_path,
            extra_headers=_check_headers(extra_headers),
            max_body_bytes=max_body_bytes,
        )

    @property
    def target(self) -> str:
        """The request target: `{base_path}/workflow_run/{run_id}/log_heartbeat`."""
        return f"{self.base_path}/workflow_run/{self.run_id}/log_heartbeat"

    @property
    def host_header(self) -> str:
        """The Host header's value: the host, and the port unless the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port == _DEFAULT_PORTS[self.scheme]:
            return host
        return f"{host}:{self.port}"

    def _request(self, status: str, increment: float) -> _Request:
        key = (status, increment)
        rendered = self._requests.get(key)
        if rendered is None:
            body = json.dumps(
                {"status": status, "next_report_increment": increment}
            ).encode("ascii")
            head = h11.Request(
                method="POST",
                target=self.target,
                headers=[
                    ("Host", self.host_header),
                    ("User-Agent", USER_AGENT),
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(body))),
                    *self.extra_headers,
                ],
            )
            data = h11.Data(data=body)
            wire = _send_request(h11.Connection(our_role=h11.CLIENT), head, data)
            rendered = _Request(head, data, wire)
            if len(self._requests) >= _CACHE_LIMIT:
                self._requests.clear()
            self._requests[key] = rendered
        return rendered

    def _answer_status(self, body: bytes) -> str | None:
        # A server answers with a few distinct bodies ({"status":"R"}\n, ...);
        # each is decoded once.
        status = self._answers.get(body)
        if status is None:
            status = _decode_answer(body)
            if status is not None:
                if len(self._answers) >= _CACHE_LIMIT:
                    self._answers.clear()
                self._answers[body] = status
        return status


# ---------------------------------------------------------------- outcomes


@dataclass(frozen=True, slots=True, kw_only=True)
class Answered:
    """The server answered the heartbeat with the status it holds.

    Attributes:
        seq: the heartbeat's sequence number (from `SendHeartbeat.seq`).
        status: the server's status (non-empty). If it differs from the one sent,
            it is a server signal and the lease was not extended.
        keep_alive: whether the connection may carry the next heartbeat.
    """

    seq: int
    status: str
    keep_alive: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Failed:
    """The heartbeat got no usable answer; see the module's rules for `reason`.

    Attributes:
        seq: the heartbeat's sequence number (from `SendHeartbeat.seq`).
        reason: one of "http_status", "malformed_body", "body_too_large",
            "closed_before_response", "closed_early", "protocol_error".
        detail: what went wrong, for people.
        http_status: the final response's status code, if one arrived.
        retry_after: seconds the server asked to wait (its Retry-After), for
            "http_status" only; None when absent or unreadable.
        keep_alive: whether the connection may carry the next heartbeat.
    """

    seq: int
    reason: FailureReason
    detail: str
    http_status: int | None
    retry_after: float | None
    keep_alive: bool


Outcome = Answered | Failed


# ---------------------------------------------------------------- the connection

_IDLE = "idle"
_AWAITING_RESPONSE = "awaiting response"
_CLOSED = "closed"


def _imf_fixdate(value: bytes) -> datetime.datetime | None:
    match = _IMF_FIXDATE.fullmatch(value)
    if match is None:
        return None
    day, month, year, hour, minute, second = match.groups()
    try:
        return datetime.datetime(
            int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second)
        )
    except ValueError:  # 31 Feb, 25:00, a leap second: treat as unreadable
        return None


def _retry_after(value: bytes, date: bytes | None) -> float | None:
    if value.isdigit():
        digits = value.lstrip(b"0")
        if len(digits) > _MAX_DELAY_DIGITS:
            return MAX_TIME
        return min(float(int(digits or b"0")), MAX_TIME)
    retry_at = _imf_fixdate(value)
    sent_at = None if date is None else _imf_fixdate(date)
    if retry_at is None or sent_at is None:
        return None
    return min(max((retry_at - sent_at).total_seconds(), 0.0), MAX_TIME)


def _decode_answer(body: bytes) -> str | None:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, nested too deep
        return None
    if type(document) is not dict:
        return None
    status = document.get("status")
    if type(status) is not str or not status:
        return None
    return status


def _plain_answer(
    received: bytes | bytearray, limit: int
) -> tuple[bytes, bool] | Literal["more", "doubt"]:
    """The fast path's reading of the bytes received so far in an exchange.

    Returns (body, keep_alive) for a complete plain answer (see the strategy)
    with nothing after it, "more" while the bytes are the start of one that h11
    too would wait on, and "doubt" for anything else. The body is not decoded.
    """
    end = received.find(b"\r\n\r\n")
    if end < 0:
        # h11 ends a head at any LF, LF or LF, CR, LF; with no LF outside a
        # CRLF and no CRLF CRLF, it has seen no end of the head either, and
        # with a start of "HTTP/1.1 " it has nothing to reject early.
        if (
            len(received) <= _PLAIN_HEAD_LIMIT
            and received[:9] == _PLAIN_START[: len(received)]
            and received.count(b"\n") == received.count(b"\r\n")
        ):
            return "more"
        return "doubt"
    if end > _PLAIN_HEAD_LIMIT:
        return "doubt"
    head = bytes(received[:end])
    match = _PLAIN_HEAD.fullmatch(head)
    if match is None or match[1] == b"204":
        return "doubt"
    # Every CRLF starts a header line, its name then ":" right after it.
    lower = head.lower()
    if b"\r\ntransfer-encoding:" in lower or b"\r\nretry-after:" in lower:
        return "doubt"
    at = lower.find(b"\r\ncontent-length:")
    if at < 0 or lower.find(b"\r\ncontent-length:", at + 1) >= 0:
        return "doubt"
    start = at + len(b"\r\ncontent-length:")
    stop = head.find(b"\r\n", start)
    value = head[start : None if stop < 0 else stop].strip(b" \t")
    if not value.isdigit() or len(value) > _PLAIN_LENGTH_DIGITS:
        return "doubt"
    length = int(value)
    if length > limit:
        return "doubt"
    keep_alive = True
    at = lower.find(b"\r\nconnection:")
    while at >= 0:
        start = at + len(b"\r\nconnection:")
        stop = lower.find(b"\r\n", start)
        for token in lower[start : None if stop < 0 else stop].split(b","):
            token = token.strip(b" \t")
            if token == b"close":
                keep_alive = False
            elif token and token != b"keep-alive":
                return "doubt"
        at = -1 if stop < 0 else lower.find(b"\r\nconnection:", stop)
    body_start = end + 4
    size = len(received) - body_start
    if size < length:
        return "more"
    if size > length:
        return "doubt"
    return bytes(received[body_start:]), keep_alive


class HeartbeatConnection:
    """The codec for one TCP (or TLS) connection: heartbeats one at a time.

    `request_bytes(send)` gives the bytes to write; `receive_data(data)` takes
    what was read and returns None until the exchange's `Outcome`. After an
    outcome with `keep_alive` the next heartbeat may go on the same connection;
    otherwise close it and make a new `HeartbeatConnection` for a new one.

    Args:
        endpoint: where the heartbeats go.
    """

    __slots__ = (
        "_endpoint",
        "_h11",
        "_request",
        "_received",
        "_state",
        "_seq",
        "_received_any",
        "_eof",
        "_status_code",
        "_retry_after",
        "_body",
        "_body_size",
        "_mixed_framing",
    )

    # Whether responses are first read by the fast path; False (in a subclass)
    # leaves every byte to one h11 connection, as a reference for tests.
    _FAST_PATH: ClassVar[bool] = True

    def __init__(self, endpoint: HeartbeatEndpoint) -> None:
        if not isinstance(endpoint, HeartbeatEndpoint):
            raise UsageError("endpoint", endpoint, "must be a HeartbeatEndpoint")
        self._endpoint = endpoint
        # The fast path makes an h11 connection only for an exchange it leaves
        # to h11 (see the strategy); otherwise one serves every exchange.
        self._h11: h11.Connection | None = (
            None if self._FAST_PATH else h11.Connection(our_role=h11.CLIENT)
        )
        self._request: _Request | None = None
        # The bytes of the exchange so far while the fast path reads it.
        self._received = bytearray()
        self._state = _IDLE
        self._seq = 0
        self._received_any = False
        self._eof = False
        self._status_code: int | None = None
        self._retry_after: float | None = None
        self._body: bytearray | None = None
        self._body_size = 0
        self._mixed_framing = False

    @property
    def endpoint(self) -> HeartbeatEndpoint:
        """Where the heartbeats go."""
        return self._endpoint

    @property
    def reusable(self) -> bool:
        """True when `request_bytes` may be called: idle, and nothing went wrong."""
        return self._state is _IDLE

    @property
    def in_flight(self) -> int | None:
        """The sequence number of the heartbeat awaiting its response, or None."""
        return self._seq if self._state is _AWAITING_RESPONSE else None

    def request_bytes(self, send: SendHeartbeat) -> bytes:
        """Start the exchange for `send`; returns the request's bytes to write.

        The request is `POST {base_path}/workflow_run/{run_id}/log_heartbeat`
        with the JSON body {"status": ..., "next_report_increment": ...}.
        `send.deadline` is not used here: the driver enforces it.

        Raises:
            UsageError: `send` is not a SendHeartbeat with a non-empty string
                status and a finite increment > 0 seconds, or the connection is
                not idle (a heartbeat is in flight, or it can no longer be used).
                Nothing was changed.
        """
        if not isinstance(send, SendHeartbeat):
            raise UsageError("send", send, "must be a SendHeartbeat")
        status = send.status
        if type(status) is not str or not status:
            raise UsageError("send.status", status, "must be a non-empty string")
        increment = send.next_report_increment
        if (
            isinstance(increment, bool)
            or not isinstance(increment, (int, float))
            or not math.isfinite(increment)
            or increment <= 0
        ):
            raise UsageError(
                "send.next_report_increment",
                increment,
                "must be a finite number of seconds > 0",
            )
        if self._state is not _IDLE:
            raise UsageError(
                "send",
                send,
                f"this connection is {self._state}: sansbeat sends one heartbeat "
                "at a time and a connection that is not reusable needs a new one",
            )
        request = self._endpoint._request(status, float(increment))
        wire = request.wire
        if self._FAST_PATH:
            self._h11 = None
        else:
            assert self._h11 is not None
            wire = _send_request(self._h11, request.head, request.body)
        self._request = request
        self._state = _AWAITING_RESPONSE
        self._seq = send.seq
        self._received_any = False
        self._status_code = None
        self._retry_after = None
        self._body = None
        self._body_size = 0
        self._mixed_framing = False
        return wire

    def receive_data(self, data: bytes) -> Outcome | None:
        """Take bytes read from the connection; b"" means the peer closed it.

        `data` may be any bytes-like object. Returns the exchange's outcome once
        it is known, else None (read more).
        Any split of the response gives the same outcome. Between exchanges any
        input (unrequested bytes, or the server closing an idle connection) makes
        the connection not reusable and returns None.

        Raises:
            UsageError: `data` is not bytes. Nothing was changed.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise UsageError("data", data, "must be bytes (b'' for end of file)")
        if self._state is not _AWAITING_RESPONSE:
            self._state = _CLOSED
            return None
        if data:
            self._received_any = True
        else:
            self._eof = True
        conn = self._h11
        if conn is None:
            answer = self._read_plain(data)
            conn = self._h11
            if conn is None:
                return answer
        else:
            conn.receive_data(data)
        try:
            while True:
                event = conn.next_event()
                if type(event) is h11.Data:
                    size = self._body_size + len(event.data)
                    if size > self._endpoint.max_body_bytes:
                        return self._too_large(f"at least {size} bytes")
                    self._body_size = size
                    if self._body is not None:
                        self._body += event.data
                elif type(event) is h11.Response:
                    outcome = self._on_response(event)
                    if outcome is not None:
                        return outcome
                elif type(event) is h11.EndOfMessage:
                    return self._on_end()
                elif event is h11.NEED_DATA:
                    return None
                elif type(event) is not h11.InformationalResponse:
                    # ConnectionClosed and PAUSED cannot come while a response is
                    # due; if one did, h11 and this codec disagree.
                    return self._broken(f"unexpected {event!r}")
        except h11.RemoteProtocolError as error:
            return self._broken(str(error))

    # ------------------------------------------------------------ internals

    def _read_plain(self, data: bytes) -> Answered | None:
        """The fast path: the answer once `data` completes a plain one, else None.

        On any doubt it hands the exchange to a new h11 connection, `self._h11`,
        which has then been sent the request and fed every byte received so far
        (and the end of file, if that is what `data` is), its events not read.
        """
        received = self._received
        if data:
            if received:
                received += data
                verdict = _plain_answer(received, self._endpoint.max_body_bytes)
            else:
                if type(data) is not bytes:
                    data = bytes(data)
                verdict = _plain_answer(data, self._endpoint.max_body_bytes)
                if verdict == "more":
                    received += data
            if verdict == "more":
                return None
            if verdict != "doubt":
                body, keep_alive = verdict
                status = self._endpoint._answer_status(body)
                if status is not None:
                    self._state = _IDLE if keep_alive else _CLOSED
                    self._received = bytearray()
                    return Answered(seq=self._seq, status=status, keep_alive=keep_alive)
        request = self._request
        assert request is not None
        conn = h11.Connection(our_role=h11.CLIENT)
        _send_request(conn, request.head, request.body)
        if received:
            conn.receive_data(bytes(received))
        elif data:
            conn.receive_data(data)
        if not data:
            conn.receive_data(b"")
        self._received = bytearray()
        self._h11 = conn
        return None

    def _on_response(self, response: h11.Response) -> Outcome | None:
        code = response.status_code
        self._status_code = code
        success = 200 <= code < 300
        declared: bytes | None = None
        chunked = False
        retry_after: bytes | None = None
        date: bytes | None = None
        for name, value in response.headers:
            if name == b"content-length":
                declared = value
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"retry-after":
                if retry_after is None:
                    retry_after = value
            elif name == b"date":
                date = value
        if success:
            self._body = bytearray()
        elif retry_after is not None:
            self._retry_after = _retry_after(retry_after, date)
        # The framing rule of RFC 9112 section 6.3 (as h11 applies it): no body
        # for 204 and 304, and Transfer-Encoding beats Content-Length. Both at
        # once may be response splitting, so such a connection is not reused.
        self._mixed_framing = chunked and declared is not None
        if (
            declared is not None
            and not chunked
            and code not in (204, 304)
            and int(declared) > self._endpoint.max_body_bytes
        ):
            return self._too_large(f"Content-Length: {int(declared)}")
        return None

    def _on_end(self) -> Outcome:
        conn = self._h11
        assert conn is not None
        code = self._status_code
        assert code is not None
        # A body the server ended by closing the connection (no Content-Length)
        # leaves nothing to reuse, though h11 may still call both sides DONE.
        keep_alive = (
            conn.our_state is h11.DONE
            and conn.their_state is h11.DONE
            and not conn.trailing_data[0]
            and not self._mixed_framing
            and not self._eof
        )
        outcome: Outcome
        if self._body is None:
            outcome = self._failed(
                "http_status", f"HTTP status {code}", keep_alive=keep_alive
            )
        else:
            status = self._endpoint._answer_status(bytes(self._body))
            if status is None:
                keep_alive = False
                outcome = self._failed(
                    "malformed_body",
                    f'HTTP {code} body is not a JSON object with a "status" string: '
                    f"{bytes(self._body[:80])!r}",
                    keep_alive=keep_alive,
                )
            else:
                outcome = Answered(seq=self._seq, status=status, keep_alive=keep_alive)
        self._body = None
        if keep_alive:
            conn.start_next_cycle()
            self._state = _IDLE
        else:
            self._state = _CLOSED
        return outcome

    def _too_large(self, what: str) -> Failed:
        limit = self._endpoint.max_body_bytes
        self._state = _CLOSED
        self._body = None
        code = self._status_code
        if code is not None and not 200 <= code < 300:
            return self._failed(
                "http_status",
                f"HTTP status {code} (then a body of {what}, over {limit})",
                keep_alive=False,
            )
        return self._failed(
            "body_too_large",
            f"body of {what}, over the limit of {limit}",
            keep_alive=False,
        )

    def _broken(self, detail: str) -> Failed:
        self._state = _CLOSED
        self._body = None
        code = self._status_code
        reason: FailureReason
        if code is not None and not 200 <= code < 300:
            reason = "http_status"
            detail = f"HTTP status {code} (then: {detail})"
        elif not self._eof:
            reason = "protocol_error"
        elif self._received_any:
            reason = "closed_early"
        else:
            reason = "closed_before_response"
        return self._failed(reason, detail, keep_alive=False)

    def _failed(
        self, reason: FailureReason, detail: str, *, keep_alive: bool
    ) -> Failed:
        return Failed(
            seq=self._seq,
            reason=reason,
            detail=detail,
            http_status=self._status_code,
            retry_after=self._retry_after if reason == "http_status" else None,
            keep_alive=keep_alive,
        )
