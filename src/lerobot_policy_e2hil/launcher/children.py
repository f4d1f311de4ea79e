"""The processes a run starts (learner, actors, the SO101 dry run's stages): how each starts and stops.

Every place that starts a learner and actor starts them here: ``e2hil-sim`` (:mod:`.train`), the
SO101 dry run, ``benchmarks/bench_several_actors.py`` and the tests' spawners
(tests/test_children.py fails when another module of the package or the benchmarks calls
``subprocess.Popen``). A child's output goes to its log file, its stdin is closed, and by default
it asks Linux for SIGTERM when the process that started it dies, even by SIGKILL
(:func:`~.parent.set_parent_death_signal` between fork and exec). Linux ties that signal to the
starting *thread*: a child started from a thread that ends before the run does gets SIGTERM then,
unless it runs :func:`~.parent.stop_once_with_launcher` (the learner and actor do when the
starter put its pid in :data:`~.parent.LAUNCHER_PID_ENV`).

A stop follows an :class:`Escalation`: signals in turn to the children still running, each followed
by one wait shared by them all. The last signal is SIGKILL, so every stop ends within the sum of
its waits.
"""

from __future__ import annotations

import math
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .parent import set_parent_death_signal

# Seconds a stop waits for a child to be gone after SIGKILL (a child stuck in the kernel may take longer)
KILL_WAIT_S = 30.0


@dataclass(frozen=True)
class Escalation:
    """How a stop goes: each ``(signal, wait_s)`` in turn, sent to the children still running.

    After each signal the stop waits up to ``wait_s`` for all of them together; those still running
    then get the next signal. The last signal must be SIGKILL.
    """

    # (signal number, seconds to wait after it), in the order they are sent
    steps: tuple[tuple[int, float], ...]

    def __post_init__(self) -> None:
        if not self.steps or self.steps[-1][0] != signal.SIGKILL:
            raise ValueError(
                f"steps={self.steps!r} is invalid; allowed values: (signal, wait_s) pairs ending with SIGKILL"
            )
        for sig, wait_s in self.steps:
            if not math.isfinite(wait_s) or wait_s < 0:
                raise ValueError(
                    f"the wait after {signal.Signals(sig).name} is {wait_s!r}; allowed values: >= 0 s"
                )

    @classmethod
    def then_kill(cls, sig: int, wait_s: float, kill_wait_s: float = KILL_WAIT_S) -> Escalation:
        """``sig``, ``wait_s`` for the children to end, then SIGKILL."""
        return cls(((sig, wait_s), (signal.SIGKILL, kill_wait_s)))


def die_with_parent() -> None:
    """In a child between fork and exec: SIGTERM when the starting thread dies, even by SIGKILL (Linux)."""
    set_parent_death_signal(signal.SIGTERM)


#: SIGKILL at once (children whose state does not matter, e.g. a benchmark's).
KILL = Escalation(((signal.SIGKILL, KILL_WAIT_S),))


@dataclass
class Child:
    """One started process.

    Attributes:
        name: Its name among the run's children.
        popen: The process.
        log: The file its output goes to.
        offset: Where this start's output begins in ``log`` (after the command line; past the
            earlier output when appended).
    """

    name: str
    popen: subprocess.Popen
    log: Path
    offset: int

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def args(self) -> list[str]:
        """The command line it was started with."""
        return list(self.popen.args)

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    def poll(self) -> int | None:
        """Its exit status, or None while it runs."""
        return self.popen.poll()

    def wait(self, timeout: float) -> int:
        """Its exit status once it ends; raises ``subprocess.TimeoutExpired`` after ``timeout`` s."""
        return self.popen.wait(timeout=timeout)

    def send_signal(self, sig: int) -> None:
        """``sig`` to the process if it still runs."""
        if self.poll() is None:
            self.popen.send_signal(sig)


#: ``on_late(child, waited_s, next_signal)``: ``child`` outlived a step's wait and gets ``next_signal``.
OnLate = Callable[[Child, float, int], None]


def stop(children: Sequence[Child], how: Escalation, on_late: OnLate | None = None) -> list[int | None]:
    """Stop ``children`` together by ``how``; their exit statuses in order.

    A status is None only for a child still not gone after SIGKILL and its wait.
    """
    for index, (sig, wait_s) in enumerate(how.steps):
        running = [child for child in children if child.poll() is None]
        if not running:
            break
        if index > 0 and on_late is not None:
            for child in running:
                on_late(child, how.steps[index - 1][1], sig)
        for child in running:
            child.send_signal(sig)
        deadline = time.monotonic() + wait_s
        for child in running:
            try:
                child.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                continue
    return [child.poll() for child in children]


class Children:
    """The children of one run, by name, started alike.

    Args:
        env: Their environment (None: this process's).
        cwd: Their working directory (None: this process's).
        new_session: Start each in its own session, out of reach of the terminal's Ctrl-C.
        die_with_parent: Each asks Linux for SIGTERM when the starting thread dies.
    """

    def __init__(
        self,
        env: dict[str, str] | None = None,
        cwd: Path | str | None = None,
        new_session: bool = False,
        die_with_parent: bool = True,
    ):
        self.env = env
        self.cwd = cwd
        self.new_session = new_session
        self.die_with_parent = die_with_parent
        self._started: dict[str, Child] = {}

    def start(
        self,
        name: str,
        argv: list[str],
        log: Path,
        *,
        append: bool = False,
        echo_command: bool = False,
        stderr_log: Path | None = None,
    ) -> Child:
        """Start ``argv`` as ``name``, stdout and stderr in ``log``, stdin closed.

        Args:
            name: A name not held by a child still running.
            argv: The command.
            log: Its output file (created, or truncated unless ``append``).
            append: Add to ``log`` instead of truncating it (a resumed run).
            echo_command: Write ``$ <argv>`` as the log's first line.
            stderr_log: Send stderr to this file instead (truncated).

        Raises:
            ValueError: ``name`` is held by a child still running.
        """
        if name in self._started and self._started[name].poll() is None:
            raise ValueError(f"name={name!r} is invalid; allowed values: a name not held by a running child")
        with open(log, "ab" if append else "wb") as out:
            if echo_command:
                out.write(("$ " + " ".join(argv) + "\n").encode())
                out.flush()
            offset = out.tell()
            err = open(stderr_log, "wb") if stderr_log is not None else None  # noqa: SIM115  (closed below)
            try:
                popen = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err if err is not None else subprocess.STDOUT,
                    env=self.env,
                    cwd=self.cwd,
                    start_new_session=self.new_session,
                    preexec_fn=die_with_parent if self.die_with_parent else None,
                )
            finally:
                if err is not None:
                    err.close()
        child = Child(name, popen, Path(log), offset)
        self._started.pop(name, None)
        self._started[name] = child
        return child

    def __getitem__(self, name: str) -> Child:
        return self._started[name]

    def __contains__(self, name: object) -> bool:
        return name in self._started

    def names(self) -> list[str]:
        """The names of the children started, oldest first."""
        return list(self._started)

    def running(self) -> list[Child]:
        """The children still running, oldest first."""
        return [child for child in self._started.values() if child.poll() is None]

    def stop(
        self, names: Sequence[str], how: Escalation, on_late: OnLate | None = None
    ) -> dict[str, int | None]:
        """Stop the named children together (:func:`stop`); their exit statuses by name."""
        codes = stop([self._started[name] for name in names], how, on_late)
        return dict(zip(names, codes, strict=True))

    def stop_all(self, how: Escalation, on_late: OnLate | None = None) -> dict[str, int | None]:
        """Stop every child, newest first, one after the other; their exit statuses by name."""
        return {name: self.stop([name], how, on_late)[name] for name in reversed(list(self._started))}
