"""Learner and actor fault handling: restart and resume, replacement actors, bad transitions, bad setups.

Installed by every learner and actor entry point (``e2hil-learner``/``e2hil-actor`` and the sim's
``python -m lerobot_policy_e2hil.sim.learner/actor``), as hooks on the rows of :mod:`..patches`
(functions of ``lerobot.rl.learner`` and ``lerobot.rl.actor``), at process start:

* :mod:`.checkpoints`: atomic checkpoints that include the replay buffers; resume from the newest
  complete one;
* :mod:`.learner`: resume that restores everything (policy weights included), transition checks,
  run counters across restarts, a gRPC server that frees the threads of dead actors;
* :mod:`.actor`: bounded, logged waits for the learner and streams that reconnect by themselves;
* :mod:`.checks`: one-paragraph errors for mismatching features and a busy port;
* :mod:`.entry`: how an entry point reports a bad setup or a fatal fault and exits.

What survives which fault, and how to resume: ``docs/faults.md``.
"""

from .actor import ACTOR, install_actor_faults
from .checks import check_features
from .entry import SetupError, fatal_message, record_fatal, run_entry
from .learner import LEARNER, install_learner_faults, save_final_checkpoint
from .settings import FaultSettings

__all__ = [
    "ACTOR",
    "LEARNER",
    "FaultSettings",
    "SetupError",
    "check_features",
    "fatal_message",
    "install_actor_faults",
    "install_learner_faults",
    "record_fatal",
    "save_final_checkpoint",
    "run_entry",
]
