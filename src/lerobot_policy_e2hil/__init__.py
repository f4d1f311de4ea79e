"""E2HiL: entropy-guided sample selection for LeRobot's HIL-SERL.

Importing this package registers, with LeRobot's registries:

* the ``"e2hil"`` RL algorithm config and its algorithm class (see :mod:`.lerobot_layer.registry`), and
  ``"sac_fast"``, LeRobot's SAC with the same-result fast update (:mod:`.algorithm.sac_fast`);
* the headless gym_hil simulation env config and scripted teacher (:mod:`.sim`);
* the SO101 leader teleoperator with HIL-SERL events (:mod:`.so101`);
* small fixes for LeRobot 0.6.1 bugs that stop or slow these workflows (:mod:`.lerobot_layer.fixes`);
* a headless OpenGL default for MuJoCo on a machine without a display (:mod:`.headless`);
* the rows of the patch table for a plain import (:mod:`.lerobot_layer.patches`, role ``"import"``), which the
  algorithm lookup and the fixes hook into;
* every LeRobot camera, robot and teleoperator type (``opencv``, ``so101_follower``, ...), so any
  entry point that imports this package parses them (:func:`.lerobot_layer.registry.register_device_choices`).

LeRobot's own CLIs (lerobot-eval, lerobot-record, lerobot-teleoperate, ...) import it by
themselves because the distribution name starts with ``lerobot_policy_``.
"""

from .headless import default_mujoco_gl

default_mujoco_gl()  # before any module imports MuJoCo

from .algorithm.configuration_e2hil import E2HiLAlgorithmConfig  # noqa: E402
from .algorithm.e2hil_algorithm import E2HiLAlgorithm  # noqa: E402
from .algorithm.sac_fast import SACFastAlgorithm, SACFastAlgorithmConfig  # noqa: E402
from .lerobot_layer.fixes import install_all as _install_lerobot_fixes  # noqa: E402
from .lerobot_layer.registry import install_algorithm_lookup, register_algorithm, register_device_choices  # noqa: E402

install_algorithm_lookup()
register_device_choices()
_install_lerobot_fixes()

from . import sim as sim  # noqa: E402  (registers env configs once the lookup is in place)
from . import so101 as so101  # noqa: E402

__all__ = [
    "E2HiLAlgorithm",
    "E2HiLAlgorithmConfig",
    "SACFastAlgorithm",
    "SACFastAlgorithmConfig",
    "install_algorithm_lookup",
    "register_algorithm",
    "register_device_choices",
]

__version__ = "0.1.0"
