"""https:// base URLs: TLS with certificate verification on by default.

A test certificate authority (trustme) signs a certificate for 127.0.0.1; a tiny
TLS server on loopback answers one heartbeat per connection. The default context
must refuse it (the authority is not trusted), and a context that trusts the
authority must get the answer, on both gateway flavours.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator

import pytest
import trustme

from sansbeat.adapters import HeartbeatRequestFailed
from sansbeat.adapters.http import HttpGateway

ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"Content-Length: 15\r\nConnection: close\r\n\r\n"
    b'{"status":"R"}\n'
)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Real time: these tests use real sockets."""
    return str(request.param)


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_server(authority: trustme.CA) -> Iterator[str]:
    """A TLS heartbeat server on 127.0.0.1; yields its https:// base URL."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except OSError:
                return  # the listener was closed: the test is over
            with raw:
                try:
                    with context.wrap_socket(raw, server_side=True) as conn:
                        request = b""
                        while b"\r\n\r\n" not in request:
                            chunk = conn.recv(4096)
                            if not chunk:
                                break
                            request += chunk
                        conn.sendall(ANSWER)
                except (ssl.SSLError, OSError):
                    pass  # a client that refused our certificate hung up

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        yield f"https://127.0.0.1:{listener.getsockname()[1]}/api/v3"
    finally:
        stop.set()
        # shutdown (not close) wakes the accept() blocked in the server thread.
        listener.shutdown(socket.SHUT_RDWR)
        thread.join(timeout=5)
        listener.close()
        assert not thread.is_alive()


def test_sync_default_context_refuses_an_untrusted_certificate(tls_server: str) -> None:
    with (
        HttpGateway(tls_server, 1, timeout=5) as gateway,
        pytest.raises(HeartbeatRequestFailed) as raised,
    ):
        gateway.log_heartbeat_sync("R", 45.0)
    assert raised.value.reason == "tls"


def test_sync_trusted_authority_gets_the_answer(
    tls_server: str, authority: trustme.CA
) -> None:
    context = ssl.create_default_context()
    authority.configure_trust(context)
    with HttpGateway(tls_server, 1, ssl_context=context, timeout=5) as gateway:
        assert gateway.log_heartbeat_sync("R", 45.0).status == "R"


@pytest.mark.anyio
async def test_async_default_context_refuses_an_untrusted_certificate(
    tls_server: str,
) -> None:
    async with HttpGateway(tls_server, 1, timeout=5) as gateway:
        with pytest.raises(HeartbeatRequestFailed) as raised:
            await gateway.log_heartbeat("R", 45.0)
    assert raised.value.reason in {"tls", "connect"}


@pytest.mark.anyio
async def test_async_trusted_authority_gets_the_answer(
    tls_server: str, authority: trustme.CA
) -> None:
    context = ssl.create_default_context()
    authority.configure_trust(context)
    async with HttpGateway(tls_server, 1, ssl_context=context, timeout=5) as gateway:
        answer = await gateway.log_heartbeat("R", 45.0)
    assert answer.status == "R"
