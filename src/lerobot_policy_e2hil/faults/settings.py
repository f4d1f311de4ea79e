"""Bounded waits and limits of the fault handling, set with ``--faults.<field>=<value>`` flags.

The flags are not part of LeRobot's ``TrainRLServerPipelineConfig`` (the checkpoints keep
LeRobot's config format), so every entry point removes them from the command line with
:func:`split_fault_args` before LeRobot parses the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import draccus

from ..errors import ConfigError

FLAG_PREFIX = "--faults."


@dataclass
class FaultSettings:
    """Fault-handling settings shared by the learner and the actor entry points."""

    # Actor: give up after this many seconds without reaching the learner (at start and after a loss)
    connect_timeout_s: float = 300.0
    # Actor: deadline of one Ready() call to the learner (LeRobot 0.6.1 has none, issue 3979)
    ready_timeout_s: float = 5.0
    # Actor: pause between two connection attempts; also caps gRPC's reconnect back-off
    retry_interval_s: float = 2.0
    # Learner: gRPC server threads; one actor holds 3 streams, LeRobot 0.6.1 has exactly 3
    grpc_workers: int = 16
    # Learner: at most one warning about rejected transitions per this many seconds
    warn_interval_s: float = 10.0
    # Learner: the newest N complete checkpoints keep their replay buffers (older ones keep the model)
    keep_buffers: int = 2

    def __post_init__(self) -> None:
        for name in ("connect_timeout_s", "ready_timeout_s", "retry_interval_s", "warn_interval_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"faults.{name}={getattr(self, name)!r} is invalid; allowed values: > 0")
        for name in ("grpc_workers", "keep_buffers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"faults.{name}={getattr(self, name)!r} is invalid; allowed values: >= 1")


def split_fault_args(args: list[str]) -> tuple[FaultSettings, list[str]]:
    """Separate the ``--faults.*`` flags from the rest of a command line.

    Args:
        args: Command-line arguments without the program name.

    Returns:
        The parsed settings and the remaining arguments, in their order.
    """
    ours, rest = [], []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith(FLAG_PREFIX):
            if "=" not in arg and i + 1 < len(args):
                arg = f"{arg}={args[i + 1]}"
                i += 1
            ours.append("--" + arg[len(FLAG_PREFIX) :])
        else:
            rest.append(arg)
        i += 1
    return draccus.parse(FaultSettings, args=ours), rest
