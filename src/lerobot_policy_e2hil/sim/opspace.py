"""A faster evaluation of gym-hil's operational-space controller for the pick-cube env.

gym-hil's ``FrankaGymEnv.apply_action`` calls its ``opspace`` function once per physics
substep (50 per env step at ``control_dt=0.1``), and that function rebuilds its gains, allocates
about forty small numpy arrays and converts the rotation matrix to a quaternion in Python on
every call: it is about 60% of an actor step in our profile (see docs/benchmarks.md).

:class:`OpSpaceController` computes the same torque for the arguments ``apply_action`` uses
(position and orientation gains 200, damping ratio 1, null-space stiffness 0.5, no acceleration
limits, gravity compensation): the same control law, with gains precomputed, buffers reused,
MuJoCo's ``mju_mat2Quat`` for the quaternion and scalar quaternion algebra. A test checks the
torque against gym-hil's function on states along real episodes.

Control law (Khatib's operational-space formulation, as in gym-hil)::

    ddx   = -kp (x - x_des) - kd J_v dq
    dw    = -kp axisangle(q_ee * conj(q_des)) - kd J_w dq
    M_x   = (J M^-1 J^T)^-1                      (pinv with rcond 1e-2 when |det| < 1e-2)
    tau   = J^T M_x [ddx; dw] + (I - J^T (M^-1 J^T M_x)^T) ddq_null + bias
    ddq_null = -kn (q - q_home) - kdn dq
"""

from __future__ import annotations

import math

import mujoco
import numpy as np

POSITION_GAIN = 200.0
ORIENTATION_GAIN = 200.0
DAMPING_RATIO = 1.0
NULLSPACE_STIFFNESS = 0.5
SINGULAR_DET = 1e-2


def axis_angle_error(quat: np.ndarray, quat_des: np.ndarray) -> np.ndarray:
    """Axis-angle vector of the rotation ``quat * conj(quat_des)`` (both ``[w, x, y, z]``).

    Args:
        quat: Current orientation, already sign-aligned with ``quat_des``.
        quat_des: Target orientation.

    Returns:
        ``angle * axis`` (3,), zero for a degenerate quaternion.
    """
    w1, x1, y1, z1 = (float(v) for v in quat)
    w2, x2, y2, z2 = float(quat_des[0]), -float(quat_des[1]), -float(quat_des[2]), -float(quat_des[3])
    w = w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2
    x = w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2
    y = w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2
    z = w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2
    norm = math.sqrt(w * w + x * x + y * y + z * z)
    if norm < 1e-10:
        return np.zeros(3)
    w, x, y, z = w / norm, x / norm, y / norm, z / norm
    angle = 2.0 * math.acos(min(1.0, max(-1.0, w)))
    sin_half = math.sqrt(max(0.0, 1.0 - w * w))
    scale = angle if sin_half < 1e-10 else angle / sin_half
    return np.array([scale * x, scale * y, scale * z])


class OpSpaceController:
    """Operational-space torques for one arm of one MuJoCo model, with preallocated buffers.

    Args:
        model: The ``mujoco.MjModel``.
        site_id: The end-effector site.
        dof_ids: The arm's joint indices into ``qpos``/``qvel`` (gym-hil's ``_panda_dof_ids``).
        home: The null-space joint target (gym-hil's ``_home_position``).
    """

    def __init__(self, model: mujoco.MjModel, site_id: int, dof_ids: np.ndarray, home: np.ndarray):
        self.model = model
        self.site_id = int(site_id)
        dof_ids = np.asarray(dof_ids, dtype=np.int64)
        n = len(dof_ids)
        contiguous = bool(np.all(np.diff(dof_ids) == 1))
        self.dofs = slice(int(dof_ids[0]), int(dof_ids[-1]) + 1) if contiguous else dof_ids
        self.home = np.asarray(home, dtype=np.float64).copy()
        self.kp = np.array([POSITION_GAIN] * 3 + [ORIENTATION_GAIN] * 3)
        self.kd = DAMPING_RATIO * 2.0 * np.sqrt(self.kp)
        self.kp_null = NULLSPACE_STIFFNESS
        self.kd_null = DAMPING_RATIO * 2.0 * math.sqrt(NULLSPACE_STIFFNESS)
        self._jac = np.zeros((6, model.nv))
        self._mass = np.zeros((model.nv, model.nv))
        self._quat = np.zeros(4)
        self._eye = np.eye(n)

    def torque(self, data: mujoco.MjData, pos: np.ndarray, quat_des: np.ndarray) -> np.ndarray:
        """Joint torques that drive the site to ``pos``/``quat_des`` (gym-hil's ``opspace``).

        Args:
            data: The ``mujoco.MjData`` (read only).
            pos: Target site position (3,).
            quat_des: Target orientation ``[w, x, y, z]``.

        Returns:
            Torques for the arm's joints.
        """
        dofs = self.dofs
        q = data.qpos[dofs]
        dq = data.qvel[dofs]
        mujoco.mj_jacSite(self.model, data, self._jac[:3], self._jac[3:], self.site_id)
        jac = self._jac[:, dofs]
        mujoco.mju_mat2Quat(self._quat, data.site_xmat[self.site_id])
        quat = self._quat if self._quat @ quat_des >= 0.0 else -self._quat
        error = np.empty(6)
        error[:3] = data.site_xpos[self.site_id] - pos
        error[3:] = axis_angle_error(quat, quat_des)
        accel = -self.kp * error - self.kd * (jac @ dq)

        mujoco.mj_fullM(self.model, self._mass, data.qM)
        mass_inv = np.linalg.inv(
            self._mass[dofs, dofs] if isinstance(dofs, slice) else self._mass[np.ix_(dofs, dofs)]
        )
        task_mass_inv = jac @ mass_inv @ jac.T
        if abs(np.linalg.det(task_mass_inv)) >= SINGULAR_DET:
            task_mass = np.linalg.inv(task_mass_inv)
        else:
            task_mass = np.linalg.pinv(task_mass_inv, rcond=SINGULAR_DET)
        jac_t_mass = jac.T @ task_mass
        null_accel = -self.kp_null * (q - self.home) - self.kd_null * dq
        null_projector = self._eye - jac_t_mass @ (jac @ mass_inv)
        return jac_t_mass @ accel + null_projector @ null_accel + data.qfrc_bias[dofs]


def fast_control_env_class() -> type:
    """gym-hil's ``PandaPickCubeGymEnv`` with ``apply_action`` driven by :class:`OpSpaceController`.

    Built on first use so that importing this module does not import gym-hil.
    """
    global _FAST_ENV_CLASS
    if _FAST_ENV_CLASS is None:
        from gym_hil.envs.panda_pick_gym_env import PandaPickCubeGymEnv
        from gym_hil.mujoco_gym_env import MAX_GRIPPER_COMMAND

        class PandaPickCubeFastControl(PandaPickCubeGymEnv):
            """The pick-cube env; identical dynamics, cheaper controller evaluation."""

            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self._controller = OpSpaceController(
                    self._model, self._pinch_site_id, self._panda_dof_ids, self._home_position
                )

            def apply_action(self, action):
                dx, dy, dz, _, _, _, grasp = action
                data = self._data
                data.mocap_pos[0] = np.clip(
                    data.mocap_pos[0] + np.array([dx, dy, dz]), *self._cartesian_bounds
                )
                opening = data.ctrl[self._gripper_ctrl_id] / MAX_GRIPPER_COMMAND
                data.ctrl[self._gripper_ctrl_id] = np.clip(opening + grasp, 0.0, 1.0) * MAX_GRIPPER_COMMAND
                pos, quat = data.mocap_pos[0], data.mocap_quat[0]
                for _ in range(self._n_substeps):
                    data.ctrl[self._panda_ctrl_ids] = self._controller.torque(data, pos, quat)
                    mujoco.mj_step(self._model, data)

        _FAST_ENV_CLASS = PandaPickCubeFastControl
    return _FAST_ENV_CLASS


_FAST_ENV_CLASS: type | None = None
