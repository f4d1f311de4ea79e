"""Issue 17, items 2 and 3: TLS and a shared token on the learner's port; no unpickling of what it receives.

LeRobot 0.6.1 serves a plaintext port that checks nobody and unpickles the actor's interaction
messages, so anyone who reaches the port can run code in the learner. Here LeRobot's own
``start_learner`` serves on loopback with the fault handling's server hooks (TLS with a
self-signed certificate made by ``openssl`` in the test, the token check), and clients send to
it the way an actor does.
"""

import logging
import pickle
import shutil
import subprocess
import threading
from multiprocessing import Event, Queue
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest
from lerobot.rl import learner
from lerobot.transport import services_pb2, services_pb2_grpc
from lerobot.transport.utils import send_bytes_in_chunks

from lerobot_policy_e2hil.faults import FaultSettings
from lerobot_policy_e2hil.learner.hooks import LEARNER, _install_counter, _install_server
from lerobot_policy_e2hil.lerobot_layer import patches
from test_faults_helpers import free_port, port_open, wait_for

TOKEN = "correct-horse-battery-staple"


class FileMaker:
    """Unpickling this creates ``path``: what an attacker would send instead of an episode message."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def pickle_payload(marker: Path) -> bytes:
    return pickle.dumps({"Interaction step": 5, "Episodic reward": 1.0, "x": FileMaker(marker)})


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost in ``folder``, and its key."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


def learner_cfg(port: int) -> SimpleNamespace:
    address = SimpleNamespace(
        learner_host="127.0.0.1", learner_port=port, policy_parameters_push_frequency=1, queue_get_timeout=0.1
    )
    concurrency = SimpleNamespace(learner="threads")
    return SimpleNamespace(policy=SimpleNamespace(actor_learner_config=address, concurrency=concurrency))


@pytest.fixture
def serve(monkeypatch):
    """Run LeRobot's ``start_learner`` in a thread with the fault handling's server hooks.

    ``start(settings, token)`` returns the port and the transition and interaction queues. The
    learner's refusal counter starts from zero (its warnings are rate-limited per process).
    """
    from lerobot_policy_e2hil.wire.messages import RejectCounter

    monkeypatch.setattr(LEARNER, "refusals", RejectCounter("Refused calls", 3600))
    started = []

    def start(settings: FaultSettings | None = None, token: str | None = None) -> tuple:
        patches.install("learner")
        module = SimpleNamespace(
            MAX_WORKERS=learner.MAX_WORKERS,
            LearnerService=learner.LearnerService,
            start_learner=learner.start_learner,
            grpc=learner.grpc,
        )
        settings = settings or FaultSettings()
        if token:
            _install_server(settings, token)
        else:
            _install_server(settings)
        for name in ("MAX_WORKERS", "LearnerService", "grpc"):
            monkeypatch.setattr(learner, name, getattr(module, name))
        port, shutdown = free_port(), Event()
        transitions, interactions = Queue(), Queue()
        args = (Queue(), transitions, interactions, shutdown, learner_cfg(port))
        thread = threading.Thread(target=module.start_learner, args=args, daemon=True)
        thread.start()
        started.append((shutdown, thread))
        wait_for(lambda: port_open(port), 30, "the learner's gRPC server")
        return port, transitions, interactions

    with patches.isolated_hooks():
        yield start
        for shutdown, thread in started:
            shutdown.set()
            thread.join(timeout=30)


def send_interaction(channel, data: bytes) -> None:
    stub = services_pb2_grpc.LearnerServiceStub(channel)
    stub.SendInteractions(send_bytes_in_chunks(data, services_pb2.InteractionMessage), timeout=30)


def drain(queue, timeout: float = 10.0) -> list[bytes]:
    """What the server put in ``queue``: waits for a first item, then takes what is there."""
    items = []
    try:
        items.append(queue.get(timeout=timeout))
        while not queue.empty():
            items.append(queue.get(timeout=1))
    except Exception:
        pass
    return items


@pytest.mark.slow
def test_pickled_interaction_message_sent_to_the_learner_is_not_executed(serve, monkeypatch, tmp_path):
    _install_counter()  # the serve fixture isolates the hooks
    monkeypatch.setattr(LEARNER.counter, "episodes", 0)
    port, _, interactions = serve()
    marker = tmp_path / "created_by_the_payload"
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        send_interaction(channel, pickle_payload(marker))
    received = drain(interactions)
    assert len(received) == 1
    queue = Queue()
    queue.put(received[0])
    wait_for(lambda: not queue.empty(), 10, "the message in the queue")
    learner.process_interaction_messages(queue, 0, None, threading.Event())  # the learner loop's consumer
    assert not marker.exists()
    assert LEARNER.counter.episodes == 0  # skipped, not counted as an episode


def test_interaction_messages_are_json_with_a_size_limit_and_a_schema():
    from lerobot_policy_e2hil.wire.messages import BadMessage, decode_message, encode_message

    message = {
        "Interaction step": 99,
        "Episode steps": 20,
        "Episodic reward": 1.0,
        "Policy frequency [Hz]": 3.5,
    }
    data = encode_message({**message, "nan": float("nan")})
    assert decode_message(data, 1024) == {**message, "nan": None}
    bad = {
        "a pickle": pickle.dumps(message),
        "too large": encode_message({**message, "pad": "x" * 200}),
        "not an object": b"[1, 2]",
        "no step": encode_message({"Episodic reward": 1.0}),
        "text step": encode_message({"Interaction step": "99"}),
        "negative length": encode_message({"Interaction step": 1, "Episode steps": -1}),
        "nested": b'{"Interaction step": 1, "x": {"y": 1}}',
        "text reward": encode_message({"Interaction step": 1, "Episodic reward": "1"}),
        "NaN constant": b'{"Interaction step": 1, "Episodic reward": NaN}',
        "overflowing number": b'{"Interaction step": 1, "Episodic reward": 1e400}',
        "number of 5000 digits": b'{"Interaction step": ' + b"1" * 5000 + b"}",
        "nesting 900 deep": b'{"Interaction step": 1, "x": ' + b"[" * 900 + b"]" * 900 + b"}",
        "nesting 100000 deep": b"[" * 100000 + b"]" * 100000,
    }
    for what, data in bad.items():
        with pytest.raises(BadMessage):
            decode_message(data, 200 if what == "too large" else 10**6)
            pytest.fail(what)


@pytest.mark.slow
def test_a_message_over_the_size_limit_is_refused_and_counted(serve, caplog):
    port, transitions, _ = serve(FaultSettings(max_message_mb=1))
    before = LEARNER.refusals.rejected
    big = b"\0" * (3 * 2**20)  # two chunks of 2 MiB and one more
    stub_channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = services_pb2_grpc.LearnerServiceStub(stub_channel)
    with caplog.at_level(logging.WARNING), pytest.raises(grpc.RpcError) as error:
        stub.SendTransitions(send_bytes_in_chunks(big, services_pb2.Transition), timeout=30)
    stub_channel.close()
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert LEARNER.refusals.rejected == before + 1
    assert drain(transitions, timeout=2) == []
    assert "Refused calls (a message over 1048576 bytes from ipv4:127.0.0.1" in caplog.text


def tls_settings(cert: Path, key: Path, **kwargs) -> FaultSettings:
    return FaultSettings(tls_cert=str(cert), tls_key=str(key), tls_ca=str(cert), **kwargs)


def actor_channel_with(settings: FaultSettings, port: int, token: str | None, monkeypatch):
    from lerobot_policy_e2hil.security import actor_channel

    if token is None:
        monkeypatch.delenv(settings.token_env, raising=False)
    else:
        monkeypatch.setenv(settings.token_env, token)
    return actor_channel("127.0.0.1", port, settings, [], actor_id="robot_1")


@pytest.mark.slow
def test_tls_with_the_token_works_and_its_messages_arrive(serve, certificate, monkeypatch):
    from lerobot_policy_e2hil.wire.messages import encode_message

    settings = tls_settings(*certificate)
    port, _, interactions = serve(settings, TOKEN)
    channel = actor_channel_with(settings, port, TOKEN, monkeypatch)
    try:
        services_pb2_grpc.LearnerServiceStub(channel).Ready(services_pb2.Empty(), timeout=30)
        send_interaction(channel, encode_message({"Interaction step": 3}))
    finally:
        channel.close()
    from lerobot_policy_e2hil.learner.actors import untag

    assert [untag(item) for item in drain(interactions)] == [("robot_1", b'{"Interaction step": 3}')]


@pytest.mark.slow
@pytest.mark.parametrize("token", ["wrong-token", None], ids=["wrong token", "no token"])
def test_wrong_or_missing_token_is_refused_counted_and_nothing_sent_is_used(
    serve, certificate, monkeypatch, caplog, token
):
    settings = tls_settings(*certificate)
    port, transitions, interactions = serve(settings, TOKEN)
    before = LEARNER.refusals.rejected
    channel = actor_channel_with(settings, port, token, monkeypatch)
    stub = services_pb2_grpc.LearnerServiceStub(channel)
    codes = []
    with caplog.at_level(logging.WARNING):
        for call in (
            lambda: stub.Ready(services_pb2.Empty(), timeout=30),
            lambda: stub.SendTransitions(send_bytes_in_chunks(b"data", services_pb2.Transition), timeout=30),
            lambda: send_interaction(channel, b'{"Interaction step": 3}'),
        ):
            with pytest.raises(grpc.RpcError) as error:
                call()
            codes.append(error.value.code())
    channel.close()
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 3
    assert LEARNER.refusals.rejected == before + 3
    reason = "wrong token" if token else "no token"
    lines = [line for line in caplog.messages if line.startswith("[LEARNER] Refused calls")]
    assert len(lines) == 1 and f"{reason} from ipv4:127.0.0.1:" in lines[0], caplog.messages  # rate-limited
    assert drain(transitions, timeout=2) == [] and drain(interactions, timeout=0.5) == []


def actor_waits(
    settings: FaultSettings, port: int, token: str | None, monkeypatch
) -> tuple[bool, str | None]:
    """What the actor's connection wait says: (connected, its fatal message)."""
    from lerobot_policy_e2hil.actor.hooks import ACTOR, wait_for_learner
    from lerobot_policy_e2hil.faults import entry
    from lerobot_policy_e2hil.security import actor_channel

    monkeypatch.setattr(entry, "_FATAL", [])
    monkeypatch.setattr(ACTOR, "settings", settings)
    monkeypatch.setattr(ACTOR, "address", ("127.0.0.1", port))
    if token is None:
        monkeypatch.delenv(settings.token_env, raising=False)
    else:
        monkeypatch.setenv(settings.token_env, token)
    channel = actor_channel("127.0.0.1", port, settings, [])
    try:
        connected = wait_for_learner(services_pb2_grpc.LearnerServiceStub(channel), threading.Event())
    finally:
        channel.close()
    return connected, entry.fatal_message()


@pytest.mark.slow
def test_actor_with_a_wrong_token_stops_with_one_line(serve, certificate, monkeypatch):
    settings = tls_settings(*certificate, connect_timeout_s=600, retry_interval_s=0.2)
    port, _, _ = serve(settings, TOKEN)
    connected, fatal = actor_waits(settings, port, "wrong-token", monkeypatch)
    assert not connected  # at once, not after connect_timeout_s: retrying cannot help
    assert fatal.startswith("the learner refused the actor's token") and "E2HIL_LEARNER_TOKEN" in fatal


@pytest.mark.slow
def test_plaintext_actor_against_a_tls_learner_is_told_to_use_tls(serve, certificate, monkeypatch):
    cert, key = certificate
    port, _, _ = serve(FaultSettings(tls_cert=str(cert), tls_key=str(key)), TOKEN)
    plaintext = FaultSettings(connect_timeout_s=600, retry_interval_s=0.2)
    connected, fatal = actor_waits(plaintext, port, TOKEN, monkeypatch)
    assert not connected  # at once, not after connect_timeout_s
    assert fatal == (
        f"the learner at 127.0.0.1:{port} serves TLS and closed the actor's plaintext connection. Give "
        "the actor the learner's certificate (or its CA) with --faults.tls_ca"
    )


@pytest.mark.slow
def test_the_tls_port_is_grpcs_own_and_closes_a_plaintext_connection(serve, certificate):
    import socket

    cert, key = certificate
    threads_before = {thread.name for thread in threading.enumerate()}
    port, transitions, _ = serve(FaultSettings(tls_cert=str(cert), tls_key=str(key)), TOKEN)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")  # a plaintext gRPC client's first bytes
        assert client.recv(100) == b""  # closed by gRPC, nothing answered
    assert drain(transitions, timeout=0.5) == []
    # No Python thread relays the port: TLS ends in gRPC's C core (gRPC's own TLS credentials)
    new_threads = {thread.name for thread in threading.enumerate()} - threads_before
    assert not any("tls" in name.lower() or "relay" in name.lower() for name in new_threads), new_threads


@pytest.mark.slow
def test_actor_that_trusts_another_certificate_stops_with_one_line(serve, certificate, tmp_path, monkeypatch):
    from lerobot_policy_e2hil.security import untrusted_certificate

    other, _ = make_certificate(tmp_path)
    port, _, _ = serve(tls_settings(*certificate), TOKEN)
    settings = FaultSettings(
        tls_ca=str(other), connect_timeout_s=600, ready_timeout_s=2, retry_interval_s=0.2
    )
    connected, fatal = actor_waits(settings, port, TOKEN, monkeypatch)
    assert not connected  # after the first attempt, not after connect_timeout_s: retrying cannot help
    assert fatal.startswith(
        f"the learner at 127.0.0.1:{port} serves TLS with a certificate that --faults.tls_ca does not "
        "verify (self-signed certificate)."
    ), fatal
    # the learner's own certificate verifies: no such line
    assert untrusted_certificate("127.0.0.1", port, tls_settings(*certificate)) is None


@pytest.mark.slow
def test_tls_actor_against_a_plaintext_learner_is_told_so(serve, certificate, monkeypatch):
    port, _, _ = serve(FaultSettings(), TOKEN)
    settings = FaultSettings(tls_ca=str(certificate[0]), connect_timeout_s=600, retry_interval_s=0.2)
    connected, fatal = actor_waits(settings, port, TOKEN, monkeypatch)
    assert not connected
    assert fatal.startswith(
        f"the TLS handshake with the learner at 127.0.0.1:{port} failed: it serves plaintext"
    )


@pytest.mark.slow
def test_learner_refuses_a_non_loopback_address_without_tls_and_token(certificate, monkeypatch, caplog):
    from lerobot_policy_e2hil.errors import SetupError
    from lerobot_policy_e2hil.security import check_bind, is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10") and not is_loopback("robot-lab")
    with pytest.raises(SetupError, match="without TLS and a token"):
        check_bind("0.0.0.0", 50051, FaultSettings(), None)
    with pytest.raises(SetupError, match="without TLS:"):
        check_bind("0.0.0.0", 50051, FaultSettings(), TOKEN)
    with pytest.raises(SetupError, match="without a token"):
        check_bind("0.0.0.0", 50051, tls_settings(*certificate), None)
    check_bind("0.0.0.0", 50051, tls_settings(*certificate), TOKEN)
    check_bind("127.0.0.1", 50051, FaultSettings(), None)
    with caplog.at_level(logging.WARNING):
        check_bind("0.0.0.0", 50051, FaultSettings(insecure=True), None)
    assert "without TLS and a token (--faults.insecure=true)" in caplog.text


def test_token_comes_from_a_file_or_the_environment_and_bad_settings_are_named(tmp_path, monkeypatch):
    from lerobot_policy_e2hil.errors import ConfigError
    from lerobot_policy_e2hil.security import read_token

    monkeypatch.delenv("E2HIL_LEARNER_TOKEN", raising=False)
    assert read_token(FaultSettings()) is None
    monkeypatch.setenv("E2HIL_LEARNER_TOKEN", " from-env \n")
    assert read_token(FaultSettings()) == "from-env"
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    assert read_token(FaultSettings(token_file=str(token_file))) == "from-file"
    token_file.write_text("\n")
    with pytest.raises(ConfigError, match="faults.token_file=.* is invalid"):
        read_token(FaultSettings(token_file=str(token_file)))
    with pytest.raises(ConfigError, match="faults.tls_cert='a.pem' and faults.tls_key='' are invalid"):
        FaultSettings(tls_cert="a.pem")


@pytest.mark.slow
def test_sim_learner_on_all_interfaces_without_tls_and_token_exits_2_with_one_line(tmp_path, monkeypatch):
    import sys

    from test_faults_helpers import ROOT, SIM_JSON

    monkeypatch.delenv("E2HIL_LEARNER_TOKEN", raising=False)
    command = [
        sys.executable, "-m", "lerobot_policy_e2hil.launcher.learner", "--config_path", str(SIM_JSON),
        "--policy.actor_learner_config.learner_host=0.0.0.0", f"--output_dir={tmp_path / 'run'}",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "error: the learner would serve 0.0.0.0:50051, which is not loopback, without TLS and a token"
        )
    )
    assert not (tmp_path / "run").exists()


def test_a_wrong_token_from_a_file_is_said_to_be_wrong_not_asked_for_in_that_file(tmp_path):
    from lerobot_policy_e2hil.security import refusal_hint

    path = tmp_path / "actor.token"
    hint = refusal_hint(grpc.StatusCode.UNAUTHENTICATED, "bad token", FaultSettings(token_file=str(path)))
    assert f"the token the actor read from the file {path} is not the learner's" in hint
    assert "Give the actor the learner's token in" not in hint
    assert "the token the learner reads (its --faults.token_file or $E2HIL_LEARNER_TOKEN)" in hint
