"""The patch layer (:mod:`lerobot_policy_e2hil.lerobot_layer.patches`): checked at install, installed once, the only one.

Issue 16, item 1: every change to LeRobot's objects is a row of one table; ``install(role)``
checks the LeRobot version and every target's signature first and fails with one paragraph
naming the target; installing twice wraps nothing twice; hooks on one target nest in the row's
declared order; nothing outside ``patches/`` changes LeRobot, torch.distributions or gym-hil
state (attribute or registry assignment, ``setattr``, in-place registry edits, ``set_default_*``
switches: an AST scan, checked against planted changes); docs/patches.md shows the table as it is.
"""

from __future__ import annotations

import ast
import sys
import types
from pathlib import Path

import pytest
from lerobot.rl import actor, learner

from lerobot_policy_e2hil.errors import EXIT_SETUP, SetupError, describe_error
from lerobot_policy_e2hil.lerobot_layer import patches
from lerobot_policy_e2hil.lerobot_layer.patches import core

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
        entry.run_entry(lambda: patches.install("actor"))
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


#: Packages whose objects only the LeRobot layer (``patches/``) may change.
PROTECTED = ("lerobot", "torch.distributions", "gym_hil")
#: Methods that change a dict or list in place: on a protected object, a registry edit.
MUTATORS = frozenset({"update", "setdefault", "pop", "popitem", "clear", "__setitem__", "__delitem__"})


def _imports(tree: ast.Module) -> dict[str, str]:
    """Local name -> dotted path, for every absolute import at any depth."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _dotted(node: ast.expr, names: dict[str, str]) -> str | None:
    """The dotted path of an attribute/subscript chain on an imported name (``[]`` for a subscript)."""
    parts = []
    while isinstance(node, ast.Attribute | ast.Subscript):
        parts.append(node.attr if isinstance(node, ast.Attribute) else "[]")
        node = node.value
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "vars"
        and node.args
    ):
        parts.append("__dict__")
        node = node.args[0]
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
    if not isinstance(node, ast.Name) or node.id not in names:
        return None
    return ".".join([names[node.id], *reversed(parts)])


def _protected(path: str | None, roots: tuple[str, ...] = PROTECTED) -> bool:
    return path is not None and any(path == root or path.startswith(root + ".") for root in roots)


def _aliases(tree: ast.Module, names: dict[str, str]) -> dict[str, str]:
    """``names`` plus local names bound to a protected object by a plain chain (``reg = X._registry``)."""
    names = dict(names)
    for _ in range(3):
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Attribute | ast.Subscript | ast.Name)
            ):
                path = _dotted(node.value, names)
                if _protected(path):
                    names[node.targets[0].id] = path
    return names


def protected_changes(path: Path, source: str) -> list[str]:
    """Every change a module makes to LeRobot, torch.distributions or gym-hil state.

    Attribute or item assignment and deletion on their objects (class substitution in a module
    or a registry dict included), ``setattr``/``delattr`` on them, in-place dict methods on them
    (:data:`MUTATORS`), and ``set_default_*`` calls on them or on torch.
    """
    tree = ast.parse(source)
    names = _aliases(tree, _imports(tree))
    found: list[tuple[int, str]] = []

    def report(node: ast.AST, text: str) -> None:
        found.append((node.lineno, f"{path}:{node.lineno}: {text}"))

    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign | ast.Delete):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in ("setattr", "delattr"):
                if node.args and _protected(_dotted(node.args[0], names)):
                    report(node, ast.unparse(node))
            elif isinstance(func, ast.Attribute):
                owner = _dotted(func.value, names)
                if (
                    func.attr in MUTATORS
                    and _protected(owner)
                    or func.attr.startswith("set_default_")
                    and _protected(owner, (*PROTECTED, "torch"))
                ):
                    report(node, ast.unparse(node))
            continue
        flat = []
        for target in targets:
            flat.extend(target.elts if isinstance(target, ast.Tuple | ast.List) else [target])
        for target in flat:
            if isinstance(target, ast.Attribute | ast.Subscript) and _protected(_dotted(target, names)):
                verb = "del " if isinstance(node, ast.Delete) else ""
                report(node, f"{verb}{ast.unparse(target)}" + ("" if verb else " = ..."))
    return [text for _, text in sorted(found, key=lambda item: item[0])]


def test_nothing_outside_the_patch_layer_changes_lerobot_torch_distributions_or_gym_hil():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "patches" not in path.relative_to(PACKAGE).parts:
            found += protected_changes(path.relative_to(ROOT), path.read_text())
    assert not found, "\n".join(found)


def test_the_scan_finds_a_planted_change_of_each_kind():
    source = (
        "import torch\n"
        "from lerobot.rl import learner\n"
        "import lerobot.rl.actor as a\n"
        "from lerobot.rl.algorithms.configs import RLAlgorithmConfig\n"
        "from torch.distributions import Distribution\n"
        "from gym_hil.envs import panda_pick_gym_env as pick\n"
        "def install(cfg, policy):\n"
        "    from lerobot.rl.gym_manipulator import LeRobotDataset\n"
        "    learner.RLTrainer = object\n"
        "    a.send_transitions, x = None, 1\n"
        "    setattr(LeRobotDataset, 'create', None)\n"
        "    RLAlgorithmConfig._choice_registry['sac'] = object\n"
        "    registry = RLAlgorithmConfig._choice_registry\n"
        "    registry.update(sac=object)\n"
        "    Distribution.set_default_validate_args(False)\n"
        "    torch.distributions.Distribution._validate_args = False\n"
        "    torch.set_default_dtype(torch.float64)\n"
        "    pick.PandaPickCubeGymEnv.apply_action = None\n"
        "    vars(learner)['RLTrainer'] = object\n"
        "    del a.receive_policy\n"
        "    cfg.dataset = None\n"
        "    policy.actor = None\n"
        "    local = {}\n"
        "    local.update(x=1)\n"
        "    torch.manual_seed(0)\n"
        "    @RLAlgorithmConfig.register_subclass('mine')\n"
        "    class Mine(RLAlgorithmConfig):\n"
        "        pass\n"
    )
    found = protected_changes(Path("x.py"), source)
    assert [line.split(": ", 1)[1] for line in found] == [
        "learner.RLTrainer = ...",
        "a.send_transitions = ...",
        "setattr(LeRobotDataset, 'create', None)",
        "RLAlgorithmConfig._choice_registry['sac'] = ...",
        "registry.update(sac=object)",
        "Distribution.set_default_validate_args(False)",
        "torch.distributions.Distribution._validate_args = ...",
        "torch.set_default_dtype(torch.float64)",
        "pick.PandaPickCubeGymEnv.apply_action = ...",
        "vars(learner)['RLTrainer'] = ...",
        "del a.receive_policy",
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
        assert row.target.startswith(("lerobot.", "draccus.")), row.target  # draccus: LeRobot's pinned parser
