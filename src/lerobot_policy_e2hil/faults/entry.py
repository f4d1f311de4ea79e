"""How the entry points end on a bad setup or a fatal fault: ``error: <cause>. <fix>``, one line.

LeRobot's learner and actor catch every exception of their main loops, log its traceback and
return normally, so a fault detected inside them cannot end the process by raising. The hooks
therefore :func:`record_fatal` the message, stop the loop through LeRobot's shutdown event, and
:func:`run_entry` prints the message and exits non-zero once LeRobot's CLI has returned.
:func:`describe_error` turns the errors of a bad command line (malformed or missing config
file, invalid value) into the same one line; ``e2hil-sim`` uses it too.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable

from draccus.utils import ParsingError

from ..errors import ConfigError
from .settings import FaultSettings, split_fault_args

EXIT_SETUP = 2
EXIT_FATAL = 1

_FATAL: list[str] = []


class SetupError(RuntimeError):
    """A setup the learner or actor cannot run with; the message says what to change."""


def one_line(err: BaseException | str) -> str:
    """``err``'s message on one line (draccus and LeRobot messages span several)."""
    return " ".join(str(err).split())


def describe_error(err: BaseException, config_path: str | None = None) -> str | None:
    """The one-line ``<cause>. <fix>`` for an error of a bad command line, or None for other errors.

    Args:
        err: What parsing or setting up raised.
        config_path: The ``--config_path`` given, to name it.

    Returns:
        The message without the ``error:`` prefix; None when ``err`` is not a command-line error
        (a bug: let its traceback show).
    """
    if isinstance(err, (SetupError, ConfigError)):
        return one_line(err)
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
    if isinstance(err, ParsingError):
        message = one_line(err)
        inner = re.search(r"Could not decode the value into any of the given types: \w+: (.+)", message)
        cause = inner.group(1) if inner else message
        return f"{cause.rstrip('.')}. Fix that value in the config file or with its --<field> flag."
    return None


def record_fatal(message: str) -> None:
    """Log ``message`` as an error and make the entry point exit with it after LeRobot returns."""
    logging.error(message)
    _FATAL.append(message)


def fatal_message() -> str | None:
    """The first fatal message recorded in this process, if any."""
    return _FATAL[0] if _FATAL else None


def run_entry(main: Callable[[FaultSettings], None]) -> None:
    """Run an entry point with the ``--faults.*`` flags taken out of ``sys.argv``.

    Args:
        main: The entry's body; it receives the settings and parses the rest of ``sys.argv``.

    Exits with :data:`EXIT_SETUP` on a :class:`SetupError` or :class:`~..errors.ConfigError`,
    with :data:`EXIT_FATAL` when a hook recorded a fatal fault, printing ``error: <message>``.
    """
    from lerobot.configs import parser

    from .checks import check_algorithm_type

    config_path = parser.parse_arg("config_path", sys.argv[1:])
    try:
        settings, rest = split_fault_args(sys.argv[1:])
        sys.argv = [sys.argv[0], *rest]
        check_algorithm_type(rest)
        main(settings)
    except Exception as err:
        message = describe_error(err, config_path)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr, flush=True)
        sys.exit(EXIT_SETUP)
    message = fatal_message()
    if message is not None:
        print(f"error: {one_line(message)}", file=sys.stderr, flush=True)
        sys.exit(EXIT_FATAL)
