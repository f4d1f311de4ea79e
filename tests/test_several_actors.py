"""Issue 17, item 1: several actors on one learner, on LeRobot's gRPC transport.

LeRobot 0.6.1 puts each new set of weights once in one queue that every actor's parameter
stream reads, so with two actors each set reaches one of them; and the learner cannot tell
which actor sent what. The in-process tests serve LeRobot's ``start_learner`` on loopback; the
end-to-end test runs a sim learner (TLS and a token) with two sim actors, kills one, and starts
a third.
"""

import contextlib
import queue
import signal
import threading
import time
from multiprocessing import Event, Queue
from types import SimpleNamespace

import grpc
import pytest
from lerobot.rl import learner
from lerobot.transport import services_pb2, services_pb2_grpc
from lerobot.transport.utils import receive_bytes_in_chunks

from lerobot_policy_e2hil.faults import FaultSettings
from lerobot_policy_e2hil.learner.hooks import _install_server
from lerobot_policy_e2hil.lerobot_layer import patches
from test_faults_helpers import Process, free_port, port_open, records, sim_args, wait_for


def learner_cfg(port: int) -> SimpleNamespace:
    address = SimpleNamespace(
        learner_host="127.0.0.1", learner_port=port, policy_parameters_push_frequency=0, queue_get_timeout=0.1
    )
    concurrency = SimpleNamespace(learner="threads")
    return SimpleNamespace(policy=SimpleNamespace(actor_learner_config=address, concurrency=concurrency))


@pytest.fixture
def serve(monkeypatch):
    """LeRobot's ``start_learner`` in a thread, with or without the fault handling's server hooks."""
    started = []

    def start(with_faults: bool) -> tuple[int, Queue]:
        patches.install("learner")
        module = SimpleNamespace(
            MAX_WORKERS=8, LearnerService=learner.LearnerService, start_learner=learner.start_learner
        )
        if with_faults:
            _install_server(FaultSettings())
        monkeypatch.setattr(learner, "MAX_WORKERS", module.MAX_WORKERS)
        monkeypatch.setattr(learner, "LearnerService", module.LearnerService)
        port, shutdown, parameters = free_port(), Event(), Queue()
        args = (parameters, Queue(), Queue(), shutdown, learner_cfg(port))
        thread = threading.Thread(target=module.start_learner, args=args, daemon=True)
        thread.start()
        started.append((shutdown, thread))
        wait_for(lambda: port_open(port), 30, "the learner's gRPC server")
        return port, parameters

    with patches.isolated_hooks():
        yield start
        for shutdown, thread in started:
            shutdown.set()
            thread.join(timeout=30)


class ParameterReader:
    """An actor's parameter stream: collects every set of weights it receives."""

    def __init__(self, port: int):
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.received: Queue = Queue()
        self.stop = Event()
        stream = services_pb2_grpc.LearnerServiceStub(self.channel).StreamParameters(services_pb2.Empty())
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream) -> None:
        with contextlib.suppress(grpc.RpcError):
            receive_bytes_in_chunks(stream, self.received, self.stop)

    def got(self, wanted: int, timeout: float = 10.0) -> list[bytes]:
        items = []
        deadline = time.monotonic() + timeout
        while len(items) < wanted and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                items.append(self.received.get(timeout=0.2))
        return items

    def close(self) -> None:
        self.stop.set()
        self.channel.close()


@pytest.mark.slow
def test_every_connected_actor_receives_every_parameter_version_and_a_joining_one_the_newest(serve):
    port, parameters = serve(with_faults=True)
    first, second = ParameterReader(port), ParameterReader(port)
    try:
        time.sleep(1.0)  # both streams open before the weights are pushed
        parameters.put(b"weights v1")
        assert first.got(1) == [b"weights v1"] and second.got(1) == [b"weights v1"]
        parameters.put(b"weights v2")
        assert first.got(1) == [b"weights v2"] and second.got(1) == [b"weights v2"]
        late = ParameterReader(port)
        assert late.got(1) == [b"weights v2"]  # at once, not at the next push
        late.close()
    finally:
        first.close()
        second.close()


@pytest.mark.slow
def test_lerobot_alone_gives_each_version_to_one_actor_only(serve):
    port, parameters = serve(with_faults=False)
    first, second = ParameterReader(port), ParameterReader(port)
    try:
        time.sleep(1.0)
        parameters.put(b"weights v1")
        got = first.got(1, timeout=3) + second.got(1, timeout=3)
        assert got == [b"weights v1"]  # the other actor never gets v1
    finally:
        first.close()
        second.close()


@pytest.mark.slow
def test_an_actor_gone_in_the_middle_of_a_message_is_seen_leaving(serve, monkeypatch):
    """gRPC drops a parameter stream whose actor died while a message was being sent (the learner's
    stream is then suspended between two chunks): the learner still records that the actor left."""
    from lerobot_policy_e2hil.learner.hooks import LEARNER

    events: list[dict] = []
    monkeypatch.setattr(LEARNER, "listeners", [lambda kind, fields: events.append({"kind": kind, **fields})])
    port, parameters = serve(with_faults=True)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        stream = services_pb2_grpc.LearnerServiceStub(channel).StreamParameters(services_pb2.Empty())
        wait_for(lambda: any(e.get("event") == "joined" for e in events), 10, "the stream to open")
        parameters.put(bytes(5 * 2**21))  # five of LeRobot's 2 MB chunks
        first = next(stream)
        assert first.transfer_state == services_pb2.TransferState.TRANSFER_BEGIN
        stream.cancel()  # as the kernel does for a SIGKILLed actor: the stream ends mid-message
        wait_for(
            lambda: any(e.get("event") == "left" for e in events), 10, "the learner to see the actor leave"
        )
    finally:
        channel.close()


def test_episodes_env_steps_and_transitions_are_counted_per_actor_and_in_total():
    from lerobot_policy_e2hil.learner.hooks import RunCounter

    counter = RunCounter()
    counter.count({"Interaction step": 19, "Episode steps": 20}, "left_arm")
    counter.count({"Interaction step": 9, "Episode steps": 10}, "right_arm")
    counter.count({"Interaction step": 49, "Episode steps": 30}, "left_arm")
    counter.add_transitions("right_arm", 10, 2)
    assert (counter.steps, counter.episodes) == (60, 3)
    assert counter.actor_fields("left_arm") == {
        "Actor id": "left_arm",
        "Actor episodes": 2,
        "Actor env steps": 50,
        "Actor transitions": 0,
    }
    assert counter.actors["right_arm"]["rejected"] == 2
    restored = RunCounter()
    restored.restore(counter.state())  # what a checkpoint keeps
    assert restored.actors == counter.actors


def test_actor_ids_are_checked():
    from lerobot_policy_e2hil.errors import ConfigError

    assert FaultSettings(actor_id="left_arm-2").actor_id == "left_arm-2"
    with pytest.raises(ConfigError, match=r"faults.actor_id='left arm' is invalid"):
        FaultSettings(actor_id="left arm")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    from test_transport_security import make_certificate

    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.mark.e2e
def test_two_sim_actors_on_one_learner_one_killed_a_third_joins(tmp_path, certificate, monkeypatch):
    pytest.importorskip("gym_hil")
    cert, key = certificate
    token_file = tmp_path / "token"
    token_file.write_text("a-shared-secret\n")
    security = [
        f"--faults.tls_cert={cert}",
        f"--faults.tls_key={key}",
        f"--faults.tls_ca={cert}",
        f"--faults.token_file={token_file}",
    ]
    port, out = free_port(), tmp_path / "run"
    args = [*sim_args(port, policy__online_step_before_learning=60), *security]
    processes: list[Process] = []

    def start_actor(name: str, seed: int) -> Process:
        actor_args = [
            *args,
            "--policy.online_steps=100000",
            f"--faults.actor_id={name}",
            f"--env.env_seed={seed}",
            f"--output_dir={out / name}",
        ]
        process = Process("actor", actor_args, tmp_path / f"{name}.out")
        processes.append(process)
        return process

    def episodes(actor: str, since: int = 0) -> list[dict]:
        return [r for r in records(out, "episode")[since:] if r.get("actor") == actor]

    def loads(process: Process) -> int:
        return process.text().count("Load new parameters from Learner")

    def counted(actor: str) -> bool:
        # transitions and episode messages come on separate streams: an actor's first episode
        # record can precede the learner's receipt of its transitions (the count is cumulative)
        return any(r.get("actor_transitions") for r in episodes(actor))

    try:
        learner_process = Process("learner", [*args, f"--output_dir={out}"], tmp_path / "learner.out")
        processes.append(learner_process)
        wait_for(lambda: port_open(port), 240, "the learner", (learner_process,))
        a, b = start_actor("robot_a", 1), start_actor("robot_b", 2)
        wrong_token = tmp_path / "wrong_token"
        wrong_token.write_text("not-the-secret\n")
        rogue = Process(
            "actor",
            [
                *args,
                f"--faults.token_file={wrong_token}",
                "--faults.actor_id=rogue",
                f"--output_dir={out / 'rogue'}",
            ],
            tmp_path / "rogue.out",
        )
        processes.append(rogue)
        both = (learner_process, a, b)
        wait_for(lambda: loads(a) >= 2 and loads(b) >= 2, 300, "parameters at both actors", both)
        wait_for(
            lambda: counted("robot_a") and counted("robot_b"),
            120,
            "episodes of both actors with their transitions counted",
            both,
        )
        assert rogue.popen.wait(timeout=240) == 1
        assert (
            rogue.text().strip().splitlines()[-1].startswith("error: the learner refused the actor's token")
        )
        a.stop(signal.SIGKILL)
        wait_for(
            lambda: any(r["event"] == "left" and r["actor"] == "robot_a" for r in records(out, "actor")),
            60,
            "the learner to see robot_a gone",
            (learner_process, b),
        )
        after_kill = len(records(out, "episode"))
        b_loads = loads(b)
        wait_for(
            lambda: len(episodes("robot_b", after_kill)) >= 2 and loads(b) > b_loads,
            180,
            "robot_b to go on (episodes, new parameters) after robot_a died",
            (learner_process, b),
        )
        c = start_actor("robot_c", 3)
        wait_for(
            lambda: loads(c) >= 1 and len(episodes("robot_c")) >= 2 and counted("robot_c"),
            240,
            "robot_c to join",
            (learner_process, b, c),
        )
    finally:
        for process in reversed(processes):
            process.stop(signal.SIGKILL, timeout=30)
    joined = {r["actor"] for r in records(out, "actor") if r["event"] == "joined"}
    assert {"robot_a", "robot_b", "robot_c"} <= joined
    all_episodes = records(out, "episode")
    for name in ("robot_a", "robot_b", "robot_c"):
        mine = [r for r in all_episodes if r.get("actor") == name]
        assert [r["actor_episode"] for r in mine] == list(range(1, len(mine) + 1))
        assert mine[-1]["actor_env_step"] == sum(r["length"] for r in mine)
        assert mine[-1]["actor_transitions"] > 0
    assert all_episodes[-1]["env_step"] == sum(r["length"] for r in all_episodes)  # the total
    assert "gRPC server on" in learner_process.text() and "TLS and token check" in learner_process.text()
    assert "Refused calls (wrong token from ipv4:127.0.0.1:" in learner_process.text()
    assert not [r for r in all_episodes if r.get("actor") == "rogue"]
    assert any(r["reason"] == "wrong token" for r in records(out, "call_refused"))


def test_benchmark_rates_count_env_steps_updates_and_each_actor_in_the_window():
    import importlib.util

    from test_faults_helpers import ROOT

    spec = importlib.util.spec_from_file_location(
        "bench_several_actors", ROOT / "benchmarks/bench_several_actors.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rates = bench.rates
    records = [
        {"kind": "train", "wall_s": 10.0, "opt_step": 100},
        {"kind": "episode", "wall_s": 12.0, "length": 30, "actor": "a"},
        {"kind": "episode", "wall_s": 15.0, "length": 50, "actor": "b"},
        {"kind": "train", "wall_s": 18.0, "opt_step": 140},
        {"kind": "episode", "wall_s": 20.0, "length": 20, "actor": "a"},
        {"kind": "episode", "wall_s": 25.0, "length": 99, "actor": "a"},  # after the window
    ]
    result = rates(records, 10.0, 20.0)
    assert result["env_steps_per_s"] == 10.0 and result["updates_per_s"] == 4.0
    assert result["updates_per_env_step"] == 0.4
    assert result["per_actor"] == {"a": 5.0, "b": 5.0}


@pytest.mark.e2e
def test_benchmark_command_prints_a_line_per_actor_count(tmp_path):
    pytest.importorskip("gym_hil")
    import subprocess
    import sys

    from test_faults_helpers import ROOT

    command = [sys.executable, "benchmarks/bench_several_actors.py", "--actors", "2", "--seconds", "3"]
    command += ["--work_dir", str(tmp_path), "--policy.online_step_before_learning=40", "--batch_size=16"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    line = done.stdout.strip().splitlines()[-1]
    assert line.split("|")[0].strip() == "2" and "actor_0" in line and "actor_1" in line, done.stdout
