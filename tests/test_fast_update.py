"""The fast update computes what LeRobot's update computes: parameters, optimizer state, stats.

It is chosen by the saved config (``"type": "sac_fast"``, ``fast_update`` of ``"e2hil"``), never by
the environment, and LeRobot's ``"sac"`` is LeRobot's class.
"""

import copy
import pickle

import pytest
import torch
from lerobot.policies.gaussian_actor.configuration_gaussian_actor import CriticNetworkConfig
from lerobot.rl.algorithms import factory
from lerobot.rl.algorithms.sac import SACAlgorithm

from lerobot_policy_e2hil import (
    E2HiLAlgorithm,
    E2HiLAlgorithmConfig,
    SACFastAlgorithm,
    SACFastAlgorithmConfig,
)
from lerobot_policy_e2hil.algorithm.fast_update import (
    FastUpdateMixin,
    HeadWorkspace,
    first_layer_outputs,
    heads_min_q,
    polyak_update,
    split_head_min_q,
    state_parts,
    uses_fast_update,
)
from lerobot_policy_e2hil.errors import ConfigError
from lerobot_policy_e2hil.synthetic import make_policy, make_rl_algorithm, random_batch

SMALL = {"hidden_dim": 64, "latent_dim": 32}
# E2HiL's diagnostics come from the Monte Carlo estimate, which the fast path rounds differently.
MONTE_CARLO_PREFIX = "e2hil/"


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: the updates are small, and several threads only contend on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _build(monkeypatch, fast, algorithm_type, policy_kwargs, overrides):
    """``"sac"``: LeRobot's SAC, or ``"sac_fast"`` when ``fast``; ``"e2hil"`` with ``fast_update=fast``."""
    if algorithm_type == "sac":
        algorithm_type = "sac_fast" if fast else "sac"
    else:
        overrides = {**overrides, "fast_update": fast}
    torch.manual_seed(0)
    policy = make_policy(**{**SMALL, **policy_kwargs})
    critic = CriticNetworkConfig(hidden_dims=[64, 64])
    return make_rl_algorithm(algorithm_type, policy, critic_network_kwargs=critic, **overrides)


def _train(monkeypatch, fast, algorithm_type, updates, policy_kwargs, overrides, batch_size=32):
    """``updates`` updates from a fixed seed; returns the algorithm and the stats of each update."""
    algorithm = _build(monkeypatch, fast, algorithm_type, policy_kwargs, overrides)
    assert uses_fast_update(algorithm) == fast
    generator = torch.Generator().manual_seed(1)
    batches = iter(
        [random_batch(algorithm.policy, batch_size, generator=generator) for _ in range(updates * 2)]
    )
    torch.manual_seed(2)
    stats = [algorithm.update(batches) for _ in range(updates)]
    return algorithm, stats


def _trained_tensors(algorithm):
    """Every tensor an update changes: policy, critics, targets, log_alpha, optimizer states."""
    tensors = {f"policy.{k}": v for k, v in algorithm.policy.state_dict().items()}
    tensors.update({f"algorithm.{k}": v for k, v in algorithm.state_dict().items()})
    for name, optimizer in algorithm.optimizers.items():
        for index, state in enumerate(optimizer.state.values()):
            for key, value in state.items():
                tensors[f"optimizer.{name}.{index}.{key}"] = value
    return tensors


@pytest.mark.slow
@pytest.mark.parametrize(
    ("algorithm_type", "updates", "policy_kwargs", "overrides"),
    [
        ("sac", 200, {}, {}),
        ("e2hil", 200, {}, {}),
        ("sac", 60, {"num_discrete_actions": 3}, {"utd_ratio": 2}),
        ("e2hil", 60, {"num_discrete_actions": 3}, {"influence_form": "natural"}),
        ("e2hil", 60, {}, {"influence_form": "first_order"}),
        ("sac", 10, {"num_cameras": 1, "image_size": 64}, {}),
        ("e2hil", 10, {"num_cameras": 1, "image_size": 64}, {}),
    ],
    ids=[
        "sac",
        "e2hil",
        "sac-discrete-utd2",
        "e2hil-discrete-natural",
        "e2hil-first-order",
        "sac-camera",
        "e2hil-camera",
    ],
)
def test_fast_update_trains_bit_for_bit_like_lerobots(
    monkeypatch, algorithm_type, updates, policy_kwargs, overrides
):
    slow, slow_stats = _train(monkeypatch, False, algorithm_type, updates, policy_kwargs, overrides)
    fast, fast_stats = _train(monkeypatch, True, algorithm_type, updates, policy_kwargs, overrides)
    plain = {"sac": SACAlgorithm, "e2hil": E2HiLAlgorithm}[algorithm_type]
    assert (
        type(slow) is plain
        and type(fast) is {"sac": SACFastAlgorithm, "e2hil": E2HiLAlgorithm}[algorithm_type]
    )
    slow_tensors, fast_tensors = _trained_tensors(slow), _trained_tensors(fast)
    assert slow_tensors.keys() == fast_tensors.keys()
    for name, tensor in slow_tensors.items():
        torch.testing.assert_close(fast_tensors[name], tensor, rtol=0, atol=0, msg=name)
    for slow_step, fast_step in zip(slow_stats, fast_stats, strict=True):
        slow_log, fast_log = slow_step.to_log_dict(), fast_step.to_log_dict()
        assert fast_log.keys() == slow_log.keys()
        for key, value in slow_log.items():
            tolerance = 1e-5 if key.startswith(MONTE_CARLO_PREFIX) else 0
            assert fast_log[key] == pytest.approx(value, rel=tolerance, abs=0, nan_ok=True), key


def test_sac_is_lerobots_class_and_the_fast_update_is_a_registered_type(monkeypatch):
    assert factory.get_algorithm_class("sac") is SACAlgorithm
    assert factory.get_algorithm_class("sac_fast") is SACFastAlgorithm
    assert factory.get_algorithm_class("e2hil") is E2HiLAlgorithm
    monkeypatch.setenv("LEROBOT_E2HIL_FAST_UPDATE", "1")  # the old switch: read by nothing now
    sac = _build(monkeypatch, False, "sac", {}, {})
    assert type(sac) is SACAlgorithm and not uses_fast_update(sac)
    assert all(
        not group["foreach"] for optimizer in sac.optimizers.values() for group in optimizer.param_groups
    )


@pytest.mark.parametrize("algorithm_type", ["sac_fast", "e2hil"])
def test_fast_update_is_a_config_field_on_by_default(algorithm_type):
    config_class = {"sac_fast": SACFastAlgorithmConfig, "e2hil": E2HiLAlgorithmConfig}[algorithm_type]
    assert config_class().fast_update is True
    with pytest.raises(
        ConfigError,
        match=rf"algorithm.fast_update='yes' is invalid for type '{algorithm_type}'; allowed values: true, false",
    ):
        config_class(fast_update="yes")


def test_fast_update_false_gives_lerobots_update_in_each_hook(monkeypatch):
    slow = _build(monkeypatch, False, "e2hil", {}, {})
    assert isinstance(slow, FastUpdateMixin) and not uses_fast_update(slow)
    assert all(
        not group["foreach"] for optimizer in slow.optimizers.values() for group in optimizer.param_groups
    )
    lerobot = make_rl_algorithm("sac_fast", make_policy(**SMALL), fast_update=False)
    assert all(not g["foreach"] for optimizer in lerobot.optimizers.values() for g in optimizer.param_groups)


def test_actor_loss_skips_critic_weight_gradients_and_keeps_the_rest(monkeypatch):
    slow = _build(monkeypatch, False, "sac", {}, {})
    fast = _build(monkeypatch, True, "sac", {}, {})
    batch = random_batch(slow.policy, 16, generator=torch.Generator().manual_seed(3))
    for algorithm in (slow, fast):
        algorithm.policy.zero_grad(set_to_none=True)
        algorithm.critic_ensemble.zero_grad(set_to_none=True)
        torch.manual_seed(4)
        algorithm._compute_loss_actor(algorithm._prepare_forward_batch(batch)).backward()
    heads = list(fast.critic_ensemble.critics.parameters())
    assert all(p.grad is None and p.requires_grad for p in heads)
    assert all(p.grad is not None for p in slow.critic_ensemble.critics.parameters())
    for (name, p_slow), p_fast in zip(slow.policy.named_parameters(), fast.policy.parameters(), strict=True):
        assert (p_slow.grad is None) == (p_fast.grad is None), name
        if p_slow.grad is not None:
            torch.testing.assert_close(p_fast.grad, p_slow.grad, rtol=0, atol=0, msg=name)


def test_the_update_leaves_torch_distributions_validation_to_the_process(monkeypatch):
    fast = _build(monkeypatch, True, "sac", {}, {})
    seen = []
    original = fast._compute_loss_critic

    def spy(batch):
        seen.append(torch.distributions.Distribution._validate_args)
        return original(batch)

    fast._compute_loss_critic = spy
    before = torch.distributions.Distribution._validate_args
    fast.update(iter([random_batch(fast.policy, 8)]))
    assert seen == [before]
    assert torch.distributions.Distribution._validate_args == before


def test_polyak_update_is_lerobots_average_bit_for_bit():
    generator = torch.Generator().manual_seed(0)
    sources = [torch.randn(shape, generator=generator) for shape in ((7, 5), (5,), (1,))]
    targets = [torch.randn(s.shape, generator=generator) for s in sources]
    expected = [s * 0.005 + t * (1.0 - 0.005) for s, t in zip(sources, targets, strict=True)]
    polyak_update(targets, sources, 0.005)
    for target, value in zip(targets, expected, strict=True):
        torch.testing.assert_close(target, value, rtol=0, atol=0)
    with pytest.raises(ValueError, match="2 target tensors for 3 source tensors"):
        polyak_update(targets[:2], sources, 0.005)


def test_split_head_min_q_equals_the_concatenated_forward():
    torch.manual_seed(0)
    algorithm = make_rl_algorithm("sac", make_policy(**SMALL))
    heads = algorithm.critic_ensemble.critics
    generator = torch.Generator().manual_seed(5)
    encoding = torch.randn(6, algorithm.critic_ensemble.encoder.output_dim, generator=generator)
    actions = torch.rand(4, 6, 3, generator=generator) * 2 - 1
    expanded = encoding.unsqueeze(0).expand(4, *encoding.shape)
    with torch.no_grad():
        inputs = torch.cat([expanded, actions], dim=-1)
        expected = torch.stack([head(inputs).squeeze(-1) for head in heads]).min(0)[0]
    result = split_head_min_q(heads, encoding, actions)
    assert result.shape == (4, 6) and not result.requires_grad
    torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-6)
    # each action gets its own state's part: swapping two states swaps their columns
    swapped = split_head_min_q(heads, encoding[[1, 0, 2, 3, 4, 5]], actions[:, [1, 0, 2, 3, 4, 5]])
    torch.testing.assert_close(swapped, result[:, [1, 0, 2, 3, 4, 5]], rtol=1e-5, atol=1e-6)


def test_e2hil_monte_carlo_estimate_is_unchanged_by_the_fast_path(monkeypatch):
    slow = _build(monkeypatch, False, "e2hil", {}, {})
    fast = _build(monkeypatch, True, "e2hil", {}, {})
    batch = random_batch(slow.policy, 64, generator=torch.Generator().manual_seed(6))
    calls = []
    original = E2HiLAlgorithm._frozen_min_q
    for algorithm in (slow, fast):
        monkeypatch.setattr(
            algorithm,
            "_frozen_min_q",
            lambda e, a, alg=algorithm: calls.append(e.dim()) or original(alg, e, a),
        )
        torch.manual_seed(7)
        algorithm._compute_loss_actor(algorithm._prepare_forward_batch(batch))
    # the slow path scores the K x B Monte Carlo actions with _frozen_min_q on a 3-D encoding; the fast one does not
    assert calls == [2, 3, 2]
    torch.testing.assert_close(fast.last_influence, slow.last_influence, rtol=1e-4, atol=1e-6)
    assert torch.equal(fast.last_mask, slow.last_mask)


def _plain_min_q(heads, encoding, actions):
    """The concatenated forward of every head on ``[encoding, action]`` for ``[K, B, A]`` actions, min over heads."""
    expanded = encoding.unsqueeze(0).expand(actions.shape[0], *encoding.shape)
    with torch.no_grad():
        inputs = torch.cat([expanded, actions], dim=-1)
        return torch.stack([head(inputs).squeeze(-1) for head in heads]).min(0)[0]


def test_estimate_from_the_first_layer_at_the_actor_loss_action_equals_the_concatenated_forward():
    torch.manual_seed(0)
    algorithm = make_rl_algorithm("sac", make_policy(**SMALL))
    heads = list(algorithm.critic_ensemble.critics)
    generator = torch.Generator().manual_seed(8)
    encoding = torch.randn(6, algorithm.critic_ensemble.encoder.output_dim, generator=generator)
    anchor = torch.rand(6, 3, generator=generator) * 2 - 1
    actions = torch.rand(5, 6, 3, generator=generator) * 2 - 1
    with first_layer_outputs(heads) as first_layers:
        q_anchor = algorithm.critic_ensemble.critics[0](torch.cat([encoding, anchor], dim=-1))
        algorithm.critic_ensemble.critics[1](torch.cat([encoding, anchor], dim=-1))
    # the hooks read the first layer's output and change nothing; they are gone after the block
    assert len(first_layers) == 2 and not first_layers[0].requires_grad
    with torch.no_grad():
        torch.testing.assert_close(
            first_layers[0], heads[0].net.net[0](torch.cat([encoding, anchor], dim=-1))
        )
        torch.testing.assert_close(q_anchor, heads[0](torch.cat([encoding, anchor], dim=-1)), rtol=0, atol=0)
    assert all(not head.net.net[0]._forward_hooks for head in heads)
    workspace = HeadWorkspace()
    result = heads_min_q(heads, first_layers, actions - anchor, workspace)
    assert result.shape == (5, 6) and not result.requires_grad
    torch.testing.assert_close(result, _plain_min_q(heads, encoding, actions), rtol=1e-5, atol=1e-6)
    # a second call reuses the buffers and leaves the first result alone
    kept = result.clone()
    buffers = {key: value.data_ptr() for key, value in workspace._buffers.items()}
    assert len(buffers) == 4  # two hidden-width buffers, the LayerNorm statistics
    other = heads_min_q(heads, state_parts(heads, encoding), actions.flip(0), workspace)
    assert {key: value.data_ptr() for key, value in workspace._buffers.items()} == buffers
    assert torch.equal(result, kept)
    torch.testing.assert_close(other, _plain_min_q(heads, encoding, actions.flip(0)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "layers",
    [
        lambda: [torch.nn.Linear(19, 8), torch.nn.ReLU(), torch.nn.Linear(8, 5, bias=False), torch.nn.Tanh()],
        lambda: [torch.nn.Linear(19, 8), torch.nn.LayerNorm(8, elementwise_affine=False), torch.nn.GELU()],
        lambda: [torch.nn.Linear(19, 8), torch.nn.Dropout(0.5), torch.nn.LayerNorm(8), torch.nn.SiLU()],
    ],
    ids=["relu-nobias-tanh", "plain-layernorm-gelu", "dropout-eval"],
)
def test_estimate_runs_other_head_layers_as_their_modules_do(layers):
    torch.manual_seed(0)
    heads = [_Head(layers()).eval() for _ in range(2)]
    generator = torch.Generator().manual_seed(9)
    encoding = torch.randn(4, 16, generator=generator)
    actions = torch.randn(3, 4, 3, generator=generator)
    result = split_head_min_q(heads, encoding, actions, HeadWorkspace())
    torch.testing.assert_close(result, _plain_min_q(heads, encoding, actions), rtol=1e-5, atol=1e-6)


class _Head(torch.nn.Module):
    """A critic head shaped like LeRobot's (``net.net`` then ``output_layer``) with other layers."""

    def __init__(self, layers):
        super().__init__()
        self.net = torch.nn.Module()
        self.net.net = torch.nn.Sequential(*layers)
        width = [layer for layer in layers if isinstance(layer, torch.nn.Linear)][-1].out_features
        self.output_layer = torch.nn.Linear(width, 1)

    def forward(self, x):
        return self.output_layer(self.net.net(x))


def test_fast_e2hil_estimate_starts_from_the_actor_loss_first_layer(monkeypatch):
    fast = _build(monkeypatch, True, "e2hil", {}, {})
    batch = fast._prepare_forward_batch(
        random_batch(fast.policy, 16, generator=torch.Generator().manual_seed(10))
    )
    seen = []
    monkeypatch.setattr(
        "lerobot_policy_e2hil.algorithm.e2hil_algorithm.heads_min_q",
        lambda heads, base, offsets, workspace: (
            seen.append((base, offsets, workspace)) or heads_min_q(heads, base, offsets, workspace)
        ),
    )
    monkeypatch.setattr(
        "lerobot_policy_e2hil.algorithm.e2hil_algorithm.split_head_min_q", None
    )  # the anchored path needs no state part
    torch.manual_seed(11)
    fast._compute_loss_actor(batch)
    ((base, offsets, workspace),) = seen
    assert workspace is fast._estimate_workspace
    assert (
        len(base) == 2
        and base[0].shape == (16, 64)
        and offsets.shape == (fast.config.num_action_samples, 16, 3)
    )
    assert all(not head.net.net[0]._forward_hooks for head in fast.critic_ensemble.critics)


def test_a_copied_or_pickled_fast_algorithm_stays_fast(monkeypatch):
    fast = _build(monkeypatch, True, "sac", {}, {})
    clone = copy.deepcopy(fast)
    assert uses_fast_update(clone)
    assert pickle.loads(pickle.dumps(type(fast))) is type(fast)
    assert all(
        group["foreach"] for optimizer in clone.optimizers.values() for group in optimizer.param_groups
    )


def test_optimizers_stay_foreach_after_loading_a_plain_checkpoint(monkeypatch):
    slow = _build(monkeypatch, False, "sac", {}, {})
    fast = _build(monkeypatch, True, "sac", {}, {})
    for name, optimizer in fast.optimizers.items():
        saved = slow.optimizers[name].state_dict()
        assert all(not group["foreach"] for group in saved["param_groups"])
        optimizer.load_state_dict(saved)
        assert all(group["foreach"] for group in optimizer.param_groups), name
