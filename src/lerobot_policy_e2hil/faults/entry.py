"""How the entry points end on a bad setup or a fatal fault: ``error: <cause>. <fix>``, one line.

LeRobot's learner and actor catch every exception of their main loops, log its traceback and
return normally, so a fault detected inside them cannot end the process by raising. The hooks
therefore :func:`record_fatal` the message, stop the loop through LeRobot's shutdown event, and
:func:`run_entry` prints the message and exits non-zero once LeRobot's CLI has returned.
A bad command line (malformed or missing config file, invalid value) ends through
:func:`~..errors.exit_on_setup_error` with the same one line, as every entry point does.
"""

from __future__ import annotations

import atexit
import contextlib
import faulthandler
import functools
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import NoReturn

from ..errors import EXIT_SETUP, SetupError, check_command_line, describe_error, exit_on_setup_error, one_line

# Importable from here as before; the definitions live in ..errors.
__all__ = [
    "EXIT_FATAL",
    "EXIT_SETUP",
    "SetupError",
    "describe_error",
    "exit_process",
    "process_script",
    "fatal_message",
    "one_line",
    "record_fatal",
    "run_entry",
]

EXIT_FATAL = 1

_FATAL: list[str] = []


def record_fatal(message: str) -> None:
    """Log ``message`` as an error and make the entry point exit with it after LeRobot returns."""
    logging.error(message)
    _FATAL.append(message)


def fatal_message() -> str | None:
    """The first fatal message recorded in this process, if any."""
    return _FATAL[0] if _FATAL else None


def run_entry(main: Callable[[], None]) -> None:
    """Run an entry point whose body parses ``sys.argv`` as :class:`~..train_config.E2HiLTrainConfig`.

    Args:
        main: The entry's body (a ``parser.wrap`` function of that config, ``faults`` section included).

    Exits with :data:`EXIT_SETUP` on a :class:`SetupError` or :class:`~..errors.ConfigError`,
    with :data:`EXIT_FATAL` when a hook recorded a fatal fault, printing ``error: <message>``.
    """
    from lerobot.configs import parser

    from ..setup_checks import check_algorithm_type, check_retired_switches
    from ..train_config import E2HiLTrainConfig

    _enable_faulthandler()
    args = sys.argv[1:]
    config_path = parser.parse_arg("config_path", args)
    try:
        check_retired_switches()
        check_algorithm_type(args)
        check_command_line(E2HiLTrainConfig, args)
        main()
    except Exception as err:
        exit_on_setup_error(err, config_path)
    message = fatal_message()
    if message is not None:
        print(f"error: {one_line(message)}", file=sys.stderr, flush=True)
        sys.exit(EXIT_FATAL)


def _enable_faulthandler() -> None:
    """Print every Python thread's stack on a native abort (seen now and then at the learner's exit).

    Skipped when ``sys.stderr`` is not a file (an in-process caller, e.g. pytest, captured it).
    """
    # io.UnsupportedOperation (no fileno) is a ValueError
    with contextlib.suppress(AttributeError, ValueError):
        faulthandler.enable()


def exit_process(entry: Callable[[], None]) -> NoReturn:
    """Run a process's entry point, end Python's part of the exit as usual, then skip native teardown.

    The learner (and, more rarely, the actor) now and then aborted after its work was done and its
    final checkpoint written: ``terminate called without an active exception``, exit -6, in the
    C/C++ destructors that run once Python has finalized (no Python frame on any thread). Here,
    once ``entry`` has returned or raised :class:`SystemExit`, the exit does what Python's own does
    first (join the non-daemon threads, call the ``atexit`` handlers: wandb's finish, logging's
    flush, multiprocessing's joins) and then ends the process with its exit code, before any
    native destructor runs. An exception other than ``SystemExit`` propagates as usual.

    Args:
        entry: The console script's body (``cli.learner_main``...), which may call ``sys.exit``.
    """
    try:
        entry()
        code = 0
    except SystemExit as stop:
        code = _exit_code(stop.code)
    # threading._shutdown and atexit._run_exitfuncs are the first two steps of Py_FinalizeEx
    threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def process_script(entry: Callable[[], None]) -> Callable[[], NoReturn]:
    """A console script that runs ``entry`` through :func:`exit_process`.

    ``inspect.unwrap`` of the script gives ``entry``, which callers in this process (tests) run
    instead: it raises :class:`SystemExit` rather than ending the process.
    """

    @functools.wraps(entry)
    def script() -> NoReturn:
        exit_process(entry)

    return script


def _exit_code(code: object) -> int:
    """The process exit code of ``sys.exit(code)``: None -> 0, an int as is, else printed and 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1
