"""The errors of a bad command line or setup, and how every entry point reports them.

An entry point that ends on one of these prints ``error: <cause>. <fix>`` on one line and exits
with :data:`EXIT_SETUP`, without a traceback (:func:`exit_on_setup_error`).
"""

from __future__ import annotations

import json
import re
import sys
from typing import NoReturn

from draccus.utils import ParsingError

#: Exit status of an entry point that stopped on a bad command line or setup.
EXIT_SETUP = 2


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


def exit_on_setup_error(err: Exception, config_path: str | None = None) -> NoReturn:
    """End an entry point on ``err``: ``error: <message>`` and :data:`EXIT_SETUP`, or re-raise a bug.

    Call it from the entry's ``except Exception as err:`` block.

    Args:
        err: What the entry raised.
        config_path: The ``--config_path`` given, to name it in the message.

    Raises:
        Exception: ``err`` itself when :func:`describe_error` does not know it (its traceback shows).
    """
    message = describe_error(err, config_path)
    if message is None:
        raise err
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(EXIT_SETUP)
