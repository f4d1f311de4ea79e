"""benchmarks/teacher_free_failures.py, as docs/sim.md runs it, on a small random checkpoint."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "benchmarks/teacher_free_failures.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, SCRIPT, *args],
        cwd=ROOT,
        env={**os.environ, "MUJOCO_GL": "egl"},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_reports_sampled_and_mode_rollouts_and_how_they_fail(small_sim_checkpoint):
    done = _run("--checkpoint", str(small_sim_checkpoint), "--episodes", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["episodes"] == 2 and report["drift_distance"] == 0.08
    for mode in ("sampled", "mode"):
        part = report[mode]
        assert part["failed"] == round(2 * (1 - part["success"]))
        assert len(part["failed_distance_at_first_close"]) == part["failed"]
        assert part["failed_closed_the_gripper"] == sum(
            d is not None for d in part["failed_distance_at_first_close"]
        )
        assert 0 <= part["failed_beyond_drift_distance"] <= part["failed"]
        assert len(part["successful_episode_steps"]) == 2 - part["failed"]
    # An untrained policy never lifts the cube; its 100-step episodes fail.
    assert report["sampled"]["failed"] == report["mode"]["failed"] == 2


def test_bad_episode_count_is_one_line_and_exit_2(small_sim_checkpoint):
    done = _run("--checkpoint", str(small_sim_checkpoint), "--episodes", "0")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].endswith("--episodes=0 is invalid; allowed values: >= 1")
