"""SO101 leader/follower HIL-SERL workflow.

Importing this package only registers config classes with LeRobot (no hardware library is
imported; device classes load when LeRobot instantiates them):

* ``--teleop.type=so101_leader_hil``: the SO101 leader as intervention device, with HIL-SERL
  events (:mod:`.config_leader`, device in :mod:`.leader`);
* ``"env": {"type": "so101_hil"}``: LeRobot's real-robot HIL-SERL env, validated at parse time
  (:mod:`.config_env`);
* ``so101_follower_sim`` / ``so101_leader_hil_sim``: the same devices over a simulated Feetech bus
  for dry runs and tests (:mod:`.config_simulated`, devices in :mod:`.simulated`).
"""

from .config_env import SO101HILEnvConfig, validate_so101_env
from .config_leader import SO101LeaderHILConfig
from .config_simulated import SO101FollowerSimConfig, SO101LeaderHILSimConfig

__all__ = [
    "SO101FollowerSimConfig",
    "SO101HILEnvConfig",
    "SO101LeaderHILConfig",
    "SO101LeaderHILSimConfig",
    "validate_so101_env",
]
