"""The first-order influence form against explicit per-sample gradients on a tiny actor."""

import copy

import pytest
import torch
from lerobot.configs.types import FeatureType, PolicyFeature
from lerobot.policies.gaussian_actor.configuration_gaussian_actor import GaussianActorConfig
from lerobot.policies.gaussian_actor.modeling_gaussian_actor import GaussianActorPolicy
from lerobot.utils.constants import ACTION, OBS_ENV_STATE, OBS_STATE

from lerobot_policy_e2hil.algorithm.e2hil_algorithm import action_distribution, diagonal_base
from lerobot_policy_e2hil.algorithm.influence import diagonal_preconditioner, first_order_influence
from lerobot_policy_e2hil.synthetic import make_rl_algorithm, random_batch

K = 4
B = 12


def tiny_policy(shared_encoder=True):
    config = GaussianActorConfig(
        input_features={
            OBS_STATE: PolicyFeature(type=FeatureType.STATE, shape=(5,)),
            OBS_ENV_STATE: PolicyFeature(type=FeatureType.ENV, shape=(3,)),
        },
        output_features={ACTION: PolicyFeature(type=FeatureType.ACTION, shape=(3,))},
        latent_dim=8,
        shared_encoder=shared_encoder,
        device="cpu",
    )
    config.actor_network_kwargs.hidden_dims = [16, 16]
    return GaussianActorPolicy(config).double()


def tiny_algorithm(optimizer="adam", steps=0, shared_encoder=True):
    """A float64 first_order E2HiL on a tiny actor, after ``steps`` full updates."""
    torch.manual_seed(0)
    policy = tiny_policy(shared_encoder)
    algorithm = make_rl_algorithm(
        "e2hil", policy, influence_form="first_order", num_action_samples=K, actor_lr=0.01
    )
    algorithm.critic_ensemble.double()
    algorithm.critic_target.double()
    if optimizer == "sgd":
        algorithm.optimizers["actor"] = torch.optim.SGD(policy.get_optim_params()["actor"], lr=0.01)
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        algorithm.update(iter([_double(random_batch(policy, B, generator=generator))]))
    return algorithm, _double(random_batch(policy, B, generator=generator))


def _double(batch):
    return {
        k: ({kk: vv.double() for kk, vv in v.items()} if isinstance(v, dict) else v.double())
        for k, v in batch.items()
    }


def explicit_influence(algorithm, batch, noise, seed):
    """``-lr <grad l_i, P grad H>`` from per-sample backward passes and hand-written formulas."""
    actor = algorithm.policy.actor
    params = algorithm.actor_parameters()
    names = list(params)

    def tanh_gaussian(observations):
        encoding = actor.encoder(observations, detach=actor.encoder_is_shared)
        hidden = actor.network(encoding)
        mean = actor.mean_layer(hidden)
        variance = torch.clamp(torch.exp(actor.std_layer(hidden)), actor.std_min, actor.std_max)
        return encoding, mean, variance.sqrt()  # LeRobot passes its "std" as the covariance

    def log_prob(x, mean, scale):
        gaussian = (
            -0.5 * ((x - mean) / scale) ** 2 - scale.log() - 0.5 * torch.log(torch.tensor(2 * torch.pi))
        )
        return (gaussian - torch.log(1 - torch.tanh(x) ** 2)).sum(-1)

    _, mean, scale = tanh_gaussian(batch["state"])
    torch.manual_seed(seed)
    eps = torch.empty((K, *mean.shape), dtype=mean.dtype).normal_()  # the draws rsample((K,)) makes
    entropy = -log_prob(mean + scale * eps, mean, scale).mean()
    grad_h = torch.autograd.grad(entropy, [params[n] for n in names], retain_graph=True)

    critic_encoding = algorithm.critic_ensemble.encoder(batch["state"]).detach()
    x = mean + scale * noise
    q = torch.stack(
        [
            head(torch.cat([critic_encoding, torch.tanh(x)], -1)).squeeze(-1)
            for head in algorithm.critic_ensemble.critics
        ]
    )
    losses = algorithm.temperature * log_prob(x, mean, scale) - q.min(0)[0]

    optimizer = algorithm.optimizers["actor"]
    preconditioner = []
    for name in names:
        state = optimizer.state.get(params[name], {})
        if isinstance(optimizer, torch.optim.Adam) and state:
            group = optimizer.param_groups[0]
            beta2, step = group["betas"][1], float(state["step"])
            v_hat = beta2 * state["exp_avg_sq"] / (1 - beta2 ** (step + 1))
            preconditioner.append(1 / (v_hat.sqrt() + group["eps"]))
        else:
            preconditioner.append(torch.ones_like(params[name]))
    influence = []
    for i in range(losses.shape[0]):
        grads = torch.autograd.grad(
            losses[i], [params[n] for n in names], retain_graph=True, allow_unused=True
        )
        dot = sum(
            (g * p * h).sum() for g, p, h in zip(grads, preconditioner, grad_h, strict=True) if g is not None
        )
        influence.append(-algorithm.config.actor_lr * dot)
    return torch.stack(influence).detach(), preconditioner


def algorithm_influence(algorithm, batch, noise, seed):
    actor = algorithm.policy.actor
    observations = batch["state"]
    actor_encoding = actor.encoder(observations, detach=actor.encoder_is_shared)
    distribution = action_distribution(actor, actor_encoding)
    with torch.no_grad():
        critic_encoding = algorithm.critic_ensemble.encoder(observations)
    torch.manual_seed(seed)
    influence, _ = algorithm.first_order_influence(
        observations, None, distribution, noise, actor_encoding, critic_encoding
    )
    return influence


@pytest.mark.parametrize(
    ("optimizer", "steps", "shared_encoder"),
    [("sgd", 2, True), ("adam", 0, True), ("adam", 3, True), ("adam", 3, False)],
    ids=["sgd", "adam-before-first-step", "adam", "adam-own-encoder"],
)
def test_first_order_equals_explicit_per_sample_gradients(optimizer, steps, shared_encoder):
    algorithm, batch = tiny_algorithm(optimizer, steps, shared_encoder)
    noise = torch.randn((B, 3), generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    expected, preconditioner = explicit_influence(algorithm, batch, noise, seed=5)
    got = algorithm_influence(algorithm, batch, noise, seed=5)
    assert got.shape == (B,)
    assert expected.abs().max() > 0
    torch.testing.assert_close(got, expected, rtol=1e-7, atol=1e-12 * float(expected.abs().max()))
    adam_with_state = optimizer == "adam" and steps > 0
    # The preconditioner matters here: with P ignored the comparison above would fail.
    assert any(not torch.allclose(p, torch.ones_like(p)) for p in preconditioner) == adam_with_state
    if not shared_encoder:
        assert any(name.startswith("encoder.") for name in algorithm.actor_parameters())


def test_first_order_sign_and_lr_scale():
    algorithm, batch = tiny_algorithm("sgd", 1)
    noise = torch.randn((B, 3), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    base = algorithm_influence(algorithm, batch, noise, seed=3)
    algorithm.config.actor_lr *= 10
    assert torch.allclose(algorithm_influence(algorithm, batch, noise, seed=3), 10 * base)


def test_diagonal_preconditioner_matches_adam_next_step_and_is_identity_otherwise():
    param = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64))
    adam = torch.optim.Adam([param], lr=0.1, betas=(0.0, 0.99), eps=1e-3)
    assert torch.equal(diagonal_preconditioner(adam, {"w": param})["w"], torch.ones(3, dtype=torch.float64))
    for grad in ([1.0, 2.0, -1.0], [0.5, -1.0, 4.0]):
        param.grad = torch.tensor(grad, dtype=torch.float64)
        adam.step()
    v = 0.99 * (0.01 * torch.tensor([1.0, 4.0, 1.0])) + 0.01 * torch.tensor([0.25, 1.0, 16.0])
    v = v.double()
    expected = 1 / ((0.99 * v / (1 - 0.99**3)).sqrt() + 1e-3)
    torch.testing.assert_close(diagonal_preconditioner(adam, {"w": param})["w"], expected)
    # With beta1 = 0 and a tiny new gradient (v barely moves), Adam's next step is -lr * P * g.
    before = param.detach().clone()
    small = torch.tensor([1e-4, -2e-4, 3e-4], dtype=torch.float64)
    param.grad = small
    adam.step()
    torch.testing.assert_close(param.detach() - before, -0.1 * expected * small, rtol=1e-4, atol=0)
    sgd = torch.optim.SGD([param], lr=0.1)
    assert torch.equal(diagonal_preconditioner(sgd, {"w": param})["w"], torch.ones(3, dtype=torch.float64))


def test_first_order_influence_is_one_directional_derivative():
    weight = torch.randn(4, 3, dtype=torch.float64)
    inputs = torch.randn(6, 3, dtype=torch.float64)

    def per_sample(params):
        return torch.tanh(inputs @ params["w"].T).pow(2).sum(-1)

    entropy_grad = {"w": torch.randn(4, 3, dtype=torch.float64)}
    preconditioner = {"w": torch.rand(4, 3, dtype=torch.float64)}
    got = first_order_influence(per_sample, {"w": weight}, entropy_grad, preconditioner, lr=0.5)
    jacobian = torch.autograd.functional.jacobian(lambda w: per_sample({"w": w}), weight)  # [6, 4, 3]
    expected = -0.5 * (jacobian * (preconditioner["w"] * entropy_grad["w"])).sum(dim=(1, 2))
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize(
    "policy_kwargs",
    [{}, {"num_cameras": 2, "image_size": 64}, {"num_discrete_actions": 3}],
    ids=["state", "images", "gripper"],
)
def test_first_order_update_runs_with_every_observation_kind(policy_kwargs):
    from lerobot_policy_e2hil.synthetic import make_policy

    torch.manual_seed(0)
    policy = make_policy(hidden_dim=32, latent_dim=16, **policy_kwargs)
    algorithm = make_rl_algorithm("e2hil", policy, influence_form="first_order")
    before = copy.deepcopy(policy.actor.state_dict())
    generator = torch.Generator().manual_seed(0)
    for _ in range(2):
        stats = algorithm.update(iter([random_batch(policy, 16, generator=generator)]))
    influence = algorithm.last_influence
    assert influence.shape == (16,) and torch.isfinite(influence).all() and influence.abs().max() > 0
    assert 0 < stats.extra["e2hil/kept_fraction"] < 1
    assert any(not torch.equal(before[n], p) for n, p in policy.actor.state_dict().items())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_first_order_on_cuda_matches_cpu():
    from lerobot_policy_e2hil.synthetic import make_policy

    values = {}
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        policy = make_policy(hidden_dim=32, latent_dim=16, device=device)
        algorithm = make_rl_algorithm("e2hil", policy, influence_form="first_order")
        batch = random_batch(policy, 16, generator=torch.Generator().manual_seed(0))
        batch = {
            k: ({kk: vv.to(device) for kk, vv in v.items()} if isinstance(v, dict) else v.to(device))
            for k, v in batch.items()
        }
        algorithm.update(iter([batch]))
        actor = policy.actor
        encoding = actor.encoder(batch["state"], detach=True)
        distribution = action_distribution(actor, encoding)
        with torch.no_grad():
            critic_encoding = algorithm.critic_ensemble.encoder(batch["state"])
        noise = torch.randn((16, 3), generator=torch.Generator().manual_seed(1)).to(device)
        torch.manual_seed(2)
        base = diagonal_base(distribution)
        assert base.loc.device.type == device
        influence, _ = algorithm.first_order_influence(
            batch["state"], None, distribution, noise, encoding, critic_encoding
        )
        values[device] = influence.cpu()
    assert torch.allclose(
        values["cpu"], values["cuda"], rtol=1e-2, atol=1e-3 * float(values["cpu"].abs().max())
    )


def test_actor_loss_influence_uses_sac_draw_and_the_chain_rule_through_the_critic():
    """The loss's c (critic action gradient from its own graph) equals c recomputed at SAC's draw."""
    from lerobot_policy_e2hil.algorithm.e2hil_algorithm import reparameterised_sample

    algorithm, batch = tiny_algorithm("adam", 2)
    forward_batch = algorithm._prepare_forward_batch(batch, include_complementary_info=False)
    torch.manual_seed(11)
    algorithm._compute_loss_actor(forward_batch)
    in_loss = algorithm.last_influence

    actor = algorithm.policy.actor
    observations = forward_batch["state"]
    encoding = actor.encoder(observations, detach=True)
    distribution = action_distribution(actor, encoding)
    torch.manual_seed(11)
    pre_squash, _ = reparameterised_sample(distribution)  # SAC's draw, then the K entropy draws
    base = diagonal_base(distribution)
    noise = ((pre_squash - base.loc) / base.scale).detach()
    with torch.no_grad():
        critic_encoding = algorithm.critic_ensemble.encoder(observations)
    recomputed, _ = algorithm.first_order_influence(
        observations, None, distribution, noise, encoding, critic_encoding
    )
    torch.testing.assert_close(in_loss, recomputed, rtol=1e-9, atol=1e-15)
    other_noise = torch.randn_like(noise)
    torch.manual_seed(11)
    reparameterised_sample(distribution)
    elsewhere, _ = algorithm.first_order_influence(
        observations, None, distribution, other_noise, encoding, critic_encoding
    )
    assert not torch.allclose(in_loss, elsewhere)  # l_i depends on the draw: the check can fail
