"""LeRobot's learner with the sim hooks: ``python -m lerobot_policy_e2hil.sim.learner --config_path ...``.

Parses the same config as ``lerobot.rl.learner``, installs :func:`.hooks.install_learner_hooks`
(metrics file), runs LeRobot's ``train_cli`` and, once its loop has stopped (step budget or
Ctrl-C), writes a final checkpoint with :func:`.hooks.save_final_checkpoint`.
"""

import logging

from lerobot.configs import parser
from lerobot.rl.train_rl import TrainRLServerPipelineConfig

from .hooks import install_learner_hooks, prepare_process, save_final_checkpoint


@parser.wrap()
def main(cfg: TrainRLServerPipelineConfig) -> None:
    """Run LeRobot's learner on ``cfg`` with metrics recording and a final checkpoint.

    Args:
        cfg: The parsed training config (from ``--config_path`` and dotted overrides).
    """
    from lerobot.rl import learner

    prepare_process(cfg)
    install_learner_hooks(cfg)
    learner.train_cli(cfg)
    checkpoint = save_final_checkpoint(cfg)
    logging.info(f"[LEARNER] final checkpoint: {checkpoint}")


if __name__ == "__main__":
    main()
