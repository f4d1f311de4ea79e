"""One-line messages for a mistyped flag, field or choice, with the nearest valid names.

draccus reports an unknown flag as "unrecognized arguments: ...", an unknown ``--<field>.type``
as argparse's "invalid choice", an unknown ``"type"`` in a JSON file as "Couldn't find a choice
class for 'ppo' in <class ...>" and an unknown JSON key as "The fields `x` are not valid for
<class>". :func:`describe_parse_error` turns each into ``<what is wrong>; nearest: ...; allowed
values: ...``, naming the dotted field, from the config dataclass the entry point parses.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import re
import types
import typing
from typing import Any

# Where every message points (a short --help says how to list every field)
HELP_HINT = "`--help` lists the flags"

_UNRECOGNIZED = re.compile(r"unrecognized arguments: (.+)")
_INVALID_CHOICE = re.compile(r"argument --([\w.]+): invalid choice: '([^']*)' \(choose from (.+)\)")
_NO_CHOICE_CLASS = re.compile(r"Couldn't find a choice class for '([^']*)' in <class '([\w.]+)'>")
_NOT_VALID_FIELDS = re.compile(r"The fields (.+) are not valid for ([\w.\[\]]+)")


def nearest(name: str, valid: list[str], n: int = 3, cutoff: float = 0.75) -> list[str]:
    """Up to ``n`` names of ``valid`` closest to ``name`` (difflib's ratio >= ``cutoff``), closest first."""
    return difflib.get_close_matches(name, valid, n=n, cutoff=cutoff)


def _dataclass_of(annotation: Any) -> type | None:
    """The dataclass in ``annotation`` (``X``, ``X | None``, ``Optional[X]``), or None."""
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        found = [a for a in typing.get_args(annotation) if _dataclass_of(a) is not None]
        return found[0] if len(found) == 1 else None
    return None


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # a hint that does not resolve here: treat every field as a leaf
        return {}


def _is_choice_type(cls: type) -> bool:
    return callable(getattr(cls, "get_known_choices", None))


def field_names(config: Any, prefix: str = "") -> list[str]:
    """Every dotted field name a flag can set, from a config instance or dataclass.

    An instance gives the fields of the choices it holds (``policy`` as a ``GaussianActorConfig``);
    a class gives those of each field's declared type. A choice-type field adds ``<field>.type``.

    Args:
        config: A dataclass instance or class.
        prefix: The dotted path of ``config`` itself (``""`` at the root).
    """
    cls = config if isinstance(config, type) else type(config)
    hints = _hints(cls)
    names = [f"{prefix}type"] if prefix and _is_choice_type(cls) else []
    for field in dataclasses.fields(cls):
        value = getattr(config, field.name, None) if not isinstance(config, type) else None
        path = f"{prefix}{field.name}"
        if value is not None and dataclasses.is_dataclass(value):
            names += field_names(value, f"{path}.")
        elif (child := _dataclass_of(hints.get(field.name))) is not None:
            names += field_names(child, f"{path}.")
        else:
            names.append(path)
    return names


def _field_class(config_class: type, key_path: tuple[str, ...]) -> type | None:
    """The declared dataclass type of the field at ``key_path`` under ``config_class``."""
    cls: type | None = config_class
    for name in key_path:
        cls = _dataclass_of(_hints(cls).get(name)) if cls is not None else None
    return cls


def _choice_named(base: type, name: str) -> type | None:
    """``base`` or the subclass of it (registered choice or not) whose class name is ``name``."""
    stack, seen = [base], set()
    while stack:
        cls = stack.pop()
        if cls.__name__ == name.rpartition(".")[2]:
            return cls
        seen.add(cls)
        stack += [c for c in cls.__subclasses__() if c not in seen]
    return None


def _quoted(values: list[str]) -> str:
    return ", ".join(repr(v) for v in values)


def _unknown_flags(text: str) -> list[str]:
    """The flag names (without ``--`` and value) in draccus' "unrecognized arguments" text."""
    return [token[2:].split("=", 1)[0] for token in text.split() if token.startswith("--")]


def _without_flags(args: list[str], names: list[str]) -> list[str]:
    """``args`` without the flags ``names`` (``--name=value`` or ``--name value``)."""
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
            continue
        name = arg[2:].split("=", 1)[0] if arg.startswith("--") else None
        if name in names:
            skip = "=" not in arg
            continue
        kept.append(arg)
    return kept


def _resolved(config_class: type, args: list[str], config_path: str | None, unknown: list[str]) -> Any:
    """The config parsed without the ``unknown`` flags (its choices resolved), or the class."""
    import draccus

    try:
        return draccus.parse(
            config_class, config_path=config_path, args=_without_flags(args, unknown), exit_on_error=False
        )
    except Exception:  # another error: the declared types still name the fields
        return config_class


def _innermost_decoding_error(err: BaseException) -> tuple[tuple[str, ...], str] | None:
    """``(key_path, message)`` of the deepest draccus ``DecodingError`` in ``err``'s cause chain."""
    from draccus.utils import DecodingError

    found = None
    while err is not None:
        if isinstance(err, DecodingError):
            found = (tuple(err.key_path), one_line_text(err.message))
        err = err.__cause__
    return found


def one_line_text(text: str) -> str:
    return " ".join(str(text).split())


def describe_parse_error(
    err: BaseException,
    config_class: type | None,
    args: list[str] | None,
    config_path: str | None = None,
    prefix: str = "",
) -> str | None:
    """The one-line message for a mistyped flag, JSON key or choice; None for other errors.

    Args:
        err: What ``draccus.parse(..., exit_on_error=False)`` raised.
        config_class: The config dataclass the entry point parses (None: the names are not known).
        args: The command line it parsed (without ``--config_path``).
        config_path: The config file, to name it.
        prefix: What the user typed before the parsed names (``"faults."`` for the fault settings).
    """
    text = one_line_text(err)
    where = f" in {config_path}" if config_path else ""
    if (match := _UNRECOGNIZED.fullmatch(text)) and config_class is not None:
        unknown = _unknown_flags(match.group(1))
        valid = field_names(_resolved(config_class, args or [], config_path, unknown), prefix)
        parts = []
        for name in (prefix + u for u in unknown):
            close = nearest(name, valid)
            parts.append(
                f"--{name} ({'nearest: ' + ', '.join('--' + c for c in close) if close else 'no field is close'})"
            )
        plural = "s" if len(unknown) > 1 else ""
        return f"unknown flag{plural} {'; '.join(parts)}. {HELP_HINT}."
    if match := _INVALID_CHOICE.fullmatch(text):
        flag, value = prefix + match.group(1), match.group(2)
        choices = re.findall(r"'([^']*)'", match.group(3))
        return _choice_message(flag, value, choices, "")
    innermost = _innermost_decoding_error(err)
    if innermost is None:
        return None
    key_path, message = innermost
    field = ".".join(key_path)
    if match := _NO_CHOICE_CLASS.fullmatch(message):
        value, base_path = match.group(1), match.group(2)
        module, _, name = base_path.rpartition(".")
        try:
            base = getattr(importlib.import_module(module), name)
            choices = list(base.get_known_choices())
        except Exception:  # the base is not importable here: name the value alone
            choices = []
        return _choice_message(f"{field}.type" if field else "type", value, choices, where)
    if (match := _NOT_VALID_FIELDS.fullmatch(message)) and config_class is not None:
        keys = re.findall(r"`([^`]+)`", match.group(1))
        declared = _field_class(config_class, key_path) if key_path else config_class
        cls = _choice_named(declared, match.group(2)) if declared is not None else None
        valid = [f.name for f in dataclasses.fields(cls)] if cls is not None else []
        prefix = f"{field}." if field else ""
        parts = []
        for key in keys:
            close = nearest(key, valid)
            parts.append(
                f"{prefix}{key} ({'nearest: ' + ', '.join(prefix + c for c in close) if close else 'no field is close'})"
            )
        owner = f"{field} ({match.group(2)})" if field else match.group(2)
        return (
            f"unknown field{'s' if len(keys) > 1 else ''}{where}: {'; '.join(parts)}; not a field of {owner}. "
            f"Fix the key in the config file; {HELP_HINT}."
        )
    return None


def _choice_message(flag: str, value: str, choices: list[str], where: str) -> str:
    close = nearest(value, choices, cutoff=0.6)
    hint = f"nearest: {_quoted(close)}; " if close else ""
    allowed = _quoted(choices) if choices else "see --help"
    fix = f"Fix the file or set --{flag}=<value>" if where else f"Set --{flag}=<value>"
    return f"{flag}={value!r}{where} is not a known choice; {hint}allowed values: {allowed}. {fix}."
