"""The patch layer (:mod:`lerobot_policy_e2hil.patches`): checked at install, installed once, the only one.

Issue 16, item 1: every change to LeRobot's objects is a row of one table; ``install(role)``
checks the LeRobot version and every target's signature first and fails with one paragraph
naming the target; installing twice wraps nothing twice; hooks on one target nest in the row's
declared order; nothing outside ``patches/`` assigns onto a LeRobot module or class; docs/patches.md
shows the table as it is.
"""

from __future__ import annotations

import ast
import sys
import types
from pathlib import Path

import pytest
from lerobot.rl import actor, learner

from lerobot_policy_e2hil import patches
from lerobot_policy_e2hil.errors import EXIT_SETUP, SetupError, describe_error
from lerobot_policy_e2hil.patches import core

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "lerobot_policy_e2hil"
ROLES = ("import", "learner", "actor", "record")


@pytest.fixture(autouse=True)
def _isolated():
    with patches.isolated_hooks():
        yield


def test_a_changed_signature_fails_at_install_with_one_paragraph_naming_the_target(monkeypatch):
    def get_frequency_stats(timer, window):  # LeRobot renamed or added a parameter
        return {}

    monkeypatch.setattr(actor, "get_frequency_stats", get_frequency_stats)
    with pytest.raises(SetupError) as error:
        patches.install("actor")
    message = str(error.value)
    assert "lerobot.rl.actor.get_frequency_stats" in message
    assert "('timer', 'window')" in message and "('timer',)" in message  # found, expected
    assert "installed LeRobot 0.6.1" in message
    assert describe_error(error.value) == message  # an entry point prints it as is, on one line
    assert "\n" not in message
    assert actor.get_frequency_stats is get_frequency_stats  # nothing was installed over it


def test_a_missing_target_fails_at_install_naming_it(monkeypatch):
    monkeypatch.delattr(learner, "process_interaction_message")
    with pytest.raises(
        SetupError, match=r"lerobot\.rl\.learner\.process_interaction_message.*does not exist"
    ):
        patches.install("learner")


def test_a_missing_member_of_a_subclassed_class_fails_naming_it(monkeypatch):
    class Trainer:  # LeRobot's RLTrainer without training_step
        def __init__(self, algorithm, data_mixer, batch_size, preprocessor):
            pass

    monkeypatch.setattr(learner, "RLTrainer", Trainer)
    with pytest.raises(SetupError, match=r"lerobot\.rl\.learner\.RLTrainer\.training_step does not exist"):
        patches.install("learner")


def test_an_unsupported_lerobot_version_fails_before_any_row(monkeypatch):
    monkeypatch.setattr(core, "lerobot_version", lambda: "0.7.0")
    with pytest.raises(
        SetupError, match=r"supports LeRobot >=0\.6\.1,<0\.7, and LeRobot 0\.7\.0 is installed"
    ):
        patches.install("actor")


def test_the_entry_point_prints_the_paragraph_and_exits_2(monkeypatch, capsys):
    from lerobot_policy_e2hil.faults import entry

    monkeypatch.setattr(actor, "act_with_policy", lambda cfg, shutdown_event: None)
    monkeypatch.setattr(sys, "argv", ["e2hil-actor"])
    with pytest.raises(SystemExit) as exit_info:
        entry.run_entry(lambda settings: patches.install("actor"))
    assert exit_info.value.code == EXIT_SETUP
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "error: the E2HiL patch of LeRobot's lerobot.rl.actor.act_with_policy"
    )


def _depth(value) -> int:
    """How many stand-ins are stacked at a target (0: LeRobot's own object)."""
    depth = 0
    value = value.__func__ if isinstance(value, staticmethod) else value
    while hasattr(value, "__dict__") and core.MARKER in vars(value):
        depth += 1
        value = vars(value)["__wrapped__"]
        value = value.__func__ if isinstance(value, staticmethod) else value
    return depth


def test_installing_twice_wraps_nothing_twice():
    for role in ROLES:
        patches.install(role)
    assert all(patches.install(role) == [] for role in ROLES)
    for row in patches.ROWS:
        _, _, value = core.resolve(row.target)
        assert _depth(value) == 1, row.target


def test_hooks_nest_in_the_declared_order_and_a_layer_registers_once():
    module = types.ModuleType("e2hil_fake_lerobot")
    module.step = lambda value, scale=1: [f"lerobot({value}, {scale})"]
    sys.modules[module.__name__] = module
    row = core.Row(
        "e2hil_fake_lerobot.step", "wrap", ("value", "scale"), ("outer", "inner"), ("learner",), "test"
    )
    core.declare((row,))
    try:
        assert core.install_rows((row,), "learner") == ["e2hil_fake_lerobot.step"]
        assert core.install_rows((row,), "learner") == []
        assert module.step(1) == ["lerobot(1, 1)"]  # no hook: LeRobot's function alone
        patches.hook(
            row.target, "inner", lambda call: ["inner", *call.proceed(scale=call.arguments["scale"] + 1)]
        )
        patches.hook(row.target, "outer", lambda call: ["outer", *call.proceed()])
        patches.hook(row.target, "outer", lambda call: ["outer again", *call.proceed()])  # replaces "outer"
        assert module.step(1) == ["outer again", "inner", "lerobot(1, 2)"]
        with pytest.raises(ValueError, match="layer 'other' is not declared"):
            patches.hook(row.target, "other", lambda call: None)
    finally:
        core.uninstall_rows((row,))
        del sys.modules[module.__name__]
    assert _depth(module.step) == 0


def _lerobot_names(tree: ast.Module) -> set[str]:
    """Names a module binds to LeRobot modules or objects (imports at any depth)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "lerobot":
                    names.add(alias.asname or "lerobot")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "lerobot":
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def _root(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def lerobot_assignments(path: Path, source: str) -> list[str]:
    """Every ``x.attr = ...`` / ``setattr(x, ...)`` / ``delattr`` where ``x`` comes from a LeRobot import."""
    tree = ast.parse(source)
    names = _lerobot_names(tree)
    found = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("setattr", "delattr")
        ):
            if node.args and _root(node.args[0]) in names:
                found.append(f"{path}:{node.lineno}: {ast.unparse(node)}")
            continue
        flat = []
        for target in targets:
            flat.extend(target.elts if isinstance(target, ast.Tuple | ast.List) else [target])
        for target in flat:
            if isinstance(target, ast.Attribute) and _root(target) in names:
                found.append(f"{path}:{node.lineno}: {ast.unparse(target)} = ...")
    return found


def test_nothing_outside_the_patch_layer_assigns_onto_lerobot_objects():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "patches" not in path.relative_to(PACKAGE).parts:
            found += lerobot_assignments(path.relative_to(ROOT), path.read_text())
    assert not found, "\n".join(found)


def test_the_scan_finds_the_assignments_it_looks_for():
    source = (
        "from lerobot.rl import learner\n"
        "import lerobot.rl.actor as a\n"
        "def install(cfg):\n"
        "    from lerobot.rl.gym_manipulator import LeRobotDataset\n"
        "    learner.RLTrainer = object\n"
        "    a.send_transitions, x = None, 1\n"
        "    setattr(LeRobotDataset, 'create', None)\n"
        "    cfg.dataset = None\n"
    )
    found = lerobot_assignments(Path("x.py"), source)
    assert [line.split(": ", 1)[1] for line in found] == [
        "learner.RLTrainer = ...",
        "a.send_transitions = ...",
        "setattr(LeRobotDataset, 'create', None)",
    ]


def test_docs_list_the_table_as_declared():
    docs = (ROOT / "docs" / "patches.md").read_text()
    start, end = (
        "<!-- patch table: generated by patches.markdown_table(); tests/test_patches.py -->\n",
        "<!-- end -->",
    )
    assert start in docs and end in docs
    assert docs.split(start, 1)[1].split(end, 1)[0] == patches.markdown_table()


def test_every_row_names_its_reason_and_every_replacing_hook_says_why():
    assert len({row.target for row in patches.ROWS}) == len(patches.ROWS)
    for row in patches.ROWS:
        assert row.reason and row.layers and row.roles, row.target
        assert row.target.startswith("lerobot."), row.target
