"""The scripts in examples/ run as documented, each in a fresh process."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
HIL_SERL = ROOT / "HIL-SERL"


def run_example(name: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_help(name):
    result = run_example(name, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:") and "Traceback" not in result.stderr


@pytest.mark.slow
def test_e2hil_updates_runs_updates_with_diagnostics():
    result = run_example("e2hil_updates.py", "--updates", "2", "--transitions", "100", "--batch-size", "32")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("update ")]
    assert [line.split(":")[0] for line in lines] == ["update 1", "update 2"]
    for line in lines:
        values = dict(re.findall(r"(\S+)=(\S+)", line))
        assert all(math.isfinite(float(v)) for v in values.values()), line
        assert 0 < float(values["e2hil/kept_fraction"]) <= 1
        assert 0 < float(values["e2hil/intervention_fraction"]) < 1  # the flags reached the actor loss
    assert "E2HiLAlgorithm with K=8" in result.stdout


@pytest.mark.slow
def test_convert_turns_the_sac_config_into_the_shipped_e2hil_one(tmp_path):
    output = tmp_path / "e2hil.json"
    result = run_example(
        "convert_hilserl_config.py",
        str(HIL_SERL / "train_config_hilserl_so101.json"),
        "--output",
        str(output),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert '-    "type": "sac",' in result.stdout and '+    "type": "e2hil",' in result.stdout
    assert '+    "num_action_samples": 8,' in result.stdout
    converted = json.loads(output.read_text())
    shipped = json.loads((HIL_SERL / "train_config_e2hil_so101.json").read_text())
    assert converted["algorithm"] == {**shipped["algorithm"], "eps": 1e-8}  # shipped omits eps' default
    assert {k: v for k, v in converted.items() if k not in ("algorithm", "job_name")} == {
        k: v for k, v in shipped.items() if k not in ("algorithm", "job_name")
    }


@pytest.mark.slow
def test_convert_rejects_a_bad_value_in_one_line():
    result = run_example(
        "convert_hilserl_config.py",
        str(HIL_SERL / "train_config_hilserl_so101.json"),
        "--set",
        "num_action_samples=1",
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: algorithm.num_action_samples=1 is invalid")
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""


@pytest.mark.slow
def test_plot_metrics_plots_the_diagnostics_of_a_metrics_file(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    records = [
        {"kind": "episode", "episode": 1, "env_step": 50, "success": False},
        {
            "kind": "train",
            "opt_step": 100,
            "e2hil/kept_fraction": 0.85,
            "e2hil/entropy": 1.5,
            "loss_critic": 2.0,
        },
        {"kind": "train", "opt_step": 200, "e2hil/kept_fraction": 0.84, "e2hil/entropy": float("nan")},
        {
            "kind": "train",
            "opt_step": 300,
            "e2hil/kept_fraction": 0.8,
            "e2hil/entropy": 0.5,
            "e2hil/c_mean": 0.1,
        },
    ]
    lines = [json.dumps(r) for r in records] + ['{"kind": "train", "opt_st']  # torn last line
    (run / "metrics.jsonl").write_text("\n".join(lines))
    result = run_example("plot_metrics.py", str(run / "metrics.jsonl"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "e2hil/kept_fraction: 3 points, last 0.8 at update 300" in result.stdout
    assert "e2hil/entropy: 2 points, last 0.5 at update 300" in result.stdout  # the NaN is skipped
    assert "e2hil/c_mean: 1 points, last 0.1 at update 300" in result.stdout
    assert "c_abs_upper" not in result.stdout
    png = run / "e2hil_diagnostics.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_plot_metrics_without_diagnostics_fails_in_one_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps({"kind": "train", "opt_step": 100, "loss_critic": 1.0}) + "\n")
    result = run_example("plot_metrics.py", str(path))
    assert result.returncode == 2 and result.stderr.startswith("error:")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.e2e
def test_train_and_evaluate_sim_saves_a_checkpoint_and_evaluates_it(tmp_path):
    output = tmp_path / "run"
    result = run_example(
        "train_and_evaluate_sim.py",
        *("--env-steps", "120", "--episodes", "2", "--episode-steps", "20", "--output", str(output)),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    pretrained = output / "pretrained_model"
    for name in ("config.json", "model.safetensors", "policy_preprocessor.json", "policy_postprocessor.json"):
        assert (pretrained / name).is_file(), name
    assert f"checkpoint: {pretrained}" in result.stdout
    assert "[e2hil_seed0] done:" in result.stdout and "120 env steps" in result.stdout
    episodes = re.findall(r"^episode (\d): (success|failure) in (\d+) steps", result.stdout, re.MULTILINE)
    assert [e[0] for e in episodes] == ["0", "1"] and all(1 <= int(e[2]) <= 20 for e in episodes)
    rate = float(re.search(r"teacher-free success: (\S+) over 2 episodes", result.stdout).group(1))
    assert rate == sum(e[1] == "success" for e in episodes) / 2


@pytest.mark.slow
def test_train_and_evaluate_sim_rejects_a_missing_config_in_one_line(tmp_path):
    result = run_example("train_and_evaluate_sim.py", "--config", str(tmp_path / "missing.json"))
    assert result.returncode == 2
    assert result.stderr.startswith("error: bench.config_path=")
    assert len(result.stderr.strip().splitlines()) == 1
