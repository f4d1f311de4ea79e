"""Fault points 1 and 2 on loopback with the sim: learner SIGKILL + resume, actor loss + replacement.

One scenario (a module fixture), then one test per claim:

1. learner L1 and actor A1 train until L1 has a checkpoint and has received transitions after it;
2. L1 is SIGKILLed; A1 runs on; L2 starts with ``--resume=true`` on the same output_dir and port;
   A1, never restarted, reconnects by itself;
3. A1 is frozen (SIGSTOP: its connections stay open, as with a hung robot PC), actor A2 starts,
   connects and trains; then A1 is killed (the deterministic form of this case, LeRobot issue
   3979, is in ``test_faults_grpc.py``);
4. A2 is SIGKILLed while the learner runs and actor A3 starts, runs a short budget and exits;
5. the launcher resumes the stopped run with ``--resume=true`` for a few more env steps.
"""

import json
import signal
import time

import pytest
from safetensors.torch import load_file

from lerobot_policy_e2hil.checkpoints import newest_complete, read_marker
from lerobot_policy_e2hil.learner.hooks import tensor_digest
from test_faults_helpers import (
    Process,
    actor_queued_total,
    free_port,
    port_open,
    records,
    sim_args,
    wait_for,
)

# One scenario per session: its tests run on one pytest-xdist worker (make test uses --dist loadgroup)
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("faults_loopback")]

pytest.importorskip("gym_hil")

LONG_BUDGET = "--policy.online_steps=100000"  # actors that are killed before their budget ends


def index_of(output_dir, record) -> int:
    return records(output_dir).index(record)


def after(output_dir, start: int, kind: str) -> list[dict]:
    return [r for r in records(output_dir)[start:] if r["kind"] == kind]


def received(output_dir) -> int:
    transitions = records(output_dir, "transitions")
    return transitions[-1]["received"] if transitions else 0


def newest_published(output_dir) -> dict:
    """The newest checkpoint a killed learner published, as its "checkpoint" record would read.

    Read from its marker on disk: the kill can land after the rename that publishes a checkpoint
    and before the learner writes its record (pruning older buffers comes in between).
    """
    checkpoint = newest_complete(output_dir)  # what the resume will choose
    if checkpoint is None:
        raise AssertionError(f"no published checkpoint under {output_dir}")
    return {**read_marker(checkpoint), "path": str(checkpoint)}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("loopback")
    out, port = tmp / "run", free_port()
    args = sim_args(port)
    learner_args = [*args, f"--output_dir={out}"]
    facts: dict = {"out": out, "tmp": tmp}
    processes: list[Process] = []

    def start(role: str, name: str, extra: list[str]) -> Process:
        process = Process(role, extra, tmp / f"{name}.out")
        processes.append(process)
        return process

    try:
        l1 = start("learner", "learner1", learner_args)
        wait_for(lambda: port_open(port), 240, "learner 1", (l1,))
        a1 = start("actor", "actor1", [*args, LONG_BUDGET, f"--output_dir={out / 'actor1'}"])

        # 1. A checkpoint, and transitions received after it (the ones the kill will lose).
        def checkpoint_then_more():
            if not records(out, "checkpoint"):
                return False
            return received(out) > newest_published(out)["online_buffer"] + 20

        wait_for(checkpoint_then_more, 300, "a checkpoint and transitions after it", (l1, a1))

        # 2. SIGKILL the learner; the actor runs on; resume.
        l1.stop(signal.SIGKILL)
        killed_at = time.monotonic()
        facts["queued_at_kill"] = actor_queued_total(a1.text())  # read after the kill: an upper bound
        facts["checkpoint"] = newest_published(out)
        assert records(out, "checkpoint")[-1]["step"] <= facts["checkpoint"]["step"]
        facts["received_before_kill"] = received(out)
        facts["records_before_resume"] = len(records(out))
        time.sleep(3)
        resumed_at = time.monotonic()
        l2 = start("learner", "learner2", [*learner_args, "--resume=true"])
        wait_for(lambda: port_open(port), 240, "learner 2", (l2,))
        facts["l2_port_s"] = time.monotonic() - resumed_at
        facts["resume"] = wait_for(lambda: records(out, "resume"), 240, "the resume record", (l2, a1))[0]
        start_l2 = index_of(out, facts["resume"])

        def a1_delivered_all_but_the_lost():
            # Everything A1 queued is in the learner except what L1 had after its checkpoint.
            got = facts["checkpoint"]["online_buffer"] + sum(
                r["batch"] for r in after(out, start_l2, "transitions")
            )
            lost = actor_queued_total(a1.text()) - got
            return (
                got > facts["checkpoint"]["online_buffer"]
                and lost <= facts["queued_at_kill"] - facts["checkpoint"]["online_buffer"]
                and {"got": got, "lost": lost}
            )

        facts["a1_end_to_end"] = wait_for(
            a1_delivered_all_but_the_lost, 120, "A1's transitions after resume", (l2, a1)
        )
        facts["outage_s"] = time.monotonic() - killed_at
        wait_for(
            lambda: any(r["opt_step"] > facts["checkpoint"]["step"] for r in after(out, start_l2, "train")),
            120,
            "training after the resume",
            (l2, a1),
        )
        facts["a1_log"] = a1.text()

        # 3. Freeze A1 (connections stay open) and start A2.
        a1.send(signal.SIGSTOP)
        before_a2 = len(records(out))
        a2_started = time.monotonic()
        a2 = start("actor", "actor2", [*args, LONG_BUDGET, f"--output_dir={out / 'actor2'}"])
        wait_for(lambda: "Connection with Learner established" in a2.text(), 240, "A2 to connect", (l2, a2))
        facts["a2_connect_s"] = time.monotonic() - a2_started
        wait_for(lambda: len(after(out, before_a2, "transitions")) >= 2, 120, "A2's transitions", (l2, a2))
        opt_at_a2 = max(r["opt_step"] for r in records(out, "train"))
        wait_for(
            lambda: any(r["opt_step"] > opt_at_a2 for r in after(out, before_a2, "train")),
            120,
            "training on A2's data",
            (l2, a2),
        )
        facts["a2_received"] = sum(r["batch"] for r in after(out, before_a2, "transitions"))
        a1.stop(signal.SIGKILL)

        # 4. SIGKILL A2 while the learner runs; A3 replaces it and runs a short budget.
        a2.stop(signal.SIGKILL)
        before_a3 = len(records(out))
        a3 = start("actor", "actor3", [*args, "--policy.online_steps=150", f"--output_dir={out / 'actor3'}"])
        facts["a3_exit"] = a3.popen.wait(timeout=300)
        facts["a3_log"] = a3.text()
        wait_for(
            lambda: (
                sum(r["batch"] for r in after(out, before_a3, "transitions")) >= actor_queued_total(a3.text())
            ),
            60,
            "A3's transitions",
            (l2,),
        )
        facts["a3_received"] = sum(r["batch"] for r in after(out, before_a3, "transitions"))
        facts["l2_exit"] = l2.stop(signal.SIGINT)
        facts["l2_log"] = l2.text()
        facts["records"] = records(out)
        facts["start_l2"] = start_l2
    finally:
        for process in processes:
            process.send(signal.SIGCONT)
            process.stop(signal.SIGKILL, timeout=30)
    print(
        "\n[faults] lost at the learner kill: "
        f"{facts['received_before_kill'] - facts['resume']['online_buffer']} transitions "
        f"(received {facts['received_before_kill']}, checkpoint {facts['checkpoint']['online_buffer']}); "
        f"A1 end to end {facts['a1_end_to_end']}; learner 2 listening {facts['l2_port_s']:.1f} s after its "
        f"start; kill to A1's data flowing again {facts['outage_s']:.1f} s; "
        f"A2 connected {facts['a2_connect_s']:.1f} s after its start"
    )
    return facts


def test_resume_restores_counters_networks_optimizers_and_buffers(scenario):
    checkpoint, resume = scenario["checkpoint"], scenario["resume"]
    assert resume["checkpoint"] == checkpoint["path"]  # the last complete checkpoint before the kill
    assert resume["opt_step"] == checkpoint["step"]
    assert resume["interaction_step"] == checkpoint["interaction_step"] > 0
    assert resume["episodes"] == checkpoint["episodes"] > 0
    assert resume["online_buffer"] == checkpoint["online_buffer"]
    assert resume["offline_buffer"] == checkpoint["offline_buffer"] > 0  # the intervention/demo buffer

    path = scenario["out"] / "checkpoints" / checkpoint["path"].rsplit("/", 1)[-1]
    digests = resume["digests"]
    assert digests["policy"] == tensor_digest(load_file(str(path / "pretrained_model" / "model.safetensors")))
    assert digests["algorithm"] == tensor_digest(load_file(str(path / "algorithm" / "model.safetensors")))
    assert {"optimizer/actor", "optimizer/critic", "optimizer/temperature"} <= set(digests)
    for name in [key.split("/", 1)[1] for key in digests if key.startswith("optimizer/")]:
        saved = load_file(str(path / "training_state" / name / "optimizer_state.safetensors"))
        assert digests[f"optimizer/{name}"] == tensor_digest(saved), name


def test_transitions_lost_at_a_learner_kill_are_only_those_after_the_last_checkpoint(scenario):
    received_before_kill = scenario["received_before_kill"]
    at_checkpoint = scenario["checkpoint"]["online_buffer"]
    lost = received_before_kill - scenario["resume"]["online_buffer"]
    after_checkpoint = received_before_kill - at_checkpoint
    assert after_checkpoint > 0  # the scenario did lose something, so the bound is tested
    assert 0 <= lost <= after_checkpoint
    # End to end: what A1 queued but the learner does not have was all queued before the kill.
    assert scenario["a1_end_to_end"]["lost"] <= scenario["queued_at_kill"] - at_checkpoint


def test_running_actor_reconnects_by_itself_and_training_goes_on(scenario):
    log = scenario["a1_log"]
    for stream in ("transitions", "interactions", "parameters"):
        assert f"The {stream} stream to the learner ended; reconnecting" in log
        assert f"The {stream} stream reconnected after" in log
    assert "not ready (attempt" in log  # the wait for the restarted learner was logged
    start = scenario["start_l2"]
    l2_train = [r for r in scenario["records"][start:] if r["kind"] == "train"]
    assert l2_train and l2_train[-1]["opt_step"] > scenario["checkpoint"]["step"]
    l2_checkpoints = [r for r in scenario["records"][start:] if r["kind"] == "checkpoint"]
    assert l2_checkpoints and l2_checkpoints[0]["step"] > scenario["checkpoint"]["step"]


def test_replacement_actors_connect_while_the_old_one_hangs_or_after_it_died(scenario):
    assert scenario["a2_received"] > 0  # A2 connected and sent while A1 held its connections open
    assert scenario["a3_exit"] == 0
    assert "Connection with Learner established" in scenario["a3_log"]
    assert "Cleanup complete" in scenario["a3_log"]
    assert scenario["a3_received"] >= actor_queued_total(scenario["a3_log"]) > 0
    assert "parameter stream ended (actor gone)" in scenario["l2_log"]
    assert scenario["l2_exit"] == 0


def test_env_steps_and_episodes_count_on_across_restart_and_replacements(scenario):
    start = scenario["start_l2"]
    episodes = [r for r in scenario["records"][start:] if r["kind"] == "episode"]
    assert len(episodes) >= 3
    previous = scenario["resume"]["interaction_step"]
    count = scenario["resume"]["episodes"]
    for episode in episodes:
        count += 1
        assert 1 <= episode["length"] <= 100
        assert episode["env_step"] == previous + episode["length"]
        assert episode["episode"] == count
        previous = episode["env_step"]
    final = json.loads((scenario["out"] / "checkpoints" / "last" / "e2hil_complete.json").read_text())
    assert final["interaction_step"] == previous


def test_launcher_resumes_the_run_with_a_new_actor_for_the_steps_left(scenario, tmp_path):
    import subprocess
    import sys

    from test_faults_helpers import ROOT, SIM_JSON

    out = scenario["out"]
    last = (out / "checkpoints" / "last").resolve()
    done = json.loads((last / "e2hil_complete.json").read_text())
    command = [
        sys.executable, "-m", "lerobot_policy_e2hil.launcher.train",
        "--config_path", str(SIM_JSON),
        f"--output_dir={out}",
        "--resume=true",
        f"--policy.online_steps={done['interaction_step'] + 120}",
        "--env.launch.eval_episodes=0",
        "--env.launch.progress_interval_s=5",
        "--faults.connect_timeout_s=120",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=420, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"resuming from {last}" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["learner_exit_code"] == 0
    resume = records(out, "resume")[-1]
    assert (resume["opt_step"], resume["interaction_step"]) == (done["step"], done["interaction_step"])
    actor_log = (out / "actor-resume1" / "logs").glob("*.log")
    queued = actor_queued_total("\n".join(p.read_text() for p in actor_log))
    assert 0 < queued <= 120  # the new actor ran only the steps left
    assert summary["env_steps"] == done["interaction_step"] + queued
