"""The config the learner and actor entry points parse: LeRobot's, plus the ``faults`` section.

:class:`E2HiLTrainConfig` is LeRobot's ``TrainRLServerPipelineConfig`` with one more field,
``faults`` (:class:`~.faults.settings.FaultSettings`: timeouts, limits, TLS files, where the token
is read from, the actor id). draccus parses it from the JSON file (``"faults": {...}``) and from
``--faults.<field>=<value>`` flags, and every checkpoint's ``train_config.json`` holds it, so a
resume with ``--config_path=<checkpoint>/pretrained_model/train_config.json --resume=true`` runs
with the saved values. The token itself is never a field (only the file or variable holding it).

LeRobot's learner reads the checkpoint's config on resume with its own class, which rejects the
section; two hooks on rows of :mod:`.patches` (layer ``config``) read it with this class instead
and keep in the resumed config the section the process runs with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lerobot.rl.train_rl import TrainRLServerPipelineConfig

from .faults.settings import FaultSettings
from .lerobot_layer import patches

_LEARNER = "lerobot.rl.learner"


@dataclass(kw_only=True)
class E2HiLTrainConfig(TrainRLServerPipelineConfig):
    """LeRobot's RL train config with the runtime's fault and security settings (saved with each checkpoint)."""

    # Timeouts, limits, TLS files, token source and actor id of the learner and actor (docs/faults.md)
    faults: FaultSettings = field(default_factory=FaultSettings)


def run_lerobot_cli(function: Any, cfg: E2HiLTrainConfig) -> Any:
    """Call LeRobot's ``train_cli`` / ``actor_cli`` with an already parsed ``cfg``.

    Their ``parser.wrap`` takes a config argument only when its type is exactly LeRobot's class,
    and otherwise parses ``sys.argv`` again with that class, which knows no ``faults``; the
    function it wraps is LeRobot's body, run here as is.

    Args:
        function: ``lerobot.rl.learner.train_cli`` or ``lerobot.rl.actor.actor_cli``.
        cfg: The parsed config.
    """
    return function.__wrapped__(cfg)


def install_config_hooks() -> None:
    """Make a resuming learner read the checkpoint's config as :class:`E2HiLTrainConfig`.

    Hooks ``lerobot.rl.learner.TrainRLServerPipelineConfig.from_pretrained`` (LeRobot's class
    method, run on this subclass) and ``handle_resume_logic`` (the resumed config keeps the
    ``faults`` section this process was started with, so the next checkpoint saves what ran).
    """
    patches.hook(f"{_LEARNER}.TrainRLServerPipelineConfig.from_pretrained", "config", _read_as_ours)
    patches.hook(f"{_LEARNER}.handle_resume_logic", "config", _keep_running_faults)


def _read_as_ours(call: patches.Call) -> Any:
    arguments = call.arguments
    extra = arguments.pop("kwargs", {})
    return E2HiLTrainConfig.from_pretrained(**arguments, **extra)


def _keep_running_faults(call: patches.Call) -> Any:
    final = call.proceed()
    running = getattr(call.arguments["cfg"], "faults", None)
    if running is not None and isinstance(final, E2HiLTrainConfig):
        final.faults = running
    return final
