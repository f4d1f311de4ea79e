"""``e2hil-sim --env.launch.num_actors=2``: two sim actors on one learner, end to end over loopback gRPC."""

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("gym_hil")
pytest.importorskip("grpc")


@pytest.mark.e2e
def test_two_sim_actors_share_the_budget_and_are_reported_apart(short_sim_run):
    result, out = short_sim_run  # conftest.py: 500 env steps, 2 actors, 2 updates per env step
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "2 actors, 250 env steps each" in result.stdout

    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_actors"] == 2 and summary["actor_exit_codes"] == {"actor_0": 0, "actor_1": 0}
    by_actor = summary["by_actor"]
    assert sorted(by_actor) == ["actor_0", "actor_1"], summary
    assert all(a["episodes"] >= 1 and 0 < a["env_steps"] <= 250 for a in by_actor.values()), by_actor
    assert sum(a["env_steps"] for a in by_actor.values()) == summary["env_steps"]
    for actor_id in by_actor:
        assert f"actor {actor_id}" in result.stdout  # the printed summary has a line per actor

    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    episodes = [r for r in records if r["kind"] == "episode"]
    assert {r["actor"] for r in episodes} == {"actor_0", "actor_1"}
    for actor_id, values in by_actor.items():
        assert values["episodes"] == sum(r["actor"] == actor_id for r in episodes)
    # Lockstep over both actors (each waits at its episode ends for the learner to cover what it
    # sent): test_sim_e2e checks the updates follow the ratio in this run

    for name in ("success_by_actor", "intervention_rate_by_actor"):
        assert (out / "plots" / f"{name}.png").stat().st_size > 0
    logs = out.parent / ".run.launch"
    for actor_id in ("actor_0", "actor_1"):
        assert (logs / f"{actor_id}.out").exists()


@pytest.mark.e2e
@pytest.mark.slow
def test_sigterm_to_the_launcher_stops_every_actor_and_the_learner(tmp_path):
    import signal

    from test_faults_helpers import wait_for
    from test_launcher_faults import Launcher, alive, last_line, process_tree

    launcher = Launcher(tmp_path, "--env.launch.num_actors=2", "--policy.online_steps=100000")
    try:

        def connected() -> bool:
            logs = [launcher.logs / f"actor_{k}.out" for k in range(2)]
            return all(
                log.exists() and "Connection with Learner established" in log.read_text(errors="replace")
                for log in logs
            )

        wait_for(lambda: launcher.popen.poll() is not None or connected(), 240, "both actors to connect")
        assert launcher.popen.poll() is None, launcher.text()
        launcher.children = process_tree(launcher.popen.pid)[1:]
        roles = [
            Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace") for pid in launcher.children
        ]
        assert sum("lerobot_policy_e2hil.launcher.actor" in r for r in roles) == 2, roles
        os.kill(launcher.popen.pid, signal.SIGTERM)
        code = launcher.popen.wait(timeout=200)
        wait_for(lambda: not any(alive(p) for p in launcher.children), 120, "the learner and actors to exit")
    finally:
        launcher.finish()
    assert code == 1, launcher.text()
    summary_dir = launcher.out if launcher.out.exists() else launcher.logs  # nothing checkpointed: removed
    summary = json.loads((summary_dir / "summary.json").read_text())
    assert summary["interrupted"] and summary["reason"] == "the launcher was stopped by SIGTERM", summary
    assert set(summary["actor_exit_codes"]) == {"actor_0", "actor_1"}
    learner_log = (launcher.logs / "learner.out").read_text(errors="replace")
    assert (
        "Shutdown signal" in learner_log
    )  # stopped through LeRobot's handler: a final checkpoint if trained
    assert last_line(launcher.stderr.read_text()).startswith(
        "error: partial run: the launcher was stopped by SIGTERM"
    )
