"""End to end over real gRPC on loopback: the launcher, LeRobot's learner and actor, E2HiL updates."""

import json

import pytest

pytest.importorskip("gym_hil")
pytest.importorskip("grpc")


@pytest.mark.e2e
def test_launcher_runs_learner_and_actor_over_grpc(short_sim_run):
    result, out = short_sim_run  # conftest.py: 500 env steps, 2 updates per env step, 2 actors
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "summary" in result.stdout

    summary = json.loads((out / "summary.json").read_text())
    assert summary["learner_exit_code"] == 0
    assert summary["env_steps"] >= 300
    assert summary["teacher_free_success"] is not None
    # Lockstep: the learner does 2 updates per env step received; the actor waits for it at each
    # episode end, so only the last episode's updates may be missing when the run stops. Free
    # running, the learner does well under 1 update per env step here.
    ratio, steps = 2.0, summary["env_steps"]
    assert ratio * (steps - 100) - 10 <= summary["opt_steps"] <= ratio * steps + 1, summary
    assert summary["updates_per_env_step"] == round(summary["opt_steps"] / steps, 3)

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

    for actor_id in ("actor_0", "actor_1"):  # conftest.py: two actors
        actor_logs = "\n".join(p.read_text() for p in (out / actor_id / "logs").glob("*.log"))
        assert "Load new parameters from Learner" in actor_logs, actor_id
        assert "Cleanup complete" in actor_logs, actor_id
