"""The update and actor benchmark commands of docs/benchmarks.md run, as subprocesses, on tiny sizes.

Their bad-value checks run in-process (``main`` with its argv): argparse refuses before any work.
"""

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = ["--batch-size", "8", "--updates", "2", "--rounds", "1"]


def _run(*args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    return done.stdout


@pytest.mark.slow
def test_bench_fast_update_compares_lerobot_fast_and_floor():
    out = _run("benchmarks/bench_fast_update.py", *TINY)
    for contender in ("lerobot", "fast", "floor", "floor+adam"):
        assert any(line.split()[0] == contender for line in out.splitlines() if line.strip()), contender
    assert "speed-up lerobot/fast" in out and "fast/floor" in out


@pytest.mark.slow
@pytest.mark.parametrize("cameras", ["0", "1"])
def test_bench_fast_update_e2hil_prints_both_ratios(cameras):
    out = _run("benchmarks/bench_fast_update.py", "--e2hil", "--k", "2", "--cameras", cameras, *TINY)
    assert "E2HiL/SAC (lerobot)" in out and "E2HiL/SAC (fast   )" in out
    assert ("camera(s) 128x128" in out) == (cameras != "0")
    # the earlier estimate is a contender too
    assert any(line.startswith("e2hil split ") for line in out.splitlines())
    assert "E2HiL/SAC (split  )" in out


@pytest.mark.parametrize(
    ("script", "flags", "message"),
    [
        ("bench_fast_update.py", ["--rounds", "0"], "argument --rounds: must be an integer >= 1, got 0"),
        ("bench_fast_update.py", ["--e2hil", "--k", "1"], "argument --k: must be an integer >= 2, got 1"),
        ("bench_update.py", ["--k", "1"], "argument --k: must be an integer >= 2, got 1"),
        (
            "bench_update.py",
            ["--forms", "natural,bogus"],
            "--forms: 'bogus' is not an influence_form; allowed",
        ),
        ("bench_actor_throughput.py", ["--steps", "0"], "argument --steps: must be an integer >= 1, got 0"),
    ],
)
def test_update_benchmarks_reject_bad_sizes_with_one_line(script, flags, message, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    monkeypatch.setattr(sys, "argv", [f"benchmarks/{script}", *flags])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO / "benchmarks" / script), run_name="__main__")
    stderr = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert message in stderr.splitlines()[-1]
    assert "Traceback" not in stderr


@pytest.mark.slow
def test_bench_update_prints_sac_and_e2hil_per_form():
    """``make bench``'s script (docs/benchmarks.md, "Update cost"), state-only, tiny sizes."""
    out = _run(
        "benchmarks/bench_update.py",
        "--skip-images",
        "--updates",
        "1",
        "--rounds",
        "1",
        "--batch-size",
        "8",
        "--k",
        "2",
    )
    for form in ("policy_gradient", "first_order"):
        line = next(line for line in out.splitlines() if line.startswith("state-only") and form in line)
        assert "batch    8  K=2" in line and "SAC" in line and "E2HiL" in line and "ratio" in line


@pytest.mark.slow
def test_bench_actor_throughput_compares_both_controllers():
    """docs/benchmarks.md's actor-throughput command, on 20 env steps."""
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    command = [sys.executable, "benchmarks/bench_actor_throughput.py", "--steps", "20", "--rounds", "1"]
    done = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "1 rounds of 20 env steps" in done.stdout
    assert "gym-hil opspace controller" in done.stdout and "ratio fast / gym-hil" in done.stdout
