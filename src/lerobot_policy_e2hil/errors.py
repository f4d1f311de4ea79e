"""The errors of a bad command line or setup, and how every entry point reports them.

An entry point that ends on one of these prints ``error: <cause>. <fix>`` on one line and exits
with :data:`EXIT_SETUP`, without a traceback (:func:`exit_on_setup_error`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import NoReturn

from draccus.utils import DraccusException, ParsingError

from .suggest import HELP_HINT, describe_parse_error

#: Exit status of an entry point that stopped on a bad command line or setup.
EXIT_SETUP = 2
#: Exit status of a run that a safety stop (LeRobot's EE-jump check) ended.
EXIT_SAFETY = 1

_EE_JUMP = re.compile(r"EE jump ([\d.]+)m > ([\d.]+)m")


def describe_ee_jump(err: BaseException) -> str | None:
    """The one-line cause and fix of LeRobot's EE-jump safety stop, or None for any other error.

    LeRobot's ``EEBoundsAndSafety`` raises it when the commanded end effector moves more than
    ``max_ee_step_m`` in one step. Its reference is the end effector of the previous IK solution;
    with the IK damped (:mod:`.lerobot_layer.fixes`) the solution no longer flips branch, so what is left
    is the IK falling behind a target held at a face of ``end_effector_bounds`` that the arm cannot
    reach, by more than the limit minus one step.
    """
    match = _EE_JUMP.search(str(err)) if isinstance(err, ValueError) else None
    if match is None:
        return None
    return (
        f"LeRobot's safety stop: the commanded end effector jumped {match.group(1)} m in one step "
        f"(limit {match.group(2)} m): the IK fell behind a target the arm cannot reach. Lower "
        "env.processor.inverse_kinematics.end_effector_step_sizes (e.g. 0.01 each) or narrow "
        "env.processor.inverse_kinematics.end_effector_bounds to where the arm reaches, and start again"
    )


class ConfigError(ParsingError):
    """An invalid config value; the message names the field and the allowed values.

    Derived from draccus' ``ParsingError`` rather than ``ValueError``: draccus replaces a
    ``ValueError`` raised while it builds a dataclass with a generic "Couldn't instantiate
    class" message, and it shows this one verbatim, so the user sees which field is wrong.
    """


class SetupError(RuntimeError):
    """A setup the learner or actor cannot run with; the message says what to change."""


def one_line(err: BaseException | str) -> str:
    """``err``'s message on one line (draccus and LeRobot messages span several)."""
    return " ".join(str(err).split())


def describe_error(
    err: BaseException,
    config_path: str | None = None,
    config_class: type | None = None,
    args: list[str] | None = None,
) -> str | None:
    """The one-line ``<cause>. <fix>`` for an error of a bad command line, or None for other errors.

    A mistyped flag, JSON key or choice gets the nearest valid names and the allowed choices
    (:func:`~.suggest.describe_parse_error`).

    Args:
        err: What parsing or setting up raised.
        config_path: The ``--config_path`` given, to name it.
        config_class: The config dataclass that was parsed, to find the nearest valid field names.
        args: The command line that was parsed (without ``--config_path``).

    Returns:
        The message without the ``error:`` prefix; None when ``err`` is not a command-line error
        (a bug: let its traceback show).
    """
    if isinstance(err, (SetupError, ConfigError)):
        return one_line(err)
    if (ee_jump := describe_ee_jump(err)) is not None:
        return ee_jump
    if isinstance(err, FileNotFoundError) and config_path is not None and err.filename == config_path:
        return f"the config file {config_path} does not exist. Check --config_path."
    decode_error = err if isinstance(err, json.JSONDecodeError) else err.__cause__
    if isinstance(err, (ParsingError, json.JSONDecodeError)) and isinstance(
        decode_error, json.JSONDecodeError
    ):
        return (
            f"the config file {config_path} is not valid JSON ({decode_error}). Fix the file; "
            f"`python -m json.tool {config_path}` shows where it breaks."
        )
    if isinstance(err, (DraccusException, argparse.ArgumentError)) and (
        suggestion := describe_parse_error(err, config_class, args, config_path)
    ):
        return suggestion
    if isinstance(err, ParsingError):
        return f"{_innermost_cause(one_line(err)).rstrip('.')}. Fix that value in the config file or with its --<field> flag."
    if isinstance(err, argparse.ArgumentError):  # e.g. a `--<field>.type` that is not registered
        return f"{one_line(err).rstrip('.')}."
    if isinstance(err, DraccusException):  # what draccus raises for a flag no field has
        return f"{one_line(err).rstrip('.')}. {HELP_HINT}."
    return None


# draccus' message for a bad value inside a choice-type field (``env``, ``env.teleop``), nested
# once per choice-type level: "`env`: Could not decode ... types: EnvConfig: `processor`: ..."
_CHOICE_LEVEL = re.compile(r"`([\w.]+)`: Could not decode the value into any of the given types: \w+: (.+)")
_FIELD_CAUSE = re.compile(r"`([\w.]+)`: (.+)")
_NAMES_ITS_FIELD = re.compile(r"[\w.]+=")


def _innermost_cause(message: str) -> str:
    """draccus' nested choice-type message as "`<dotted field>`: <cause>", or the innermost message when it names its field."""
    fields = []
    while level := _CHOICE_LEVEL.fullmatch(message):
        fields.append(level.group(1))
        message = level.group(2)
    if fields and (field := _FIELD_CAUSE.fullmatch(message)):
        fields.append(field.group(1))
        message = field.group(2)
    if not fields or _NAMES_ITS_FIELD.match(message):  # our ConfigError messages start "<field>=<value>"
        return message
    return f"`{'.'.join(fields)}`: {message}"


def check_command_line(config_class: type, args: list[str]) -> None:
    """End the process on a bad command line before LeRobot's ``parser.wrap`` parses it.

    ``parser.wrap`` prints draccus' message for a value it cannot decode over several lines
    and exits 1; entry points built on it call this first, so a bad value ends as everywhere
    else (:func:`exit_on_setup_error`). It parses as ``parser.wrap`` does (``--config_path``,
    ``--<field>.path`` flags filtered out); command lines that load plugins, ask for help or
    name a config that is not a local file are left to ``parser.wrap``.

    Args:
        config_class: The config dataclass the entry point's ``parser.wrap`` builds.
        args: The command line without the program name.
    """
    import draccus
    from lerobot.configs import parser

    config_path = parser.parse_arg("config_path", args)
    if (
        "--help" in args
        or "-h" in args
        or "--help-all" in args
        or parser.parse_plugin_args(parser.PLUGIN_DISCOVERY_SUFFIX, args)
        or (config_path is not None and not Path(config_path).is_file())
    ):
        return
    rest, parsed_path = parser.filter_arg("config_path", args), config_path
    try:
        if hasattr(config_class, "__get_path_fields__"):
            path_fields = config_class.__get_path_fields__()
            rest = parser.filter_path_args(path_fields, rest)
            if config_path is not None:  # the file without its ``<field>.path`` entries
                parsed_path = parser.extract_path_fields_from_config(config_path, path_fields)
        draccus.parse(config_class, config_path=parsed_path, args=rest, exit_on_error=False)
    except Exception as err:
        exit_on_setup_error(err, config_path, config_class, rest)


def exit_on_setup_error(
    err: Exception,
    config_path: str | None = None,
    config_class: type | None = None,
    args: list[str] | None = None,
) -> NoReturn:
    """End an entry point on ``err``: ``error: <message>`` and :data:`EXIT_SETUP`, or re-raise a bug.

    Call it from the entry's ``except Exception as err:`` block.

    Args:
        err: What the entry raised.
        config_path: The ``--config_path`` given, to name it in the message.
        config_class: The config dataclass that was parsed (nearest names of a mistyped field).
        args: The command line that was parsed (without ``--config_path``).

    Raises:
        Exception: ``err`` itself when :func:`describe_error` does not know it (its traceback shows).
    """
    message = describe_error(err, config_path, config_class, args)
    if message is None:
        raise err
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(EXIT_SAFETY if describe_ee_jump(err) is not None else EXIT_SETUP)
