"""E2HiLAlgorithm inside LeRobot: equality with SAC, gradient flow, encoder reuse, updates."""

import copy

import pytest
import torch
from lerobot.rl.algorithms.sac import SACAlgorithm
from lerobot.rl.buffer import ReplayBuffer
from lerobot.rl.data_sources import OnlineOfflineMixer

from lerobot_policy_e2hil import E2HiLAlgorithm
from lerobot_policy_e2hil.synthetic import make_policy, make_rl_algorithm, random_batch

SMALL = {"hidden_dim": 64, "latent_dim": 32}
FIRST_ORDER = {"influence_form": "first_order"}
FORMS = pytest.mark.parametrize("form", ["policy_gradient", "first_order"])


def twin_algorithms(policy_kwargs=None, **e2hil_overrides):
    """A SAC and an E2HiL algorithm with identical weights."""
    torch.manual_seed(0)
    policy = make_policy(**{**SMALL, **(policy_kwargs or {})})
    sac = make_rl_algorithm("sac", policy)
    e2hil = make_rl_algorithm("e2hil", copy.deepcopy(policy), **e2hil_overrides)
    e2hil.critic_ensemble.load_state_dict(sac.critic_ensemble.state_dict())
    e2hil.critic_target.load_state_dict(sac.critic_target.state_dict())
    return sac, e2hil


def actor_loss(algorithm, batch, seed=1):
    forward_batch = algorithm._prepare_forward_batch(batch, include_complementary_info=False)
    torch.manual_seed(seed)
    return algorithm._compute_loss_actor(forward_batch)


@pytest.mark.parametrize(
    ("policy_kwargs", "overrides"),
    [
        ({}, {"influence_lower_quantile": 0.0, "influence_upper_quantile": 1.0}),
        ({}, {"selection": False}),
        (
            {"num_cameras": 2, "image_size": 64},
            {"influence_lower_quantile": 0.0, "influence_upper_quantile": 1.0},
        ),
        ({}, {**FIRST_ORDER, "influence_lower_quantile": 0.0, "influence_upper_quantile": 1.0}),
        ({}, {**FIRST_ORDER, "selection": False}),
        (
            {"num_cameras": 2, "image_size": 64},
            {**FIRST_ORDER, "influence_lower_quantile": 0.0, "influence_upper_quantile": 1.0},
        ),
        (
            {"num_discrete_actions": 3},
            {**FIRST_ORDER, "influence_lower_quantile": 0.0, "influence_upper_quantile": 1.0},
        ),
    ],
    ids=[
        "quantiles-0-1",
        "selection-off",
        "images",
        "first-order-quantiles-0-1",
        "first-order-selection-off",
        "first-order-images",
        "first-order-gripper",
    ],
)
def test_loss_equals_sac_when_nothing_is_masked(policy_kwargs, overrides):
    sac, e2hil = twin_algorithms(policy_kwargs, **overrides)
    batch = random_batch(sac.policy, 32, generator=torch.Generator().manual_seed(3))
    sac_loss, e2hil_loss = actor_loss(sac, batch), actor_loss(e2hil, batch)
    assert e2hil.last_actor_info["e2hil/kept_fraction"] == 1.0
    assert torch.equal(sac_loss, e2hil_loss)


def test_default_quantiles_drop_samples_and_change_the_loss():
    sac, e2hil = twin_algorithms()
    batch = random_batch(sac.policy, 64, generator=torch.Generator().manual_seed(3))
    e2hil_loss = actor_loss(e2hil, batch)
    assert 0.8 <= e2hil.last_actor_info["e2hil/kept_fraction"] < 1.0
    assert not torch.equal(actor_loss(sac, batch), e2hil_loss)


def _actor_means_grad(algorithm, batch):
    """d loss / d action mean of the actor's one differentiable head pass."""
    captured = []

    def keep(module, inputs, output):
        if output.requires_grad:
            captured.append(output)

    handle = algorithm.policy.actor.mean_layer.register_forward_hook(keep)
    try:
        loss = actor_loss(algorithm, batch)
    finally:
        handle.remove()
    assert len(captured) == 1  # one differentiable actor head pass for all K samples
    return torch.autograd.grad(loss, captured[0])[0]


@FORMS
def test_masked_samples_get_zero_actor_gradient(form):
    _, e2hil = twin_algorithms(influence_form=form)
    batch = random_batch(e2hil.policy, 64, generator=torch.Generator().manual_seed(5))
    grad = _actor_means_grad(e2hil, batch)
    per_sample = grad.abs().sum(dim=-1)
    mask = e2hil.last_mask
    assert 0 < int(mask.sum()) < 64
    assert torch.all(per_sample[~mask] == 0)
    assert torch.all(per_sample[mask] > 0)


@FORMS
def test_actor_loss_leaves_no_gradient_in_critics(form):
    sac, e2hil = twin_algorithms(influence_form=form)
    batch = random_batch(sac.policy, 32, generator=torch.Generator().manual_seed(5))
    for algorithm in (sac, e2hil):
        algorithm.policy.zero_grad(set_to_none=True)
        algorithm.critic_ensemble.zero_grad(set_to_none=True)
        actor_loss(algorithm, batch).backward()
    sac_critic_grads = [p.grad for p in sac.critic_ensemble.parameters() if p.grad is not None]
    assert sac_critic_grads  # SAC's loss does reach them: the check below can fail
    assert all(p.grad is None for p in e2hil.critic_ensemble.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in e2hil.policy.actor.parameters())


@pytest.mark.parametrize("policy_kwargs", [{}, {"num_cameras": 2, "image_size": 64}], ids=["state", "images"])
def test_monte_carlo_actions_share_one_encoder_pass(policy_kwargs):
    def count_encoder_calls(algorithm):
        calls = {"encoder": 0, "image_encoder": 0}
        encoder = algorithm.policy.encoder_critic
        hooks = [encoder.register_forward_hook(lambda *_: calls.__setitem__("encoder", calls["encoder"] + 1))]
        if encoder.has_images:
            hooks.append(
                encoder.image_encoder.register_forward_hook(
                    lambda *_: calls.__setitem__("image_encoder", calls["image_encoder"] + 1)
                )
            )
        actor_loss(algorithm, batch)
        for hook in hooks:
            hook.remove()
        return calls

    sac, _ = twin_algorithms(policy_kwargs)
    batch = random_batch(sac.policy, 16, generator=torch.Generator().manual_seed(0))
    sac_calls = count_encoder_calls(sac)
    for k in (2, 16):
        _, e2hil = twin_algorithms(policy_kwargs, num_action_samples=k)
        assert count_encoder_calls(e2hil) == sac_calls
    assert sac_calls["encoder"] == 2  # once for the actor, once for the critic
    if policy_kwargs:
        assert sac_calls["image_encoder"] == 2


@pytest.mark.parametrize(
    "policy_kwargs",
    [{}, {"num_cameras": 2, "image_size": 64}, {"num_discrete_actions": 3}],
    ids=["state", "images", "gripper"],
)
def test_full_update_trains_and_reports_diagnostics(policy_kwargs):
    torch.manual_seed(0)
    policy = make_policy(**SMALL, **policy_kwargs)
    algorithm = make_rl_algorithm("e2hil", policy, utd_ratio=2)
    before = {n: p.detach().clone() for n, p in policy.actor.named_parameters()}
    generator = torch.Generator().manual_seed(0)
    human = torch.tensor([True, False] * 8)
    batches = iter(lambda: random_batch(policy, 16, generator=generator, intervention=human), None)
    iterator = algorithm.configure_data_iterator(_ListMixer(batches), 16)
    stats = algorithm.update(iterator)
    log = stats.to_log_dict()
    for key in ("loss_critic", "loss_actor", "loss_temperature", "e2hil/kept_fraction", "e2hil/entropy"):
        assert torch.isfinite(torch.tensor(log[key])), key
    assert log["e2hil/intervention_fraction"] == 0.5
    assert "e2hil/kept_fraction_intervention" in log and "e2hil/kept_fraction_policy" in log
    changed = [not torch.equal(before[n], p) for n, p in policy.actor.named_parameters() if p.requires_grad]
    assert any(changed)
    assert algorithm.optimization_step == 1


class _ListMixer:
    """A minimal DataMixer stand-in yielding prepared batches."""

    def __init__(self, batches):
        self.batches = batches

    def get_iterator(self, batch_size, async_prefetch=True, queue_size=2):
        return self.batches


def _filled_buffer(policy, size, flag):
    buffer = ReplayBuffer(
        capacity=64, device="cpu", state_keys=list(policy.config.input_features), use_drq=False
    )
    batch = random_batch(policy, size)
    for i in range(size):
        buffer.add(
            state={k: v[i : i + 1] for k, v in batch["state"].items()},
            action=batch["action"][i : i + 1],
            reward=float(batch["reward"][i]),
            next_state={k: v[i : i + 1] for k, v in batch["next_state"].items()},
            done=False,
            truncated=False,
            complementary_info=None if flag is None else {"is_intervention": torch.tensor([flag])},
        )
    return buffer


@pytest.mark.parametrize("online_flag", [False, True])
def test_intervention_flags_reach_the_actor_batch_when_demos_have_none(online_flag):
    policy = make_policy(**SMALL)
    algorithm = make_rl_algorithm("e2hil", policy)
    mixer = OnlineOfflineMixer(
        _filled_buffer(policy, 20, online_flag), _filled_buffer(policy, 20, None), 0.75
    )
    batch = next(algorithm.configure_data_iterator(mixer, 16, async_prefetch=False))
    forward_batch = algorithm._prepare_forward_batch(batch, include_complementary_info=False)
    assert "complementary_info" not in forward_batch  # as in SAC: only the flag is carried
    assert forward_batch["is_intervention"].tolist() == [online_flag] * 12 + [True] * 4


def test_intervention_flags_default_to_policy_without_offline_buffer():
    policy = make_policy(**SMALL)
    algorithm = make_rl_algorithm("e2hil", policy)
    mixer = OnlineOfflineMixer(_filled_buffer(policy, 20, None), None)
    batch = next(algorithm.configure_data_iterator(mixer, 8, async_prefetch=False))
    assert batch["complementary_info"]["is_intervention"].tolist() == [False] * 8


def test_built_through_lerobot_make_algorithm():
    algorithm = make_rl_algorithm("e2hil", make_policy(**SMALL))
    assert type(algorithm) is E2HiLAlgorithm and isinstance(algorithm, SACAlgorithm)
    assert type(make_rl_algorithm("sac", make_policy(**SMALL))) is SACAlgorithm
