"""Every ``error:`` message the package can print is in docs/troubleshooting.md, with its fix.

The messages are found in the source, not listed by hand: the first argument of every
``ConfigError``, ``SetupError``, ``LaunchError`` and ``record_fatal`` call, every ``print`` of a
literal ``error: ...``, what the launcher gives as a partial run's reason, and the strings returned
by the functions that build messages for those calls (:data:`MESSAGE_FUNCTIONS`). A message is
identified by its longest run of fixed words (the text between two ``{placeholders}``, up to
:data:`KEY_WORDS` words): the page must contain it, so rewording a message or adding one fails
here until the page follows. The ``<field>=<value> is invalid; allowed values: ...`` messages are
one group: the page must contain each literally named field.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "lerobot_policy_e2hil"
DOC = ROOT / "docs" / "troubleshooting.md"
#: Calls whose argument (index) is a message the user sees after ``error:``.
MESSAGE_CALLS = {
    "ConfigError": 0,
    "E2HiLConfigError": 0,
    "SetupError": 0,
    "LaunchError": 0,
    "record_fatal": 0,
    "_wait_or_record_fatal": 2,
    "StageFailed": 1,
}
#: Functions whose returned strings are such messages (the caller raises or prints them).
MESSAGE_FUNCTIONS = {
    "check_row",
    "check_version",
    "refusal_hint",
    "tls_mismatch",
    "describe_error",
    "_run_reasons",
}
#: The longest fixed run of a message is cut to this many words.
KEY_WORDS = 8
HOLE = "\x00"
INVALID = re.compile(r"\b(is|are) invalid\b")
FIELD = re.compile(r"^[A-Za-z_][\w.\[\]]*$")


@dataclass(frozen=True)
class Message:
    """One message template in the source: where, and its text with ``HOLE`` for each placeholder."""

    where: str
    template: str

    @property
    def key(self) -> str:
        """What the page must contain for this message."""
        if INVALID.search(self.template):
            field = self.template.split("=", 1)[0].strip()
            return field if HOLE not in field and FIELD.match(field) else "is invalid; allowed values"
        runs = [" ".join(run.split()) for run in self.template.split(HOLE)]
        runs = [re.sub(r"^s\b", "", run).strip(" .,;:()'\"/") for run in runs]  # "{t:.0f} s. ..." leaves "s"
        longest = max(runs, key=lambda run: len(run.split()))
        return " ".join(longest.split()[:KEY_WORDS])


def _text(node: ast.AST, names: dict[str, ast.AST]) -> str | None:
    """The template of a string expression, or None when it is not built from literals."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else HOLE for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(node.left, names), _text(node.right, names)
        return None if left is None and right is None else (left or HOLE) + (right or HOLE)
    if isinstance(node, ast.IfExp):
        return _text(node.body, names) or _text(node.orelse, names)
    if isinstance(node, ast.Name) and node.id in names:
        return _text(names.pop(node.id), names)
    return None


def _assignments(function: ast.AST) -> dict[str, ast.AST]:
    """The last string-valued assignment of each plain name in ``function``."""
    names = {}
    for node in ast.walk(function):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            names[node.targets[0].id] = node.value
    return names


def _call_name(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def source_messages() -> list[Message]:
    """Every message template of the package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent)
        tree = ast.parse(path.read_text())
        functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        for function in [tree, *functions]:
            names = _assignments(function)
            for node in ast.walk(function):
                texts = []
                if isinstance(node, ast.Call):
                    name = _call_name(node)
                    index = MESSAGE_CALLS.get(name)
                    if index is not None and len(node.args) > index:
                        texts.append(_text(node.args[index], dict(names)))
                    elif name == "print" and node.args:
                        text = _text(node.args[0], dict(names))
                        if text and text.startswith("error: "):
                            texts.append(text[len("error: ") :])
                    elif (
                        name == "append"
                        and isinstance(node.func.value, ast.Name)
                        and node.func.value.id == "reasons"
                    ):
                        texts.append(_text(node.args[0], dict(names)))
                if (
                    isinstance(node, ast.Return)
                    and node.value is not None
                    and getattr(function, "name", "") in MESSAGE_FUNCTIONS
                ):
                    value = (
                        node.value.elts[0]
                        if isinstance(node.value, ast.List) and node.value.elts
                        else node.value
                    )
                    texts.append(_text(value, dict(names)))
                for text in texts:
                    if text is not None and text.strip(HOLE + " .:"):
                        found.append(Message(f"{relative}:{node.lineno}", text))
    return sorted(set(found), key=lambda m: m.where)


def _normalised(text: str) -> str:
    return " ".join(text.split())


def test_the_scan_finds_the_messages_of_every_kind():
    messages = source_messages()
    keys = {m.key for m in messages}
    assert len(messages) >= 80
    # a raise, a printed line, a partial-run reason, a built message, a resolved variable
    for expected in (
        "already exists. Choose another --output_dir, or add --resume=true",
        "the run ended without a checkpoint. Check --save_checkpoint and",
        "died before its budget was spent",
        "is installed. Install a supported one: pip install",
        "could not be loaded (the log above says",
        "env.launch.num_actors",
    ):
        assert any(expected in key or key in expected for key in keys), expected


def test_every_error_message_is_in_troubleshooting():
    doc = _normalised(DOC.read_text())
    missing = sorted({f"{m.key!r} ({m.where})" for m in source_messages() if _normalised(m.key) not in doc})
    assert missing == [], "add these messages and their fixes to docs/troubleshooting.md:\n" + "\n".join(
        missing
    )


def test_a_new_message_is_caught(tmp_path, monkeypatch):
    """A message added to the source and absent from the page fails the check."""
    module = tmp_path / "lerobot_policy_e2hil" / "new.py"
    module.parent.mkdir()
    module.write_text('def f(x):\n    raise SetupError(f"the widget {x} is upside down. Turn it over")\n')
    monkeypatch.setattr(__import__(__name__), "PACKAGE", module.parent)
    [message] = source_messages()
    assert message.key == "is upside down. Turn it over"
    assert _normalised(message.key) not in _normalised(DOC.read_text())
