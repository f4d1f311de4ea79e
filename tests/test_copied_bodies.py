"""Each place that repeats a LeRobot or gym-hil body computes what the installed original computes.

* ``e2hil_algorithm.action_distribution`` repeats ``Policy.forward`` up to the distribution (the
  actor loss needs the distribution, which ``Policy.forward`` does not return): the same actions,
  log-probabilities and means, bit for bit, from LeRobot's own call on random inputs.
* ``E2HiLAlgorithm._frozen_min_q`` repeats ``CriticEnsemble.forward`` after the encoder (with
  detached head parameters): the same min-Q and the same gradient in the actions, bit for bit.
* ``sim.opspace``'s ``apply_action`` repeats gym-hil's with a cheaper controller evaluation: from
  the same MuJoCo data, the same state after each random action to 1e-9 (measured: 1e-12 in
  velocity). Not bit for bit: the quaternion comes from MuJoCo's ``mju_mat2Quat`` and the gains
  are folded in another order, so the torques differ in the last bits (tests/test_sim_opspace.py
  compares them to 1e-9 and a whole teacher episode to 1e-6).

E2HiL's online/offline batches are not a copy: LeRobot's ``OnlineOfflineMixer.get_iterator`` runs
over flagging views of the buffers; the last test checks that its batches are LeRobot's.
"""

from __future__ import annotations

import pytest
import torch
from lerobot.rl.buffer import ReplayBuffer
from lerobot.rl.data_sources import OnlineOfflineMixer

from lerobot_policy_e2hil.algorithm.e2hil_algorithm import action_distribution, reparameterised_sample
from lerobot_policy_e2hil.synthetic import make_policy, make_rl_algorithm, random_batch

SMALL = {"hidden_dim": 64, "latent_dim": 32}


def _assert_equal(got: torch.Tensor, expected: torch.Tensor, name: str) -> None:
    torch.testing.assert_close(got, expected, rtol=0, atol=0, msg=name)


def _perturbed_actor(seed: int, std_shift: float, fixed_std: float | None):
    """A state-only actor with random weights; ``std_shift`` pushes log-std past the clamp bounds."""
    torch.manual_seed(seed)
    policy = make_policy(**SMALL, num_discrete_actions=3 if seed % 2 else None)
    actor = policy.actor
    with torch.no_grad():
        for parameter in actor.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.3)
        if fixed_std is None:
            actor.std_layer.bias.add_(std_shift)
    if fixed_std is not None:
        actor.fixed_std = torch.full((actor.action_dim,), fixed_std)
    return policy, actor


@pytest.mark.parametrize(
    ("seed", "std_shift", "fixed_std"),
    [(0, 0.0, None), (1, 3.0, None), (2, -8.0, None), (3, 0.0, 0.3)],
    ids=["std-in-range", "std-above-max", "std-tiny", "fixed-std"],
)
def test_action_distribution_is_lerobots_policy_forward(seed, std_shift, fixed_std):
    policy, actor = _perturbed_actor(seed, std_shift, fixed_std)
    observations = random_batch(policy, 64, generator=torch.Generator().manual_seed(seed))["state"]
    torch.manual_seed(10 + seed)
    actions, log_probs, means = actor(observations)
    for params in (None, dict(actor.named_parameters())):
        torch.manual_seed(10 + seed)
        encoding = actor.encoder(observations, detach=actor.encoder_is_shared)
        distribution = action_distribution(actor, encoding, params)
        _, ours = reparameterised_sample(distribution)
        _assert_equal(ours, actions, "actions")
        _assert_equal(distribution.log_prob(ours), log_probs, "log_probs")
        _assert_equal(distribution.base_dist.loc, means, "means")


@pytest.mark.parametrize("policy_kwargs", [{}, {"num_discrete_actions": 3}], ids=["state", "gripper"])
def test_frozen_min_q_is_lerobots_critic_ensemble_forward(policy_kwargs):
    torch.manual_seed(0)
    algorithm = make_rl_algorithm("e2hil", make_policy(**SMALL, **policy_kwargs), num_critics=3)
    with torch.no_grad():
        for parameter in algorithm.critic_ensemble.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.3)
    generator = torch.Generator().manual_seed(1)
    observations = random_batch(algorithm.policy, 48, generator=generator)["state"]
    actions = (torch.rand(48, 3, generator=generator) * 2 - 1).requires_grad_(True)
    ours_actions = actions.detach().clone().requires_grad_(True)

    expected = algorithm.critic_ensemble(observations, actions).min(dim=0)[0]
    with torch.no_grad():
        encoding = algorithm.critic_ensemble.encoder(observations)
    got = algorithm._frozen_min_q(encoding, ours_actions)
    _assert_equal(got, expected, "min_q")
    (expected_grad,) = torch.autograd.grad(expected.sum(), actions)
    (got_grad,) = torch.autograd.grad(got.sum(), ours_actions)
    _assert_equal(got_grad, expected_grad, "dQ/da")
    assert all(p.grad is None for p in algorithm.critic_ensemble.parameters())


def _buffer(policy, size: int, seed: int) -> ReplayBuffer:
    buffer = ReplayBuffer(capacity=size, device="cpu", state_keys=list(policy.config.input_features))
    batch = random_batch(policy, size, generator=torch.Generator().manual_seed(seed))
    for i in range(size):
        buffer.add(
            state={k: v[i : i + 1] for k, v in batch["state"].items()},
            action=batch["action"][i : i + 1],
            reward=float(batch["reward"][i]),
            next_state={k: v[i : i + 1] for k, v in batch["next_state"].items()},
            done=bool(i % 7 == 6),
            truncated=False,
        )
    return buffer


def test_e2hil_batches_are_lerobots_mixer_batches_with_flags():
    torch.manual_seed(0)
    policy = make_policy(**SMALL)
    algorithm = make_rl_algorithm("e2hil", policy)
    mixer = OnlineOfflineMixer(_buffer(policy, 40, 1), _buffer(policy, 30, 2), online_ratio=0.75)
    torch.manual_seed(3)
    lerobot = mixer.get_iterator(batch_size=16, async_prefetch=False)
    expected = [next(lerobot) for _ in range(3)]
    torch.manual_seed(3)
    ours = algorithm.configure_data_iterator(mixer, 16, async_prefetch=False)
    got = [next(ours) for _ in range(3)]
    for want, have in zip(expected, got, strict=True):
        assert have["complementary_info"]["is_intervention"].tolist() == [False] * 12 + [True] * 4
        for key in ("action", "reward", "done", "truncated"):
            _assert_equal(have[key], want[key], key)
        for part in ("state", "next_state"):
            for key, value in want[part].items():
                _assert_equal(have[part][key], value, f"{part}.{key}")


def test_fast_apply_action_is_gym_hils_apply_action():
    pytest.importorskip("gym_hil")
    import mujoco
    import numpy as np
    from gym_hil.envs.panda_pick_gym_env import PandaPickCubeGymEnv
    from gym_hil.mujoco_gym_env import MAX_GRIPPER_COMMAND

    from lerobot_policy_e2hil.sim.opspace import fast_control_env_class

    env = fast_control_env_class()(
        seed=0, render_mode="rgb_array", image_obs=False, random_block_position=True
    )
    env.reset(seed=0)
    model, data = env._model, env._data
    saved = mujoco.MjData(model)
    rng = np.random.default_rng(0)
    try:
        for _ in range(60):
            # Up, a random rotation (both ignore it) and a gripper that never closes fully: closed
            # fingers touch, and a contact's onset turns last-bit differences into large ones.
            action = np.concatenate(
                [
                    rng.uniform(-0.03, 0.03, 2),
                    rng.uniform(0.0, 0.03, 1),
                    rng.uniform(-1, 1, 3),
                    [rng.uniform(-0.3, 0.3)],
                ]
            )
            data.ctrl[env._gripper_ctrl_id] = rng.uniform(0.0, 0.5) * MAX_GRIPPER_COMMAND
            mujoco.mj_copyData(saved, model, data)  # the controller reads derived quantities too
            PandaPickCubeGymEnv.apply_action(env, action)
            expected = {name: getattr(data, name).copy() for name in ("qpos", "qvel", "ctrl", "mocap_pos")}
            mujoco.mj_copyData(data, model, saved)
            env.apply_action(action)
            for name, value in expected.items():
                np.testing.assert_allclose(getattr(data, name), value, rtol=0, atol=1e-9, err_msg=name)
    finally:
        env.close()
