"""docs/sim.md's collapse-diagnosis command, as typed, on a launcher run and a benchmark run.

The runs are written in the two formats the script reads: the launcher's ``metrics.jsonl`` and
``summary.json`` (records as :mod:`lerobot_policy_e2hil.sim.report` reads them) and the benchmark
trainer's ``result.json`` (episodes as ``[env step, length, intervention steps, success, demo]``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _launcher_run(folder: Path) -> Path:
    """40 episodes of 25 steps: the first 20 succeed with 5 teacher steps, the last 20 fail alone."""
    records = []
    for index in range(40):
        success = int(index < 20)
        records.append(
            {
                "kind": "episode",
                "env_step": 25 * (index + 1),
                "length": 25,
                "success": success,
                "intervention_steps": 5 * success,
            }
        )
        records.append(
            {"kind": "train", "env_step": 25 * (index + 1), "opt_step": 15 * (index + 1), "loss_critic": 2.0}
        )
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    (folder / "summary.json").write_text(json.dumps({"env_steps": 1000, "teacher_free_success": 0.25}))
    return folder


def _bench_run(folder: Path) -> Path:
    episodes = [[30 * (index + 1), 30, 0, 1, 0] for index in range(10)]
    train = [
        {"opt_step": 6 * (index + 1), "env_step": 30 * (index + 1), "temperature": 0.01}
        for index in range(10)
    ]
    result = {
        "name": "sac_s0",
        "episodes": episodes,
        "train_log": train,
        "evals": [{"env_step": 300, "success": 0.5}],
    }
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps(result))
    return folder


def _run(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "benchmarks/collapse_diagnosis.py", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)


def test_collapse_diagnosis_tables_and_plot_for_both_run_formats(tmp_path):
    launcher = _launcher_run(tmp_path / "outputs" / "sim" / "seed1000")
    bench = _bench_run(tmp_path / "bench" / "sac_s0")
    out = tmp_path / "docs" / "collapse.png"
    done = _run(str(launcher), str(bench), "--out", str(out), "--slices", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    text = done.stdout
    assert "## outputs/sim/seed1000" in text and "## sac_s0" in text
    assert "teacher-free evaluations (env step: success): 1000: 25%" in text
    assert "teacher-free evaluations (env step: success): 300: 50%" in text
    launcher_rows = text.split("## outputs/sim/seed1000")[1].split("## sac_s0")[0]
    # two slices of 500 env steps: all successes with 5 of 25 steps from the teacher, then none
    assert "| 500 | 20 | 1.00 | 25 | 0.20 | 300 |" in launcher_rows
    assert "| 1000 | 20 | 0.00 | 25 | 0.00 | 600 |" in launcher_rows
    assert out.stat().st_size > 10_000 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_collapse_diagnosis_bad_input_is_one_line(tmp_path):
    for args, message in (
        (
            [str(tmp_path)],
            f"run '{tmp_path}': no result.json (benchmark run) or metrics.jsonl (launcher run) in it",
        ),
        ([str(_bench_run(tmp_path / "b")), "--slices", "0"], "--slices must be >= 1, got 0"),
    ):
        done = _run(*args)
        assert done.returncode == 2
        assert done.stderr.splitlines()[-1].endswith(message)
        assert "Traceback" not in done.stderr
