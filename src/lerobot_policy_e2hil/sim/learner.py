"""LeRobot's learner with the sim hooks: ``python -m lerobot_policy_e2hil.sim.learner --config_path ...``.

Parses the same config as ``lerobot.rl.learner``, installs the fault handling of
:mod:`..faults` (atomic checkpoints, resume, transition checks; ``--faults.*`` flags) and
:func:`.hooks.install_learner_hooks` (metrics file), runs LeRobot's ``train_cli`` and, once its
loop has stopped (step budget or Ctrl-C), writes a final checkpoint with
:func:`..faults.save_final_checkpoint`. ``--resume=true`` with the run's ``--output_dir`` resumes it.
"""

import logging

from lerobot.configs import parser
from lerobot.rl.train_rl import TrainRLServerPipelineConfig

from .. import faults
from ..faults import FaultSettings
from .hooks import FINAL_CHECKPOINT, install_learner_hooks, prepare_process

_SETTINGS: list[FaultSettings] = [FaultSettings()]


@parser.wrap()
def main(cfg: TrainRLServerPipelineConfig) -> None:
    """Run LeRobot's learner on ``cfg`` with fault handling, metrics recording and a final checkpoint.

    Args:
        cfg: The parsed training config (from ``--config_path`` and dotted overrides).
    """
    from lerobot.rl import learner

    faults.check_features(cfg)
    prepare_process(cfg)
    faults.install_learner_faults(cfg, _SETTINGS[0])
    install_learner_hooks(cfg)
    learner.train_cli(cfg)
    if faults.fatal_message() is None:
        checkpoint = faults.save_final_checkpoint(cfg)
        logging.info(f"{FINAL_CHECKPOINT}{checkpoint}")


def _main(settings: FaultSettings) -> None:
    _SETTINGS[0] = settings
    main()


if __name__ == "__main__":
    faults.run_entry(_main)
