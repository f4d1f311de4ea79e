"""``benchmarks/sim_runs.py``: the per-seed distribution table of the default run, from summaries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _summary(path: Path, success: float, collapse: bool) -> None:
    path.mkdir(parents=True)
    summary = {
        "teacher_free_success": success,
        "eval_episodes": 50,
        "success_last": 1.0,
        "intervention_rate_all": 0.4,
        "opt_steps": 15000,
        "env_steps": 24990,
        "total_wall_s": 1500.0,
        "collapse": {"best": 1.0, "current": 0.0} if collapse else None,
        "interrupted": False,
    }
    (path / "summary.json").write_text(json.dumps(summary))


@pytest.mark.slow
def test_report_lists_every_seed_and_counts_against_the_targets(tmp_path):
    _summary(tmp_path / "seed1", 0.98, collapse=False)
    _summary(tmp_path / "seed2", 0.0, collapse=True)
    out = subprocess.run(
        [
            sys.executable,
            "benchmarks/sim_runs.py",
            "--seeds",
            "1",
            "2",
            "3",
            "--runs-dir",
            str(tmp_path),
            "--report-only",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "| 1 | 98% (50 ep.)" in out and "| 2 | 0% (50 ep.)" in out and "| 3 | not run" in out
    assert ">= 95% in 1 of 2, below 80% in 1." in out
    rows = json.loads((tmp_path / "distribution.json").read_text())
    assert [r.get("collapse") for r in rows[:2]] == [False, True]


@pytest.mark.slow
def test_evaluate_missing_fills_in_the_teacher_free_figure_of_a_run_without_one(tmp_path):
    from conftest import save_small_sim_checkpoint

    run = tmp_path / "seed7"
    _summary(run, 0.5, collapse=False)
    evaluated = json.loads((run / "summary.json").read_text())
    _summary(tmp_path / "seed8", 0.5, collapse=False)
    summary = {**evaluated, "teacher_free_success": None, "eval_episodes": 0, "interrupted": True}
    (run / "summary.json").write_text(json.dumps(summary))
    save_small_sim_checkpoint(run / "checkpoints" / "last")
    command = [
        sys.executable, "benchmarks/sim_runs.py", "--seeds", "7", "8", "--runs-dir", str(tmp_path),
        "--evaluate-missing", "--", "--env.launch.eval_episodes=2", "--env.max_episode_steps=5",
    ]  # fmt: skip
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    after = json.loads((run / "summary.json").read_text())
    assert after["teacher_free_success"] in (0.0, 0.5, 1.0) and after["eval_episodes"] == 2
    assert after["evaluated_by"] == "benchmarks/sim_runs.py --evaluate-missing"
    assert json.loads((tmp_path / "seed8" / "summary.json").read_text())["teacher_free_success"] == 0.5
    assert "| 7 |" in out.stdout and "evaluated after the run" in out.stdout
