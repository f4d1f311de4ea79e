"""The fast update is a setting of the saved config, and nothing in the update path reads the environment.

A checkpoint's ``train_config.json`` and its algorithm's ``config.json`` record ``fast_update``
(``"e2hil"``) or the type (``"sac"``: LeRobot's update, ``"sac_fast"``: the fast one); the
config read back from them, as a resume reads it, builds the algorithm with the same update and
no flag. The algorithm and update modules hold no ``os.environ`` / ``os.getenv`` read.
"""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import draccus
import pytest
from lerobot.common.train_utils import save_checkpoint
from lerobot.rl.algorithms.configs import RLAlgorithmConfig
from lerobot.rl.algorithms.factory import make_algorithm
from lerobot.rl.algorithms.sac import SACAlgorithm, SACAlgorithmConfig
from lerobot.rl.train_rl import TrainRLServerPipelineConfig
from lerobot.utils.constants import ALGORITHM_DIR, PRETRAINED_MODEL_DIR

from lerobot_policy_e2hil import E2HiLAlgorithm, SACFastAlgorithm
from lerobot_policy_e2hil.algorithm.fast_update import uses_fast_update
from lerobot_policy_e2hil.synthetic import make_policy

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "lerobot_policy_e2hil"
SIM_CONFIG = ROOT / "HIL-SERL" / "train_gym_hil_env_SIM.json"
#: The algorithm and its update: these modules and every package module they import.
UPDATE_PATH_ROOTS = ("algorithm/e2hil_algorithm.py", "algorithm/sac_fast.py", "lerobot_layer/registry.py")


def _foreach(algorithm) -> set[bool]:
    return {
        bool(group["foreach"])
        for optimizer in algorithm.optimizers.values()
        for group in optimizer.param_groups
    }


def _built(config, policy):
    config.policy_config = policy.config
    algorithm = make_algorithm(config, policy)
    algorithm.make_optimizers_and_scheduler()
    return algorithm


def _sim_config(tmp_path: Path, algorithm_type: str) -> Path:
    """The sim's default JSON, with ``algorithm_type`` and its SAC fields for a SAC type."""
    data = json.loads(SIM_CONFIG.read_text())
    if algorithm_type != "e2hil":
        sac_fields = {f.name for f in dataclasses.fields(SACAlgorithmConfig)}
        data["algorithm"] = {k: v for k, v in data["algorithm"].items() if k in sac_fields}
        data["algorithm"]["type"] = algorithm_type
    path = tmp_path / "train_config.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("algorithm_type", "flags", "algorithm_class", "fast"),
    [
        pytest.param("e2hil", [], E2HiLAlgorithm, True, marks=pytest.mark.slow),
        ("e2hil", ["--algorithm.fast_update=false"], E2HiLAlgorithm, False),
        pytest.param("sac_fast", [], SACFastAlgorithm, True, marks=pytest.mark.slow),
        pytest.param(
            "sac_fast", ["--algorithm.fast_update=false"], SACFastAlgorithm, False, marks=pytest.mark.slow
        ),
        ("sac", [], SACAlgorithm, False),
    ],
    ids=["e2hil-default", "e2hil-off", "sac_fast", "sac_fast-off", "sac"],
)
def test_a_checkpoint_records_the_update_and_a_resume_builds_it_without_the_flag(
    tmp_path, algorithm_type, flags, algorithm_class, fast
):
    config_path = _sim_config(tmp_path, algorithm_type)
    cfg = draccus.parse(TrainRLServerPipelineConfig, config_path=str(config_path), args=flags)
    policy = make_policy(hidden_dim=32, latent_dim=16)
    trained = _built(cfg.algorithm, policy)
    assert type(trained) is algorithm_class and uses_fast_update(trained) is fast

    checkpoint = tmp_path / "checkpoints" / "000010"
    save_checkpoint(checkpoint_dir=checkpoint, step=10, cfg=cfg, policy=policy, optimizer=trained.optimizers)
    trained.save_pretrained(checkpoint / ALGORITHM_DIR)  # what the learner's checkpoint adds

    train_config = checkpoint / PRETRAINED_MODEL_DIR / "train_config.json"
    saved = json.loads(train_config.read_text())["algorithm"]
    algorithm_json = json.loads((checkpoint / ALGORITHM_DIR / "config.json").read_text())
    for record in (saved, algorithm_json):
        assert record["type"] == cfg.algorithm.type
        if algorithm_class is SACAlgorithm:
            assert "fast_update" not in record  # LeRobot's config, unchanged
        else:
            assert record["fast_update"] is fast

    # A resume parses the checkpoint's train_config.json with no other flag.
    resumed = draccus.parse(TrainRLServerPipelineConfig, config_path=str(train_config), args=[])
    from_algorithm_dir = RLAlgorithmConfig.from_pretrained(checkpoint / ALGORITHM_DIR)
    for config in (resumed.algorithm, from_algorithm_dir):
        rebuilt = _built(config, make_policy(hidden_dim=32, latent_dim=16))
        assert type(rebuilt) is algorithm_class and uses_fast_update(rebuilt) is fast
        assert _foreach(rebuilt) == {fast}


def test_a_config_saved_before_the_field_existed_reads_back_as_the_fast_update_it_ran(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"type": "e2hil", "num_action_samples": 8}))
    assert RLAlgorithmConfig.from_pretrained(tmp_path).fast_update is True


def _package_imports(path: Path) -> set[Path]:
    """The package modules ``path`` imports (relative imports)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = path.parent
            for _ in range(node.level - 1):
                base = base.parent
            parts = node.module.split(".") if node.module else []
            # ``from .x import y``: x, and y when it is a submodule of x; ``from . import y``: y only
            names = [alias.name for alias in node.names]
            for name in names if not parts else [None, *names]:
                target = base.joinpath(*parts, *([name] if name else []))
                for candidate in (target.with_suffix(".py"), target / "__init__.py"):
                    if candidate.exists():
                        found.add(candidate)
    return found


def update_path_modules() -> set[Path]:
    """The algorithm and update modules and, transitively, the package modules they import."""
    todo = [PACKAGE / name for name in UPDATE_PATH_ROOTS]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(_package_imports(path))
    return seen


def environment_reads(source: str) -> list[str]:
    """Every ``environ`` / ``getenv`` / ``environb`` a module names (``os.environ.get``, ``from os import getenv``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        name = (
            node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
        )
        if name in ("environ", "environb", "getenv", "getenvb"):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [f"{node.lineno}: from os import {a.name}" for a in node.names if "env" in a.name]
    return found


def test_no_environment_variable_reaches_the_algorithm_or_its_update():
    modules = update_path_modules()
    names = {path.relative_to(PACKAGE).as_posix() for path in modules}
    assert {
        f"algorithm/{name}.py"
        for name in ("e2hil_algorithm", "fast_update", "influence", "configuration_e2hil")
    } | {"lerobot_layer/patches/core.py"} <= names
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sorted(modules)
        for line in environment_reads(path.read_text())
    ]
    assert not found, "\n".join(found)


def test_the_environment_scan_finds_planted_reads():
    source = "import os\nfrom os import getenv\nA = os.environ.get('X', '1')\nB = getenv('Y')\nC = os.environ['Z']\n"
    found = environment_reads(source)
    assert {line.split(": ", 1)[0] for line in found} == {"2", "3", "4", "5"}, found
    assert environment_reads("import os\nP = os.path.join('a', 'b')\n") == []


@pytest.mark.e2e
def test_the_retired_environment_switch_is_refused_by_the_entry_points_naming_the_field(tmp_path):
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "LEROBOT_E2HIL_FAST_UPDATE": "0", "MUJOCO_GL": "egl", "HF_HUB_OFFLINE": "1"}
    config = str(root / "HIL-SERL" / "train_gym_hil_env_SIM.json")
    bin_dir = Path(sys.executable).parent
    for command in (
        [str(bin_dir / "e2hil-learner"), "--config_path", config, f"--output_dir={tmp_path / 'l'}"],
        [str(bin_dir / "e2hil-sim"), "--config_path", config, f"--output_dir={tmp_path / 's'}"],
        [str(bin_dir / "e2hil-bench"), "run", "--method=sac", f"--output_dir={tmp_path / 'b'}"],
    ):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=root)
        last = done.stderr.strip().splitlines()[-1]
        assert done.returncode == 2, done.stderr[-2000:]
        assert last.startswith(
            "error: LEROBOT_E2HIL_FAST_UPDATE=0 is no longer read; the switch is the config"
        )
        assert "algorithm.fast_update (allowed values: true, false)" in last
    assert not any((tmp_path / name).exists() for name in ("l", "s", "b"))
