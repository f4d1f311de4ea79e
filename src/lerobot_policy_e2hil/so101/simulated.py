"""Simulated SO101 follower and leader: LeRobot's own SO classes over a simulated Feetech bus.

:class:`SO101FollowerSim` *is* LeRobot's ``SOFollower`` and :class:`SO101LeaderHILSim` *is* our
:class:`~.leader.SO101LeaderHIL` (itself LeRobot's ``SOLeader``); only their ``FeetechMotorsBus``
gets a port whose serial line ends in :class:`~.fake_feetech.SimulatedServoChain`, and the
follower's cameras are :class:`SyntheticCamera` objects of the configured size. Connecting,
calibration checks, ``sync_read`` / ``sync_write``, normalisation and ``max_relative_target`` all run
LeRobot's code.

Use them with ``--env.robot.type=so101_follower_sim --env.teleop.type=so101_leader_hil_sim`` to
dry-run any SO101 config without hardware; tests move the leader by hand with
:meth:`SimulatedArmMixin.set_joint_positions`. With ``--env.teleop.script=pick_cube`` and the
follower in MuJoCo, a scripted operator (:mod:`.teacher`) moves the leader and reports the events.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scservo_sdk as scs
from lerobot.cameras.camera import Camera
from lerobot.motors import Motor, MotorCalibration
from lerobot.motors.feetech import FeetechMotorsBus
from lerobot.motors.feetech.feetech import patch_setPacketTimeout
from lerobot.robots.so_follower.so_follower import SOFollower

from ..errors import SetupError
from .config_simulated import SO101FollowerSimConfig, SO101LeaderHILSimConfig
from .fake_feetech import SimulatedServo, SimulatedServoChain
from .leader import SO101LeaderHIL

#: Calibration of the simulated arms: body joints over the full turn (+-180 deg), gripper 0-100.
SIM_RANGES = {
    "shoulder_pan": (0, 4095),
    "shoulder_lift": (0, 4095),
    "elbow_flex": (0, 4095),
    "wrist_flex": (0, 4095),
    "wrist_roll": (0, 4095),
    "gripper": (2000, 3000),
}


def default_sim_calibration(motors: dict[str, Motor]) -> dict[str, MotorCalibration]:
    """Calibration used when the simulated device has no calibration file."""
    return {
        name: MotorCalibration(
            id=m.id,
            drive_mode=0,
            homing_offset=0,
            range_min=SIM_RANGES[name][0],
            range_max=SIM_RANGES[name][1],
        )
        for name, m in motors.items()
    }


class SimulatedPortHandler(scs.PortHandler):
    """The Feetech SDK's port handler with the serial device replaced by simulated servos.

    Args:
        port_name: Name of the (simulated) port.
        chain: The servos at the end of the line.
    """

    def __init__(self, port_name: str, chain: SimulatedServoChain):
        super().__init__(port_name)
        self.chain = chain

    def setupPort(self, cflag_baud):  # noqa: N802  (SDK method name)
        """Attach the simulated line instead of opening ``serial.Serial``."""
        if self.is_open:
            self.closePort()
        self.chain.is_open = True
        self.ser = self.chain
        self.is_open = True
        self.ser.reset_input_buffer()
        self.tx_time_per_byte = (1000.0 / self.baudrate) * 10.0
        return True


class SimulatedFeetechMotorsBus(FeetechMotorsBus):
    """LeRobot's Feetech bus whose port is a :class:`SimulatedPortHandler`.

    Args:
        port: Name of the simulated port.
        motors: Motors as for ``FeetechMotorsBus``.
        calibration: Calibration as for ``FeetechMotorsBus``; also written into the simulated
            servos' EEPROM so the bus finds them calibrated.
    """

    def __init__(self, port: str, motors: dict[str, Motor], calibration: dict[str, MotorCalibration]):
        super().__init__(port, motors, calibration)
        servos = {}
        for name, m in motors.items():
            cal = calibration[name]
            mid = (cal.range_min + cal.range_max) // 2
            start = cal.range_min if name == "gripper" else mid
            servos[m.id] = SimulatedServo(
                m.id, position=start, range_min=cal.range_min, range_max=cal.range_max
            )
        self.chain = SimulatedServoChain(servos)
        self.port_handler = SimulatedPortHandler(port, self.chain)
        self.port_handler.setPacketTimeout = patch_setPacketTimeout.__get__(  # type: ignore[method-assign]
            self.port_handler, scs.PortHandler
        )
        self.sync_reader = scs.GroupSyncRead(self.port_handler, self.packet_handler, 0, 0)
        self.sync_writer = scs.GroupSyncWrite(self.port_handler, self.packet_handler, 0, 0)


class SyntheticCamera(Camera):
    """A camera that renders a frame from the arm's simulated joints (no device).

    Args:
        config: Any camera config with ``width``, ``height`` and ``fps``.
        scene: Callable returning a number in [0, 1] that moves a bright square across the frame.
    """

    def __init__(self, config: Any, scene=None):
        super().__init__(config)
        self._connected = False
        self._scene = scene or (lambda: 0.5)

    @property
    def is_connected(self) -> bool:
        """Whether :meth:`connect` was called."""
        return self._connected

    @staticmethod
    def find_cameras() -> list[dict[str, Any]]:
        """No physical cameras."""
        return []

    def connect(self, warmup: bool = True) -> None:
        """Start 'streaming'."""
        self._connected = True

    def read(self) -> np.ndarray:
        """Render one RGB uint8 frame of shape (height, width, 3)."""
        frame = np.zeros((self.height, self.width, 3), dtype=np.uint8)
        frame[..., 2] = np.linspace(0, 255, self.width, dtype=np.uint8)[None, :]
        side = max(2, min(self.height, self.width) // 4)
        left = int(np.clip(self._scene(), 0.0, 1.0) * (self.width - side))
        top = (self.height - side) // 2
        frame[top : top + side, left : left + side] = 255
        return frame

    def async_read(self, timeout_ms: float = 200) -> np.ndarray:
        """Same as :meth:`read`."""
        return self.read()

    def read_latest(self, max_age_ms: int = 500) -> np.ndarray:
        """Same as :meth:`read`."""
        return self.read()

    def disconnect(self) -> None:
        """Stop 'streaming'."""
        self._connected = False


class SimulatedArmMixin:
    """Hand-moving helpers shared by the simulated follower and leader."""

    bus: SimulatedFeetechMotorsBus

    def set_joint_positions(self, positions: dict[str, float]) -> None:
        """Move joints by hand to normalised positions (degrees; gripper 0-100)."""
        ids = {self.bus.motors[name].id: float(value) for name, value in positions.items()}
        for servo_id, ticks in self.bus._unnormalize(ids).items():
            self.bus.chain.servos[servo_id].set_present_position(ticks)

    def joint_positions(self) -> dict[str, float]:
        """Current normalised positions, read through the bus."""
        return dict(self.bus.sync_read("Present_Position"))


def _simulated_bus(device) -> SimulatedFeetechMotorsBus:
    if not device.calibration:
        device.calibration = default_sim_calibration(device.bus.motors)
    return SimulatedFeetechMotorsBus(device.config.port, dict(device.bus.motors), device.calibration)


class SO101FollowerSim(SimulatedArmMixin, SOFollower):
    """LeRobot's SO101 follower on a simulated bus (``--robot.type=so101_follower_sim``).

    Args:
        config: Same fields as ``so101_follower``.
    """

    config_class = SO101FollowerSimConfig
    name = "so_follower"

    def __init__(self, config: SO101FollowerSimConfig):
        super().__init__(config)
        if config.physics == "mujoco":
            self._use_mujoco(config)
            return
        self.bus = _simulated_bus(self)
        pan = self.bus.chain.servos[self.bus.motors["shoulder_pan"].id]
        self.cameras = {
            name: SyntheticCamera(cam_cfg, scene=lambda s=pan: s.present_position / 4095.0)
            for name, cam_cfg in config.cameras.items()
        }

    def _use_mujoco(self, config: SO101FollowerSimConfig) -> None:
        """Servos and cameras of :mod:`.mujoco_arm` (the physics in :attr:`arm`)."""
        from .mujoco_arm import MujocoArm, MujocoCamera, MujocoServo, MujocoServoChain

        if not self.calibration:
            self.calibration = default_sim_calibration(self.bus.motors)
        motors = dict(self.bus.motors)
        self.bus = SimulatedFeetechMotorsBus(config.port, motors, self.calibration)
        ranges = {name: (cal.range_min, cal.range_max) for name, cal in self.calibration.items()}
        self.arm = MujocoArm(ranges)
        servos = {}
        for name, motor in motors.items():
            old = self.bus.chain.servos[motor.id]
            servos[motor.id] = MujocoServo(
                motor.id, name, self.arm, *ranges[name], position=old.present_position
            )
        self.bus.chain = MujocoServoChain(servos, self.arm)
        self.bus.port_handler.chain = self.bus.chain
        self.cameras = {
            name: MujocoCamera(cam_cfg, self.arm, name) for name, cam_cfg in config.cameras.items()
        }


class SO101LeaderHILSim(SimulatedArmMixin, SO101LeaderHIL):
    """:class:`~.leader.SO101LeaderHIL` on a simulated bus (``--teleop.type=so101_leader_hil_sim``).

    Args:
        config: Same fields as ``so101_leader_hil``.
    """

    config_class = SO101LeaderHILSimConfig

    def __init__(self, config: SO101LeaderHILSimConfig):
        super().__init__(config)
        self.bus = _simulated_bus(self)
        self.teacher = None

    def connect(self, calibrate: bool = True) -> None:
        """Connect like the real leader; with a ``script``, attach it to the MuJoCo follower's scene.

        Raises:
            SetupError: ``script`` is set but no follower with ``physics="mujoco"`` exists in this process.
        """
        super().connect(calibrate=calibrate)
        if self.config.script == "none":
            return
        from .mujoco_arm import live_arm
        from .teacher import PickCubeTeacher

        arm = live_arm()
        if arm is None:
            self.disconnect()
            raise SetupError(
                f"teleop.script={self.config.script!r} needs the simulated follower in MuJoCo in the same "
                "process (--env.robot.type=so101_follower_sim --env.robot.physics=mujoco); allowed values "
                "without it: teleop.script='none'"
            )
        self.teacher = PickCubeTeacher(
            arm, self.config.end_effector_step_sizes, takeover_step=self.config.script_takeover_step
        )

    def get_action(self) -> Any:
        """Let the script move the leader and set the events, then read it like the real leader."""
        if self.teacher is not None:
            command = self.teacher.step()
            if command.joints is not None:
                self.set_joint_positions(command.joints)
            if command.realign:
                # The hand took the leader where the follower is: no motion to report.
                self._ee_reference = None
            self.events.set_intervention(command.intervention)
            if command.success:
                self.events.mark_success()
        return super().get_action()
