"""End to end over real gRPC on loopback: the launcher, LeRobot's learner and actor, E2HiL updates."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("gym_hil")
pytest.importorskip("grpc")

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "HIL-SERL" / "train_gym_hil_env_SIM.json"


def test_launcher_runs_learner_and_actor_over_grpc(tmp_path):
    out = tmp_path / "run"
    command = [
        sys.executable, "-m", "lerobot_policy_e2hil.sim.train",
        "--config_path", str(CONFIG),
        f"--output_dir={out}",
        "--policy.online_steps=500",
        "--policy.online_step_before_learning=100",
        "--policy.actor_learner_config.policy_parameters_push_frequency=1",
        "--log_freq=10",
        "--save_freq=100000",
        "--batch_size=64",
        "--env.launch.eval_episodes=2",
        "--env.launch.progress_interval_s=5",
        "--env.teacher.demo_episodes=3",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=420, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "summary" in result.stdout

    summary = json.loads((out / "summary.json").read_text())
    assert summary["learner_exit_code"] == 0
    assert summary["env_steps"] >= 300
    assert summary["teacher_free_success"] is not None

    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    episodes = [r for r in records if r["kind"] == "episode"]
    train = [r for r in records if r["kind"] == "train"]
    assert episodes[0]["intervened"] and episodes[0]["intervention_rate"] == 1.0  # demonstration
    assert any(r["intervention_steps"] > 0 for r in episodes)
    assert train, "the learner ran no logged update"
    assert all("e2hil/kept_fraction" in r and "e2hil/entropy" in r for r in train)
    assert 0.0 < train[-1]["e2hil/kept_fraction"] <= 1.0

    checkpoint = out / "checkpoints" / "last" / "pretrained_model"
    assert (checkpoint / "model.safetensors").exists()
    assert (out / "dataset_offline").exists(), "interventions were not kept in the intervention buffer"
    for name in ("success", "intervention_rate", "policy_entropy", "kept_fraction"):
        assert (out / "plots" / f"{name}.png").stat().st_size > 0

    actor_logs = "\n".join(p.read_text() for p in (out / "actor" / "logs").glob("*.log"))
    assert "Load new parameters from Learner" in actor_logs
    assert "Cleanup complete" in actor_logs
