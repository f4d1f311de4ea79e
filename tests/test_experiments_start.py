"""The one-off experiments of benchmarks/experiments/ still start: each imports and prints its ``--help``.

They are not user tools (their findings are in the project's history), so this is all the suite
checks of them; it runs in-process, in seconds.
"""

import runpy
import sys
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[1] / "benchmarks" / "experiments"


def test_every_experiment_is_listed_in_the_folders_readme():
    readme = (EXPERIMENTS / "README.md").read_text()
    for script in EXPERIMENTS.glob("*.py"):
        assert f"`{script.name}`" in readme, script.name


@pytest.mark.parametrize("script", sorted(p.name for p in EXPERIMENTS.glob("*.py")))
def test_experiment_starts_and_prints_its_help(script, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [f"benchmarks/experiments/{script}", "--help"])
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(EXPERIMENTS / script), run_name="__main__")
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: ")
