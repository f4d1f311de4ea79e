"""LeRobot's actor with the sim hooks: ``python -m lerobot_policy_e2hil.sim.actor --config_path ...``.

Parses the same config as ``lerobot.rl.actor``, installs :func:`.hooks.install_actor_hooks`
(no real-time pacing in simulation, exit once ``policy.online_steps`` env steps are done) and
runs LeRobot's ``actor_cli``.
"""

from lerobot.configs import parser
from lerobot.rl.train_rl import TrainRLServerPipelineConfig

from .hooks import install_actor_hooks, prepare_process


@parser.wrap()
def main(cfg: TrainRLServerPipelineConfig) -> None:
    """Run LeRobot's actor on ``cfg`` with the sim hooks.

    Args:
        cfg: The parsed training config (from ``--config_path`` and dotted overrides).
    """
    from lerobot.rl import actor

    prepare_process(cfg)
    install_actor_hooks(cfg)
    actor.actor_cli(cfg)


if __name__ == "__main__":
    main()
