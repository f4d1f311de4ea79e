"""Every entry point renders headless without the user setting ``MUJOCO_GL``; a launcher that could
not render its evaluation fails before it trains."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib

import pytest

from lerobot_policy_e2hil.headless import HEADLESS_GL, default_mujoco_gl
from test_faults_helpers import ROOT, SIM_JSON

# A fresh process with no OpenGL backend chosen and no display, as on a new headless machine
NO_DISPLAY = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "DISPLAY", "WAYLAND_DISPLAY")} | {
    "HF_HUB_OFFLINE": "1",
    "WANDB_MODE": "disabled",
}


@pytest.mark.parametrize(
    ("environ", "platform", "expected"),
    [
        ({}, "linux", HEADLESS_GL),
        ({"MUJOCO_GL": ""}, "linux", HEADLESS_GL),
        ({"MUJOCO_GL": "osmesa"}, "linux", "osmesa"),
        ({"DISPLAY": ":0"}, "linux", None),
        ({"WAYLAND_DISPLAY": "wayland-0"}, "linux", None),
        ({}, "darwin", None),
    ],
)
def test_headless_default_only_when_nothing_is_chosen_and_there_is_no_display(environ, platform, expected):
    assert default_mujoco_gl(environ, platform) == expected
    assert environ.get("MUJOCO_GL") == expected


@pytest.mark.slow
def test_every_console_script_imports_the_package_that_sets_the_default_first():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    modules = {target.split(":")[0] for target in scripts.values()} | {"lerobot_policy_e2hil.launcher.train"}
    assert all(m.startswith("lerobot_policy_e2hil.") for m in modules), modules
    code = (
        "import os, sys; import lerobot_policy_e2hil.cli; "
        "print(os.environ.get('MUJOCO_GL'), 'mujoco' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=NO_DISPLAY, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # MuJoCo reads MUJOCO_GL once, at its import: the default must be in place before it
    assert done.stdout.split() == [HEADLESS_GL, "False"]


@pytest.mark.e2e
def test_a_launcher_that_cannot_render_fails_before_training_in_one_line(tmp_path):
    out = tmp_path / "run"
    env = {**NO_DISPLAY, "MUJOCO_GL": "glx"}  # GLX without a display cannot make a context
    command = [
        sys.executable, "-m", "lerobot_policy_e2hil.launcher.train",
        "--config_path", str(SIM_JSON), f"--output_dir={out}", "--policy.online_steps=300",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: the sim cannot render in this process (MUJOCO_GL=glx")
    assert "DISPLAY environment variable is missing" in lines[0]
    assert not out.exists() and not (tmp_path / ".run.launch").exists()


@pytest.mark.e2e
def test_e2hil_sim_without_mujoco_gl_or_display_trains_and_evaluates(short_sim_run):
    done, out = short_sim_run  # conftest.py: the console script, no MUJOCO_GL, no display
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["teacher_free_success"] is not None and summary["eval_episodes"] == 2
    assert "OpenGL" not in done.stderr
