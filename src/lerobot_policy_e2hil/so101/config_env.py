"""Checked SO101 real-robot env config (``"env": {"type": "so101_hil", ...}``).

It is LeRobot's ``gym_manipulator`` env config (:class:`~lerobot.envs.configs.HILSerlRobotEnvConfig`,
same fields, same ``make_robot_env`` / ``make_processors``), plus checks that run while the config
is parsed, before any port is opened or any motor moves: ports present and distinct, a teleoperator
that emits HIL-SERL events, crop regions that name configured cameras and fit in their frames,
end-effector bounds and reset pose inside the SO101's reach, and a teleop action space that
matches the env's (joint positions, or end-effector deltas through ``inverse_kinematics``).
A config without a robot still builds (the learner uses none); the actor, the recorder and the
evaluation then stop with one line (:meth:`SO101HILEnvConfig.require_robot`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lerobot.envs.configs import EnvConfig, HILSerlProcessorConfig, HILSerlRobotEnvConfig, ResetConfig
from lerobot.utils.constants import OBS_IMAGES

from ..errors import ConfigError
from .urdf import resolve_urdf_path

#: Joint order of the SO101 arms (LeRobot's SOFollower / SOLeader buses).
SO101_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
#: Teleoperator types that provide ``get_teleop_events()`` and can drive HIL-SERL interventions.
EVENT_TELEOPS = ("so101_leader_hil", "so101_leader_hil_sim", "gamepad", "keyboard_ee")
#: Cartesian box (metres, robot base frame) the SO101 end effector can reach.
SO101_REACH = {"x": (-0.5, 0.5), "y": (-0.5, 0.5), "z": (-0.1, 0.6)}


def _fail(field: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{field}={value!r} is invalid; allowed values: {allowed}")


def validate_so101_env(cfg: HILSerlRobotEnvConfig, prefix: str = "env") -> None:
    """Check an SO101 ``gym_manipulator`` env config without touching hardware.

    Args:
        cfg: The env config (``robot`` and ``teleop`` set).
        prefix: Dotted path of ``cfg`` in the top-level config, for messages.

    Raises:
        ValueError: Naming the offending field and the values it accepts.
    """
    if cfg.fps is None or cfg.fps <= 0:
        _fail(f"{prefix}.fps", cfg.fps, "a positive control rate in Hz (the paper's setup: 10)")
    robot, teleop = cfg.robot, cfg.teleop
    if robot is None:
        _fail(f"{prefix}.robot", None, "a follower config, e.g. {'type': 'so101_follower', 'port': ...}")
    if teleop is None:
        _fail(
            f"{prefix}.teleop", None, "a teleoperator with HIL-SERL events, e.g. {'type': 'so101_leader_hil'}"
        )
    robot_port = getattr(robot, "port", None)
    if not isinstance(robot_port, str) or not robot_port.strip():
        _fail(f"{prefix}.robot.port", robot_port, "the follower's serial port, e.g. /dev/ttyACM0")
    if teleop.type not in EVENT_TELEOPS:
        _fail(
            f"{prefix}.teleop.type",
            teleop.type,
            f"{EVENT_TELEOPS} (LeRobot's so101_leader has no intervention events: use so101_leader_hil)",
        )
    teleop_port = getattr(teleop, "port", None)
    if teleop_port is not None and teleop_port == robot_port:
        _fail(f"{prefix}.teleop.port", teleop_port, f"a port different from {prefix}.robot.port")
    if teleop.type == "so101_leader_hil" and teleop_port is None:
        _fail(
            f"{prefix}.teleop.port", None, "the leader's serial port, e.g. /dev/ttyACM1 (lerobot-find-port)"
        )

    processor = cfg.processor
    cameras = dict(getattr(robot, "cameras", {}) or {})
    image_cfg = processor.image_preprocessing
    if image_cfg is not None and image_cfg.crop_params_dict:
        known = [f"{OBS_IMAGES}.{name}" for name in cameras]
        for key, crop in image_cfg.crop_params_dict.items():
            field = f"{prefix}.processor.image_preprocessing.crop_params_dict"
            if key not in known:
                _fail(f"{field} key", key, f"one per configured camera: {known}")
            if len(crop) != 4 or any(int(v) != v or v < 0 for v in crop) or crop[2] <= 0 or crop[3] <= 0:
                _fail(f"{field}[{key!r}]", list(crop), "[top, left, height, width], non-negative integers")
            cam = cameras[key.removeprefix(f"{OBS_IMAGES}.")]
            top, left, height, width = crop
            if cam.height is not None and top + height > cam.height:
                _fail(f"{field}[{key!r}]", list(crop), f"top + height <= the camera's height {cam.height}")
            if cam.width is not None and left + width > cam.width:
                _fail(f"{field}[{key!r}]", list(crop), f"left + width <= the camera's width {cam.width}")
    if image_cfg is not None and image_cfg.resize_size is not None:
        size = image_cfg.resize_size
        if len(size) != 2 or any(int(v) != v or v <= 0 for v in size):
            _fail(f"{prefix}.processor.image_preprocessing.resize_size", size, "[height, width], positive")

    reset = processor.reset
    if reset is not None:
        if reset.control_time_s <= 0:
            _fail(f"{prefix}.processor.reset.control_time_s", reset.control_time_s, "> 0 seconds")
        pose = reset.fixed_reset_joint_positions
        if pose is not None:
            field = f"{prefix}.processor.reset.fixed_reset_joint_positions"
            if len(pose) != len(SO101_JOINTS):
                _fail(field, pose, f"{len(SO101_JOINTS)} values, one per joint {SO101_JOINTS}")
            for joint, value in zip(SO101_JOINTS, pose, strict=True):
                low, high = (0.0, 100.0) if joint == "gripper" else (-180.0, 180.0)
                if not low <= float(value) <= high:
                    _fail(
                        f"{field} ({joint})",
                        value,
                        f"[{low}, {high}] ({'0-100' if joint == 'gripper' else 'degrees'})",
                    )

    ik = processor.inverse_kinematics
    control_space = getattr(teleop, "control_space", None)
    if ik is not None:
        field = f"{prefix}.processor.inverse_kinematics"
        if not ik.urdf_path:
            _fail(f"{field}.urdf_path", ik.urdf_path, "the path of the SO101 URDF")
        bounds = ik.end_effector_bounds
        if bounds is None or set(bounds) != {"min", "max"}:
            _fail(f"{field}.end_effector_bounds", bounds, "{'min': [x, y, z], 'max': [x, y, z]} in metres")
        if len(bounds["min"]) != 3 or len(bounds["max"]) != 3:
            _fail(f"{field}.end_effector_bounds", bounds, "3 values (x, y, z) in each of min and max")
        for axis, lo, hi in zip("xyz", bounds["min"], bounds["max"], strict=True):
            reach_lo, reach_hi = SO101_REACH[axis]
            if not lo < hi:
                _fail(f"{field}.end_effector_bounds ({axis})", [lo, hi], "min < max")
            if lo < reach_lo or hi > reach_hi:
                _fail(
                    f"{field}.end_effector_bounds ({axis})",
                    [lo, hi],
                    f"inside the SO101's reach [{reach_lo}, {reach_hi}] m",
                )
        steps = ik.end_effector_step_sizes
        if (
            steps is None
            or set(steps) != {"x", "y", "z"}
            or not all(0 < float(v) <= 0.1 for v in steps.values())
        ):
            _fail(
                f"{field}.end_effector_step_sizes", steps, "{'x', 'y', 'z'} each in (0, 0.1] metres per step"
            )
        if control_space == "joint":
            _fail(
                f"{prefix}.teleop.control_space",
                control_space,
                f"'ee' when {field} is set (the env then takes end-effector deltas)",
            )
        teleop_steps = getattr(teleop, "end_effector_step_sizes", None)
        if control_space == "ee" and teleop_steps is not None and dict(teleop_steps) != dict(steps):
            _fail(
                f"{prefix}.teleop.end_effector_step_sizes",
                teleop_steps,
                f"equal to {field}.end_effector_step_sizes",
            )
    elif control_space == "ee":
        _fail(
            f"{prefix}.teleop.control_space",
            control_space,
            f"'joint' unless {prefix}.processor.inverse_kinematics is set",
        )


@dataclass
class SO101ResetConfig(ResetConfig):
    """LeRobot's ``ResetConfig`` with the reset pose typed ``list[float]``.

    LeRobot 0.6.1 declares ``fixed_reset_joint_positions: Any | None``, which draccus can parse but
    not encode: the learner's ``save_checkpoint`` (``train_config.json``) then fails with
    ``TypeError: typing.Any cannot be used with isinstance()`` as soon as a reset pose is set
    (fixed upstream in huggingface/lerobot PR 4545). Same field, same meaning, encodable type.
    """

    fixed_reset_joint_positions: list[float] | None = None


@dataclass
class SO101ProcessorConfig(HILSerlProcessorConfig):
    """LeRobot's ``HILSerlProcessorConfig`` whose ``reset`` block is a :class:`SO101ResetConfig`."""

    reset: SO101ResetConfig | None = None


@EnvConfig.register_subclass("so101_hil")
@dataclass
class SO101HILEnvConfig(HILSerlRobotEnvConfig):
    """LeRobot's real-robot HIL-SERL env, checked for the SO101 follower + leader setup at parse time.

    Its ``processor`` block is a :class:`SO101ProcessorConfig` (same fields as LeRobot's) so that a
    config with a reset pose can be written back to JSON by the learner's checkpointing.
    """

    processor: SO101ProcessorConfig = field(default_factory=SO101ProcessorConfig)

    def __post_init__(self) -> None:
        parent_post_init = getattr(super(), "__post_init__", None)
        if parent_post_init is not None:
            parent_post_init()
        if self.processor.inverse_kinematics is not None:
            ik = self.processor.inverse_kinematics
            ik.urdf_path = resolve_urdf_path(ik.urdf_path)
        # Without a robot the config still builds (LeRobot builds every registered type from its
        # defaults; the learner uses no robot): require_robot reports it where the robot is used.
        if self.robot is not None:
            validate_so101_env(self)

    def require_robot(self) -> None:
        """Check the config where the robot is used (actor, record, evaluation); one line when it is missing.

        Raises:
            ConfigError: ``env.robot`` is not set, or a check of :func:`validate_so101_env` fails.
        """
        validate_so101_env(self)
