"""LeRobot's actor with the sim hooks: ``python -m lerobot_policy_e2hil.sim.actor --config_path ...``.

Parses the same config as ``lerobot.rl.actor``, registers the sim's gym id with its env options
(:func:`.env.register_gym_id`: LeRobot's ``make_robot_env`` builds the env by that id), installs
the fault handling of :mod:`..faults` (bounded waits for the learner, streams that reconnect
after a learner restart; ``--faults.*`` flags) and :func:`.hooks.install_actor_hooks` (no
real-time pacing in simulation, exit once ``policy.online_steps`` env steps are done), and runs
LeRobot's ``actor_cli``.
"""

from lerobot.configs import parser
from lerobot.rl.train_rl import TrainRLServerPipelineConfig

from .. import faults
from ..faults import FaultSettings
from .env import register_gym_id
from .hooks import install_actor_hooks, prepare_process

_SETTINGS: list[FaultSettings] = [FaultSettings()]


@parser.wrap()
def main(cfg: TrainRLServerPipelineConfig) -> None:
    """Run LeRobot's actor on ``cfg`` with fault handling and the sim hooks.

    Args:
        cfg: The parsed training config (from ``--config_path`` and dotted overrides).
    """
    from lerobot.rl import actor

    faults.check_features(cfg)
    register_gym_id(cfg.env)
    prepare_process(cfg)
    faults.install_actor_faults(cfg, _SETTINGS[0])
    install_actor_hooks(cfg)
    actor.actor_cli(cfg)


def _main(settings: FaultSettings) -> None:
    _SETTINGS[0] = settings
    main()


if __name__ == "__main__":
    faults.run_entry(_main)
