"""The fast operational-space controller computes gym-hil's torques and leaves the dynamics unchanged."""

import numpy as np
import pytest

pytest.importorskip("gym_hil")

from lerobot_policy_e2hil.sim.config import E2HiLSimEnvConfig, TeacherConfig  # noqa: E402
from lerobot_policy_e2hil.sim.env import make_sim_env  # noqa: E402
from lerobot_policy_e2hil.sim.opspace import axis_angle_error, fast_control_env_class  # noqa: E402


def _gym_hil_torque(env):
    from gym_hil.controllers.opspace import opspace

    data = env._data
    return opspace(
        model=env._model,
        data=data,
        site_id=env._pinch_site_id,
        dof_ids=env._panda_dof_ids,
        pos=data.mocap_pos[0],
        ori=data.mocap_quat[0],
        joint=env._home_position,
        gravity_comp=True,
    )


def test_torque_matches_gym_hil_along_random_motion():
    env = fast_control_env_class()(
        seed=0, render_mode="rgb_array", image_obs=False, random_block_position=True
    )
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    try:
        for _ in range(150):
            action = np.concatenate(
                [rng.uniform(-0.03, 0.03, 3), np.zeros(3), [rng.choice([-1.0, 0.0, 1.0])]]
            )
            env.apply_action(action)
            data = env._data
            expected = _gym_hil_torque(env)
            got = env._controller.torque(data, data.mocap_pos[0], data.mocap_quat[0])
            target = data.mocap_quat[0].copy()
            # Also away from the target orientation, where the axis-angle term is not ~0.
            data.mocap_quat[0] = rng.normal(size=4)
            data.mocap_quat[0] /= np.linalg.norm(data.mocap_quat[0])
            rotated = _gym_hil_torque(env)
            got_rotated = env._controller.torque(data, data.mocap_pos[0], data.mocap_quat[0])
            data.mocap_quat[0] = target
            np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(got_rotated, rotated, rtol=1e-9, atol=1e-9)
    finally:
        env.close()


def test_axis_angle_error_of_known_rotations():
    identity = np.array([1.0, 0.0, 0.0, 0.0])
    half_turn_z = np.array([0.0, 0.0, 0.0, 1.0])
    quarter_turn_x = np.array([np.cos(np.pi / 4), np.sin(np.pi / 4), 0.0, 0.0])
    np.testing.assert_allclose(axis_angle_error(identity, identity), np.zeros(3), atol=1e-12)
    np.testing.assert_allclose(axis_angle_error(half_turn_z, identity), [0.0, 0.0, np.pi], atol=1e-12)
    np.testing.assert_allclose(axis_angle_error(quarter_turn_x, identity), [np.pi / 2, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(axis_angle_error(identity, quarter_turn_x), [-np.pi / 2, 0.0, 0.0], atol=1e-12)


def test_teacher_episode_is_the_same_with_either_controller():
    trajectories = []
    for fast in (False, True):
        cfg = E2HiLSimEnvConfig(
            random_block_position=True, fast_controller=fast, teacher=TeacherConfig(mode="always")
        )
        env = make_sim_env(cfg.sim_options(teacher=True))
        np.random.seed(7)
        observations, success = [], False
        try:
            env.reset()
            for _ in range(cfg.max_episode_steps):
                obs, _, terminated, truncated, info = env.step(np.array([0.0, 0.0, 0.0, 1.0]))
                observations.append(np.concatenate([obs["agent_pos"], obs["environment_state"]]))
                if terminated or truncated:
                    success = bool(info["is_success"])
                    break
        finally:
            env.close()
        trajectories.append((np.stack(observations), success))
    (slow_obs, slow_success), (fast_obs, fast_success) = trajectories
    assert slow_success and fast_success
    assert slow_obs.shape == fast_obs.shape
    np.testing.assert_allclose(fast_obs, slow_obs, atol=1e-6)
