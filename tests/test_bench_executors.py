"""``e2hil-bench suite --executor=ray`` and the local executor: the same runs and records, a study that
moves between them without training a finished run again, failures reported with their cause."""

import importlib.util
import json
import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("gym_hil")

from lerobot_policy_e2hil.bench.cli import main  # noqa: E402
from lerobot_policy_e2hil.bench.config import QUICK_BUDGET, RunConfig  # noqa: E402
from lerobot_policy_e2hil.bench.executors import LOG_FILE, _policy_device  # noqa: E402
from lerobot_policy_e2hil.bench.runs import execute  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason='ray is not installed (pip install -e ".[ray]")')
# A report summary's wall-clock figures (the rest must be equal)
WALL_CLOCK = ("wall_s", "env_steps_per_s", "updates_per_s")
# What must be equal in two records of the same run (the timing is the machine's)
SAME = ("config", "summary", "evals", "episodes", "episode_positions", "train_log", "probe_columns")


# --- flags -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, line",
    [
        (["--executor=dask"], "error: executor='dask' is invalid; allowed values: 'local', 'ray'"),
        (
            ["--ray.address=auto"],
            "error: ray.address='auto' is invalid; allowed values: unset, or an address with --executor=ray",
        ),
    ],
)
def test_bad_executor_flags_print_one_line_and_exit_2(flags, line, capsys):
    assert main(["suite", "--quick=true", *flags]) == 2
    assert capsys.readouterr().err.splitlines() == [line]


def test_ray_executor_without_ray_installed_is_refused_naming_the_extra(monkeypatch, capsys):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else find_spec(name, *a)
    )
    assert main(["sweep", "--quick=true", "--executor=ray"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: executor='ray' is invalid; allowed values: 'local', or 'ray' once Ray is installed "
        "(pip install -e '.[ray]')"
    ]


def test_a_run_asks_ray_for_a_gpu_where_its_policy_is_on_cuda():
    cameras = (ROOT / "HIL-SERL/train_gym_hil_env_SIM_cameras.json").read_text()
    default = (ROOT / "HIL-SERL/train_gym_hil_env_SIM.json").read_text()
    run = RunConfig(method="sac")
    assert _policy_device(cameras, run) == "cuda"
    assert _policy_device(default, run) == "cpu"
    on_gpu = RunConfig(method="sac", overrides=("--policy.device=cpu", "--policy.device=cuda"))
    assert _policy_device(default, on_gpu) == "cuda"


# --- failures ----------------------------------------------------------------------------------


def test_a_failed_local_run_is_reported_with_its_cause_and_log_and_the_others_go_on(tmp_path):
    bad = QUICK_BUDGET.run("sac", 0, "HIL-SERL/no_such_config.json")
    also_bad = QUICK_BUDGET.run("e2hil", 0, "HIL-SERL/no_such_config.json")
    lines = []
    timing = execute([bad, also_bad], tmp_path, workers=1, root=ROOT, log=lines.append)
    assert timing["trained"] == 0 and set(timing["failed"]) == {"sac_seed0", "e2hil_seed0"}
    cause, where = timing["failed"]["sac_seed0"]
    assert cause.startswith("lerobot_policy_e2hil.errors.ConfigError: bench.config_path=")
    assert where == str(tmp_path / "sac_seed0" / LOG_FILE)
    assert "Traceback (most recent call last)" in Path(where).read_text()
    assert f"[e2hil-bench] failed: sac_seed0: {cause} (log: {where})" in lines
    assert "[e2hil-bench] runs: 0 done, 0 running, 0 left, 2 failed" in lines


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["local", pytest.param("ray", marks=needs_ray)])
def test_failed_runs_are_reported_alike_by_both_executors_and_the_suite_exits_1(executor, tmp_path, capsys):
    runs, report = tmp_path / "runs", tmp_path / "report"
    argv = ["suite", "--quick=true", "--seeds=1", f"--executor={executor}", "--workers=1"]
    argv += [f"--runs_dir={runs}", f"--report_dir={report}"]
    assert main([*argv, "--env.no_such_field=1"]) == 1  # every run fails when it builds its config
    captured = capsys.readouterr()
    cause = "exited with status 2: error: unrecognized arguments: --env.no_such_field=1"
    for name in ("sac_seed0", "e2hil_seed0"):
        log = runs / name / LOG_FILE
        assert f"[e2hil-bench] failed: {name}: {cause} (log: {log})" in captured.out
        assert f"{name} ({cause}; log: {log})" in captured.err
        assert "unrecognized arguments" in log.read_text()  # written on the driver from the task's files
    assert captured.err.splitlines()[-1].startswith("error: 2 of 2 runs to train failed: ")
    assert not (report / "suite.md").exists()


# --- the same study on both executors ----------------------------------------------------------


def _suite(executor: str, seeds: int, runs: Path, report: Path, capsys) -> str:
    argv = ["suite", "--quick=true", f"--seeds={seeds}", f"--runs_dir={runs}", f"--report_dir={report}"]
    argv += ["--executor=ray"] if executor == "ray" else ["--workers=1"]
    assert main(argv) == 0
    return capsys.readouterr().out


@needs_ray
@pytest.mark.slow
def test_a_study_moves_between_ray_and_local_and_both_give_the_same_records(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    a, b = tmp_path / "a", tmp_path / "b"
    # a: seed 0 on Ray; b: seed 0 locally; then a's study goes on locally from Ray's runs
    out = _suite("ray", 1, a / "runs", a / "report", capsys)
    assert "2 runs, 0 cached, 2 to train, executor ray" in out
    assert "[e2hil-bench] runs: 0 done, 2 running, 0 left, 0 failed" in out
    assert "[e2hil-bench] runs: 2 done, 0 running, 0 left, 0 failed" in out
    assert (a / "runs" / "sac_seed0" / LOG_FILE).is_file() and (
        a / "runs" / "sac_seed0" / "samples.npz"
    ).is_file()
    out = _suite("local", 1, b / "runs", b / "report", capsys)
    assert "2 runs, 0 cached, 2 to train, 1 worker(s)" in out
    # each run trained once by each executor: the same fingerprint and the same metrics
    names = sorted(p.name for p in (a / "report" / "records").glob("*.json"))
    assert names == ["e2hil_seed0.json", "sac_seed0.json"]
    assert names == sorted(p.name for p in (b / "report" / "records").glob("*.json"))
    for name in names:
        on_a = json.loads((a / "report" / "records" / name).read_text())
        on_b = json.loads((b / "report" / "records" / name).read_text())
        for key in SAME:
            assert on_a[key] == on_b[key], (name, key)
    # and the same report, but for the wall-clock figures
    summaries = [json.loads((d / "report" / "suite.json").read_text())["summary"] for d in (a, b)]
    for summary in summaries:
        for method in summary.values():
            for key in WALL_CLOCK:
                method.pop(key)
    assert summaries[0] == summaries[1]
    out = _suite("local", 1, a / "runs", a / "report", capsys)
    assert "2 runs, 2 cached, 0 to train, 1 worker(s)" in out and "[sac_seed0] done" not in out


# --- the documented command --------------------------------------------------------------------


def _documented_ray_command() -> list[str]:
    text = (ROOT / "docs/benchmarks.md").read_text().replace("\\\n", " ")
    (line,) = [
        m.group(0) for m in re.finditer(r"\.venv/bin/e2hil-bench suite [^\n#]*--executor=ray[^\n#]*", text)
    ]
    argv = shlex.split(line)
    return [str(Path(sys.executable).parent / "e2hil-bench"), *argv[1:]]


@needs_ray
@pytest.mark.e2e
def test_the_documented_ray_command_parses_in_a_fresh_process_and_reaches_the_cluster(tmp_path):
    """As written; RAY_ADDRESS names a port where nothing listens, so it stops at the connection."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = _documented_ray_command()
    assert "--ray.address=auto" in argv
    env = {**os.environ, "MUJOCO_GL": "egl", "RAY_ADDRESS": f"127.0.0.1:{port}"}
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    assert "48 runs, 0 cached, 48 to train, executor ray" in done.stdout
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].startswith(
        f"error: ray.address='auto' is invalid: nothing answers at 127.0.0.1:{port}"
    )
