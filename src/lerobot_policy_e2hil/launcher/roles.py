"""The sim's learner and actor processes: LeRobot's, with the fault handling and the sim hooks.

``python -m lerobot_policy_e2hil.launcher.learner`` and ``python -m lerobot_policy_e2hil.launcher.actor``
(:mod:`.learner`, :mod:`.actor`) run :func:`role_main` of their role. Both parse the same config
as ``lerobot.rl.learner`` / ``lerobot.rl.actor`` (``--config_path`` and dotted overrides) into
:class:`..train_config.E2HiLTrainConfig`, whose ``faults`` section (``--faults.*``) configures
the fault handling and is saved with each checkpoint, check the policy's
features against the env, and run :func:`.hooks.prepare_process` (one torch thread, the
intervention buffer, stop once the launcher is gone). Then, by role:

* ``learner``: the fault handling of :func:`..learner.hooks.install_learner_faults` (atomic
  checkpoints, resume, transition checks), :func:`.hooks.install_learner_hooks` (metrics file),
  LeRobot's ``train_cli`` and, once its loop has stopped (step budget or Ctrl-C), a final
  checkpoint (:func:`..learner.hooks.save_final_checkpoint`, logged after :data:`.hooks.FINAL_CHECKPOINT`).
  ``--resume=true`` with the run's ``--output_dir`` resumes it.
* ``actor``: registers the sim's gym id with its env options (:func:`..sim.env.register_gym_id`:
  LeRobot's ``make_robot_env`` builds the env by that id), the fault handling of
  :func:`..actor.hooks.install_actor_faults` (bounded waits for the learner, streams that reconnect
  after a learner restart), :func:`.hooks.install_actor_hooks` (no real-time pacing in
  simulation, exit once ``policy.online_steps`` env steps are done) and LeRobot's ``actor_cli``.
"""

# No ``from __future__ import annotations``: LeRobot's ``parser.wrap`` reads the annotation as a type.

import logging
from collections.abc import Callable

from lerobot.configs import parser

from ..actor.hooks import install_actor_faults
from ..faults.entry import fatal_message
from ..learner.hooks import install_learner_faults, save_final_checkpoint
from ..setup_checks import check_features
from ..sim.env import register_gym_id
from ..train_config import E2HiLTrainConfig, run_lerobot_cli
from .hooks import FINAL_CHECKPOINT, install_actor_hooks, install_learner_hooks, prepare_process


def _learner(cfg: E2HiLTrainConfig) -> None:
    from lerobot.rl import learner

    install_learner_faults(cfg, cfg.faults)
    install_learner_hooks(cfg)
    run_lerobot_cli(learner.train_cli, cfg)
    if fatal_message() is None:
        checkpoint = save_final_checkpoint(cfg)
        logging.info(f"{FINAL_CHECKPOINT}{checkpoint}")


def _actor(cfg: E2HiLTrainConfig) -> None:
    from lerobot.rl import actor

    register_gym_id(cfg.env)
    install_actor_faults(cfg, cfg.faults)
    install_actor_hooks(cfg)
    run_lerobot_cli(actor.actor_cli, cfg)


#: What each role runs once the config is parsed and the process prepared
ROLES: dict[str, Callable[[E2HiLTrainConfig], None]] = {
    "learner": _learner,
    "actor": _actor,
}


def role_main(role: str) -> Callable[[], None]:
    """The entry body of the sim ``role`` (``"learner"`` or ``"actor"``) for :func:`..faults.entry.run_entry`.

    Args:
        role: A key of :data:`ROLES`.

    Returns:
        A function that parses ``sys.argv`` and runs the role.
    """
    body = ROLES[role]

    @parser.wrap()
    def run(cfg: E2HiLTrainConfig) -> None:
        check_features(cfg)
        prepare_process(cfg)
        body(cfg)

    return run
