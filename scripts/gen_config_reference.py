"""Write docs/configuration.md from the config dataclasses: every field, its flag, default and comment.

    python scripts/gen_config_reference.py           # rewrite docs/configuration.md
    python scripts/gen_config_reference.py --check   # exit 1 when the committed file differs

Each field's description is the comment written above it in the source (the project's one comment
line per field); a field declared right after another with no comment of its own shares that
field's comment. Only the fields a class declares itself are listed: the rest are LeRobot's, with
LeRobot's defaults.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import inspect
import json
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "configuration.md"
PACKAGE = "lerobot_policy_e2hil"
# FaultSettings' fields that belong to the security section (TLS and the token), in source order
SECURITY_FIELDS = ("tls_cert", "tls_key", "tls_ca", "tls_server_name", "token_file", "token_env", "insecure")


@dataclass(frozen=True)
class Section:
    """One table of the reference: a config class (or part of one) and where its fields are set."""

    title: str
    anchor_hint: str
    module: str
    cls: str
    flag: str
    intro: str
    only: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()


SECTIONS = (
    Section(
        "Algorithm (`algorithm`)",
        "algorithm",
        "algorithm.configuration_e2hil",
        "E2HiLAlgorithmConfig",
        "algorithm.",
        'In a train config, `"algorithm": {"type": "e2hil", ...}`; on a command line '
        "`--algorithm.<field>=<value>`. Every SAC field (`actor_lr`, `discount`, `utd_ratio`, "
        '`temperature_init`, ...) is LeRobot\'s, with LeRobot\'s default; `"type": "sac"` is the '
        "HIL-SERL baseline. The paper's symbols: [algorithm.md](algorithm.md#knobs).",
    ),
    Section(
        "Sim env (`env`, `type: e2hil_sim`)",
        "env",
        "sim.config",
        "E2HiLSimEnvConfig",
        "env.",
        "The `env` block of `HIL-SERL/train_gym_hil_env_SIM*.json` (`--env.<field>=<value>`), read by "
        "`e2hil-sim`, `e2hil-learner`/`e2hil-actor`, `e2hil-bench` and `lerobot-eval`. The other "
        "fields (`processor`, `robot`, `teleop`, ...) are LeRobot's `gym_manipulator` env fields. "
        "[sim.md](sim.md) explains the pieces.",
        skip=("processor",),
    ),
    Section(
        "Teacher (`env.teacher`)",
        "teacher",
        "sim.task",
        "TeacherConfig",
        "env.teacher.",
        "The scripted teacher of the sim and its human-like operator profile "
        "([sim.md](sim.md#task-variants-the-papers-regime)).",
    ),
    Section(
        "Launcher (`env.launch`)",
        "launch",
        "sim.config",
        "LaunchConfig",
        "env.launch.",
        "Settings of the one-command sim launcher (`make sim`, `e2hil-sim`); ignored by the other entry points.",
    ),
    Section(
        "Runtime and faults (`faults`)",
        "faults",
        "faults.settings",
        "FaultSettings",
        "--faults.",
        "Bounded waits and limits of the learner and actor (`e2hil-learner`, `e2hil-actor`, `e2hil-sim` "
        'passes them on): `"faults": {...}` in a train config, or `--faults.<field>=<value>`. Each '
        "checkpoint's `train_config.json` saves the section, so a resume from it runs with the same "
        "values. What each guards against: [faults.md](faults.md).",
        skip=SECURITY_FIELDS,
    ),
    Section(
        "Security (`faults`: TLS and the token)",
        "security",
        "faults.settings",
        "FaultSettings",
        "--faults.",
        "A learner that listens beyond loopback needs TLS and a shared token, or "
        "`--faults.insecure=true` ([faults.md](faults.md#several-robots-over-a-network-tls-a-token-several-actors)).",
        only=SECURITY_FIELDS,
    ),
    Section(
        "SO101 leader as intervention device (`teleop`, `type: so101_leader_hil`)",
        "so101-leader",
        "so101.config_leader",
        "SO101LeaderHILConfig",
        "env.teleop.",
        "The leader arm's HIL-SERL events, in the `env.teleop` block of the SO101 configs; its other "
        "fields (`port`, `id`, ...) are LeRobot's `so101_leader`'s. The SO101 env (`type: so101_hil`) is "
        "LeRobot's real-robot env, checked at parse time. Guide: [README_HIL_SERL.md](../README_HIL_SERL.md).",
    ),
    Section(
        "Simulated SO101 follower (`robot`, `type: so101_follower_sim`)",
        "so101-follower-sim",
        "so101.config_simulated",
        "SO101FollowerSimConfig",
        "env.robot.",
        "The follower in MuJoCo over a simulated Feetech bus, for runs without hardware.",
    ),
    Section(
        "Simulated SO101 leader (`teleop`, `type: so101_leader_hil_sim`)",
        "so101-leader-sim",
        "so101.config_simulated",
        "SO101LeaderHILSimConfig",
        "env.teleop.",
        "The leader over a simulated bus, optionally moved by a scripted teacher; it also has every "
        "field of `so101_leader_hil` above.",
    ),
    Section(
        "SO101 dry run (`e2hil-so101-dry-run`)",
        "dry-run",
        "so101.dry_run",
        "DryRunConfig",
        "--",
        "The whole SO101 workflow without hardware, one command.",
    ),
    Section(
        "SO101 recording (`e2hil-so101-record`)",
        "record",
        "so101.record",
        "SO101RecordConfig",
        "--",
        "Demonstrations and replays with the leader's events.",
    ),
    Section(
        "SO101 evaluation (`e2hil-so101-eval`)",
        "evaluation",
        "so101.evaluate",
        "SO101EvalConfig",
        "--",
        "Teacher-free evaluation of a checkpoint on the robot.",
    ),
    Section(
        "Benchmark budget (`e2hil-bench --budget.*`)",
        "budget",
        "bench.config",
        "Budget",
        "--budget.",
        "What every run of an `e2hil-bench` suite or sweep shares. The defaults below are the "
        "class's; each command starts from its own preset (`BUDGETS` in `bench/config.py`, printed "
        "by `e2hil-bench <command> --help`). [benchmarks.md](benchmarks.md) shows the commands.",
    ),
)


def field_comments(cls: type) -> dict[str, str]:
    """``{field: comment}`` for the fields ``cls`` declares in its own body, from its source."""
    source = textwrap.dedent(inspect.getsource(cls))
    lines = source.splitlines()
    body = ast.parse(source).body[0].body
    comments: dict[str, str] = {}
    previous: tuple[str, int] | None = None
    for node in body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            previous = None
            continue
        start = node.lineno - 1
        above = []
        row = start - 1
        while row >= 0 and lines[row].strip().startswith("#"):
            above.insert(0, lines[row].strip().lstrip("#").strip())
            row -= 1
        name = node.target.id
        if above:
            comments[name] = " ".join(above)
        elif previous is not None and previous[1] == start - 1 and "field(" not in lines[start]:
            comments[name] = comments.get(previous[0], "")
        else:
            comments[name] = ""
        previous = (name, node.end_lineno - 1)
    return comments


def docstring_attributes(cls: type) -> dict[str, str]:
    """``{name: text}`` of the Google-style ``Attributes:`` section of ``cls``'s docstring."""
    doc = inspect.cleandoc(cls.__doc__ or "")
    if "Attributes:" not in doc:
        return {}
    found: dict[str, str] = {}
    name = None
    for line in doc.split("Attributes:", 1)[1].splitlines():
        if line.strip() and not line.startswith(" "):
            break
        head, sep, text = line.strip().partition(": ")
        if line.startswith("    ") and not line.startswith("     ") and sep and head.isidentifier():
            name = head
            found[name] = text.strip()
        elif name is not None and line.strip():
            found[name] += " " + line.strip()
    return found


def describe(cls: type, name: str, comments: dict[str, str]) -> str:
    """The field's comment, else its entry in the ``Attributes:`` of ``cls`` or a base class."""
    if comments.get(name):
        return comments[name]
    for klass in cls.__mro__:
        text = docstring_attributes(klass).get(name)
        if text:
            return text
    return ""


def render_default(value: Any) -> str:
    """A default as it would be written in the JSON config."""
    if dataclasses.is_dataclass(value):
        return "(block below)"
    if isinstance(value, tuple):
        value = list(value)
    try:
        return f"`{json.dumps(value)}`"
    except TypeError:
        return f"`{value!r}`"


def default_of(f: dataclasses.Field) -> Any:
    """The field's default value, calling its factory."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def type_name(annotation: Any) -> str:
    """The annotation as written (string annotations stay as they are)."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    return text.replace("|", "\\|")


def section_rows(section: Section) -> list[str]:
    """The markdown table of one section."""
    cls = getattr(importlib.import_module(f"{PACKAGE}.{section.module}"), section.cls)
    comments = field_comments(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    rows = ["| field | type | default | meaning |", "| --- | --- | --- | --- |"]
    for name, comment in comments.items():
        if name not in fields or name in section.skip or (section.only and name not in section.only):
            continue
        value = default_of(fields[name])
        default = "required" if value is dataclasses.MISSING else render_default(value)
        if dataclasses.is_dataclass(value):
            comment = next(
                (
                    f"the `{s.flag}*` fields: [{s.title.split(' (')[0]}](#{anchor(s.title)})"
                    for s in SECTIONS
                    if s.cls == type(value).__name__
                ),
                "",
            )
        else:
            comment = describe(cls, name, comments)
        text = comment.replace("|", "\\|") or "-"
        rows.append(f"| `{section.flag}{name}` | `{type_name(fields[name].type)}` | {default} | {text} |")
    return rows


def render() -> str:
    """The whole reference."""
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated by scripts/gen_config_reference.py from the config dataclasses; do not edit by hand.",
        "     tests/test_config_reference.py fails when this file and the code disagree. -->",
        "",
        "Every field the plugin adds, with its default and the comment written beside it in the code.",
        "A field is set in the JSON config (`--config_path`) or with a dotted flag that overrides it,",
        "e.g. `--env.teacher.decay_episodes=0`; a value out of range ends the command with one",
        "`error: <field>=<value> is invalid; allowed values: ...` line ([troubleshooting.md](troubleshooting.md)).",
        "",
        "Sections: " + " · ".join(f"[{s.title.split(' (')[0]}](#{anchor(s.title)})" for s in SECTIONS) + ".",
        "",
    ]
    for section in SECTIONS:
        out += [f"## {section.title}", "", section.intro, "", *section_rows(section), ""]
    return "\n".join(out)


def anchor(title: str) -> str:
    """GitHub's anchor of a heading."""
    kept = "".join(c for c in title.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def main(argv: list[str] | None = None) -> int:
    """Write the reference, or with ``--check`` compare it to the committed file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when docs/configuration.md is out of date"
    )
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUTPUT.is_file() or OUTPUT.read_text() != text:
            print(
                "error: docs/configuration.md is out of date. Run python scripts/gen_config_reference.py.",
                file=sys.stderr,
            )
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
