"""The TLS learner's public port (:class:`~lerobot_policy_e2hil.faults.tls_front.TlsFront`).

gRPC Python fails a plaintext client's TLS handshake in its C core without telling Python, so
the learner could not count plaintext actors. The front peeks at each connection's first byte:
plaintext is refused and reported, TLS is relayed to the gRPC server on a loopback port. Here a
real gRPC TLS server (self-signed certificate made with ``openssl`` in the test) sits behind it.
"""

import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from lerobot_policy_e2hil.faults.tls_front import TlsFront, peer_name, starts_tls
from test_faults_helpers import wait_for
from test_transport_security import make_certificate

HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def fronted(certificate):
    """A gRPC TLS echo server on loopback behind a front; yields (front, refusals, peers seen)."""
    cert, key = certificate
    refusals, peers = [], []

    def echo(request, context):
        peers.append(context.peer())
        return request

    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    handler = grpc.unary_unary_rpc_method_handler(echo)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", {"Echo": handler}),))
    credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    backend_port = server.add_secure_port("127.0.0.1:0", credentials)
    front = TlsFront("127.0.0.1", 0, lambda peer, reason: refusals.append((peer, reason)), 0.5)
    server.start()
    front.start(backend_port)
    yield front, refusals, peers
    front.stop()
    server.stop(None)


def _echo(channel, data: bytes = b"hello") -> bytes:
    return channel.unary_unary("/test.Echo/Echo")(data, timeout=10)


def test_a_tls_client_is_relayed_and_the_server_learns_who_it_is(fronted, certificate):
    front, refusals, peers = fronted
    credentials = grpc.ssl_channel_credentials(root_certificates=certificate[0].read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{front.port}", credentials) as channel:
        assert _echo(channel) == b"hello"
        assert _echo(channel, b"x" * 300_000) == b"x" * 300_000  # larger than the relay's buffer
        actor = front.real_peer(peers[-1])
    assert refusals == []
    assert peers[-1].startswith("ipv4:127.0.0.1:") and actor.startswith("ipv4:127.0.0.1:")
    assert actor != peers[-1]  # gRPC sees the front's relay socket; the front knows the actor
    assert front.real_peer("ipv4:10.0.0.7:1234") is None


def test_a_plaintext_connection_is_closed_and_reported_once(fronted):
    front, refusals, _ = fronted
    with socket.create_connection(("127.0.0.1", front.port), timeout=10) as client:
        client.sendall(HTTP2_PREFACE)
        assert client.recv(100) == b""  # closed, nothing answered
        address = client.getsockname()
    wait_for(lambda: refusals, 10, "the refusal")
    assert refusals == [(peer_name(address), "plaintext")]


def test_a_plaintext_grpc_client_is_refused_and_counted(fronted):
    front, refusals, peers = fronted
    with grpc.insecure_channel(f"127.0.0.1:{front.port}") as channel, pytest.raises(grpc.RpcError) as error:
        _echo(channel)
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE
    assert peers == [] and refusals and {reason for _, reason in refusals} == {"plaintext"}


def test_a_silent_connection_is_closed_uncounted(fronted):
    front, refusals, _ = fronted
    with socket.create_connection(("127.0.0.1", front.port), timeout=10) as client:
        assert client.recv(100) == b""  # after first_bytes_timeout_s (0.5 s)
    assert refusals == []


def test_stop_closes_the_port_and_every_connection(certificate):
    front = TlsFront("127.0.0.1", 0, lambda peer, reason: None, 30.0)
    backend = socket.create_server(("127.0.0.1", 0))
    front.start(backend.getsockname()[1])
    client = socket.create_connection(("127.0.0.1", front.port), timeout=10)
    client.sendall(b"\x16\x03\x01")  # a TLS record: relayed to the (silent) backend
    relayed, _ = backend.accept()
    threads = [t for t in threading.enumerate() if t.name.startswith("e2hil-tls-")]
    assert {t.name for t in threads} == {"e2hil-tls-front", "e2hil-tls-relay"}
    front.stop()
    assert client.recv(100) == b""
    for thread in threads:
        thread.join(timeout=10)
        assert not thread.is_alive()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", front.port), timeout=5)
    for sock in (client, relayed, backend):
        sock.close()


def test_only_a_tls_handshake_record_is_tls():
    assert starts_tls(b"\x16\x03\x01")
    assert not starts_tls(HTTP2_PREFACE) and not starts_tls(b"") and not starts_tls(b"\x80")
    assert peer_name(("10.0.0.7", 51234)) == "ipv4:10.0.0.7:51234"
    assert peer_name(("::1", 51234, 0, 0)) == "ipv6:[::1]:51234"
