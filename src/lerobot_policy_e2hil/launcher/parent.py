"""A learner or actor started by a launcher stops, once, when the launcher is gone however it ended.

Launchers: ``e2hil-sim`` (its ``launcher.learner`` / ``launcher.actor``) and ``e2hil-so101-dry-run`` (its
``e2hil-learner`` / ``e2hil-actor``). A launcher asks Linux for SIGTERM when it dies
(``PR_SET_PDEATHSIG`` before exec), which covers the child's
start, and puts its pid in the child's environment (:data:`LAUNCHER_PID_ENV`). Linux ties that
signal to the launcher's thread that forked the child, not to the process: when the launcher
(torch, gRPC: many threads) is SIGKILLed, the child is handed to each next dying thread in turn
and gets SIGTERM again each time (seen: two). LeRobot's signal handler takes a second signal as
"Force shutdown" (``sys.exit(1)`` wherever the main thread is), so the learner skipped its final
checkpoint. Once the process runs Python, :func:`stop_once_with_launcher` therefore drops the
kernel's signal and watches the parent process instead: one SIGTERM, to the main thread, when the
launcher is gone.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time

# The launcher's pid, set by e2hil-sim and e2hil-so101-dry-run for the processes they start
LAUNCHER_PID_ENV = "E2HIL_LAUNCHER_PID"
# How often the watcher looks at the parent (the delay of the stop)
POLL_S = 0.5
_PR_SET_PDEATHSIG = 1


def set_parent_death_signal(signum: int) -> bool:
    """``prctl(PR_SET_PDEATHSIG, signum)`` (0 clears it); False where the call is not available."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signum)) == 0
    except (OSError, AttributeError):
        return False


def launcher_pid(environ: dict[str, str] | os._Environ) -> int | None:
    """The launcher's pid from :data:`LAUNCHER_PID_ENV`, or None (started by hand, or not a pid)."""
    value = environ.get(LAUNCHER_PID_ENV, "")
    return int(value) if value.isdigit() and int(value) > 1 else None


def stop_once_with_launcher(poll_s: float = POLL_S) -> threading.Thread | None:
    """Replace the kernel's parent-death signal by a watcher that sends one SIGTERM.

    Returns:
        The watcher thread (daemon), or None when the process was not started by the launcher
        or the launcher was already gone (SIGTERM sent at once).
    """
    launcher = launcher_pid(os.environ)
    if launcher is None or not set_parent_death_signal(0):
        return None
    if os.getppid() != launcher:
        _stop()
        return None
    watcher = threading.Thread(
        target=_watch, args=(launcher, poll_s), name="e2hil-launcher-watch", daemon=True
    )
    watcher.start()
    return watcher


def _watch(launcher: int, poll_s: float) -> None:
    while os.getppid() == launcher:
        time.sleep(poll_s)
    _stop()


def _stop() -> None:
    # To the main thread, so a blocking wait there is interrupted and the handler runs at once
    signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
