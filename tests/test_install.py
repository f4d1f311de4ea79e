"""The set-up a user runs is the one CI runs, and it leaves LeRobot's video decoder loadable."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_installs_nothing_beyond_the_readme_set_up():
    """`.ci/run` only runs make targets (the README's commands), so a missing install step turns CI red."""
    commands = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    steps = [c for c in commands if not c.startswith(("set ", "cd "))]
    assert steps and all(re.fullmatch(r"make [\w-]+", c) for c in steps), steps
    assert "make test" in steps


def test_make_install_installs_ffmpeg_and_mesa():
    """README.md says `make install` installs Mesa and FFmpeg's shared libraries."""
    install = re.search(r"^install:(.*)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert install is not None
    assert {"mesa", "ffmpeg"} <= set(install.group(1).split())


def test_lerobot_loads_torchcodec_without_a_traceback():
    """After `make install`, LeRobot picks torchcodec and prints no fallback warning."""
    probe = "from lerobot.utils.import_utils import get_safe_default_video_backend as g; print(g())"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "torchcodec", done.stderr
    assert "cannot be loaded" not in done.stderr and "Traceback" not in done.stderr
