"""``E2HiLAlgorithm``: LeRobot's SAC with the E2HiL actor loss."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from lerobot.lerobot_types import BatchType
from lerobot.policies.gaussian_actor.modeling_gaussian_actor import Policy, TanhMultivariateNormalDiag
from lerobot.rl.algorithms.configs import TrainingStats
from lerobot.rl.algorithms.sac import SACAlgorithm
from lerobot.rl.data_sources.data_mixer import DataMixer, OnlineOfflineMixer
from lerobot.teleoperators.utils import TeleopEvents
from torch import Tensor
from torch.distributions.utils import _sum_rightmost
from torch.func import functional_call

from ..lerobot_layer.registry import register_algorithm
from .configuration_e2hil import E2HiLAlgorithmConfig
from .fast_update import FastUpdateMixin, HeadWorkspace, first_layer_outputs, heads_min_q, split_head_min_q
from .influence import diagonal_preconditioner, directional_derivative, e2hil_actor_loss, selected_actor_loss

INTERVENTION_KEY = TeleopEvents.IS_INTERVENTION.value
FIRST_ORDER = "first_order"
# Added to torch's initial seed for the control rule's generator (any fixed value; a stream apart)
CONTROL_SEED_OFFSET = 7919


@register_algorithm("e2hil")
class E2HiLAlgorithm(FastUpdateMixin, SACAlgorithm):
    """SAC/RLPD whose actor update keeps only samples of moderate entropy influence.

    Overrides :meth:`_compute_loss_actor` (the loss) and, to carry ``is_intervention`` into
    the actor's batch for diagnostics, :meth:`configure_data_iterator` and
    :meth:`_prepare_forward_batch`. ``update()`` is SAC's; the diagnostics of the last actor
    step are added to ``TrainingStats.extra``. With ``config.fast_update`` the optimizers and
    the target average are :class:`~.fast_update.FastUpdateMixin`'s and the Monte Carlo
    estimate starts from each head's first layer (:meth:`_monte_carlo_min_q`).
    """

    config_class = E2HiLAlgorithmConfig
    name = "e2hil"
    config: E2HiLAlgorithmConfig

    def __init__(self, policy, config: E2HiLAlgorithmConfig):
        super().__init__(policy=policy, config=config)
        # Diagnostics of the most recent actor loss: logged scalars, and per-sample c and mask.
        self.last_actor_info: dict[str, float] = {}
        self.last_influence: Tensor | None = None
        self.last_mask: Tensor | None = None
        # Buffers of the fast Monte Carlo estimate (fast_update.heads_min_q), reused every update.
        self._estimate_workspace = HeadWorkspace()
        self._control_generator: torch.Generator | None = None

    def update(self, batch_iterator: Iterator[BatchType]) -> TrainingStats:
        self.last_actor_info = {}
        stats = super().update(batch_iterator)
        stats.extra.update(self.last_actor_info)
        return stats

    def _compute_loss_actor(self, batch: dict[str, Any]) -> Tensor:
        observations = batch["state"]
        observation_features = batch.get("observation_feature")
        actor: Policy = self.policy.actor

        # Same calls, in the same order, as SACAlgorithm._compute_loss_actor: identical random
        # draws, so with every sample kept the loss equals SAC's bit for bit.
        # A shared encoder belongs to the critic and is not in the actor's optimizer: SAC only
        # detaches its image part, we keep its state layers out of the actor's graph too.
        with torch.set_grad_enabled(torch.is_grad_enabled() and not actor.encoder_is_shared):
            actor_encoding = actor.encoder(
                observations, cache=observation_features, detach=actor.encoder_is_shared
            )
        distribution = action_distribution(actor, actor_encoding)
        pre_squash, actions_pi = reparameterised_sample(distribution)
        log_probs = distribution.log_prob(actions_pi)

        device = self._device
        with torch.no_grad():
            critic_encoding = self.critic_ensemble.encoder(
                {k: v.to(device) for k, v in observations.items()}, cache=observation_features
            )
        # The fast estimate starts from the heads' first layer at SAC's own action (hooks only read it).
        anchored = self.config.fast_update and self.config.influence_form != FIRST_ORDER
        with first_layer_outputs(self.critic_ensemble.critics, enabled=anchored) as first_layers:
            min_q = self._frozen_min_q(critic_encoding, actions_pi)
        per_sample_loss = self.temperature * log_probs - min_q
        if self.config.influence_form == FIRST_ORDER:
            return self._first_order_actor_loss(
                batch,
                per_sample_loss,
                distribution,
                pre_squash,
                actions_pi,
                min_q,
                actor_encoding,
                critic_encoding,
            )

        with torch.no_grad():
            mc_actions, mc_log_probs = sample_with_log_prob(distribution, self.config.num_action_samples)
            anchor = (actions_pi, first_layers) if anchored else None
            mc_q = self._monte_carlo_min_q(critic_encoding, mc_actions, anchor)

        cfg = self.config
        loss, info = e2hil_actor_loss(
            per_sample_loss,
            mc_log_probs.transpose(0, 1),
            mc_q.transpose(0, 1),
            self.temperature,
            lower_quantile=cfg.influence_lower_quantile,
            upper_quantile=cfg.influence_upper_quantile,
            form=cfg.influence_form,
            density_clamp=cfg.density_clamp,
            eps=cfg.eps,
            selection=cfg.selection,
            is_intervention=batch.get(INTERVENTION_KEY),
            random_mask=self.control_generator(),
        )
        self._keep_diagnostics(info)
        return loss

    def control_generator(self) -> torch.Generator | None:
        """The generator of the control rule's masks (``random_mask``), else None.

        Its own stream, seeded from torch's initial seed (the run's seed): the control's draws do
        not shift the random numbers of the rest of the update.
        """
        if not self.config.random_mask:
            return None
        if self._control_generator is None:
            self._control_generator = torch.Generator().manual_seed(
                (torch.initial_seed() + CONTROL_SEED_OFFSET) % 2**63
            )
        return self._control_generator

    def _keep_diagnostics(self, info: dict[str, Tensor]) -> None:
        """Store per-sample ``c`` and mask, and the logged scalars, of the actor loss just computed."""
        self.last_influence = info.pop("influence")
        self.last_mask = info.pop("mask")
        self.last_actor_info = {name: value.item() for name, value in info.items()}

    # --- influence_form "first_order" (docs/algorithm.md, "The first-order form") -------------

    def _first_order_actor_loss(
        self,
        batch: dict[str, Any],
        per_sample_loss: Tensor,
        distribution: TanhMultivariateNormalDiag,
        pre_squash: Tensor,
        actions_pi: Tensor,
        min_q: Tensor,
        actor_encoding: Tensor,
        critic_encoding: Tensor,
    ) -> Tensor:
        """Eq. 11-12 on the first-order influence of each sample, with l_i at SAC's draw."""
        base = diagonal_base(distribution)
        noise = ((pre_squash - base.loc) / base.scale).detach()
        # Each min_q[i] depends on actions_pi[i] only, so this is every sample's dQ_i/da_i.
        critic_action_grad = None
        if min_q.requires_grad:
            critic_action_grad = torch.autograd.grad(min_q.sum(), actions_pi, retain_graph=True)[0]
        influence, entropy = self.first_order_influence(
            batch["state"],
            batch.get("observation_feature"),
            distribution,
            noise,
            actor_encoding,
            critic_encoding,
            critic_action_grad,
        )
        cfg = self.config
        loss, info = selected_actor_loss(
            per_sample_loss,
            influence,
            entropy,
            lower_quantile=cfg.influence_lower_quantile,
            upper_quantile=cfg.influence_upper_quantile,
            eps=cfg.eps,
            selection=cfg.selection,
            is_intervention=batch.get(INTERVENTION_KEY),
            random_mask=self.control_generator(),
        )
        self._keep_diagnostics(info)
        return loss

    def actor_parameters(self) -> dict[str, Tensor]:
        """The actor parameters its optimiser steps, by name (a shared or frozen encoder's are not)."""
        optimizer = self.optimizers.get("actor")
        if optimizer is not None:
            stepped = {id(p) for group in optimizer.param_groups for p in group["params"]}
        else:
            stepped = {id(p) for p in self.policy.get_optim_params()["actor"]}
        return {n: p for n, p in self.policy.actor.named_parameters() if id(p) in stepped and p.requires_grad}

    def first_order_influence(
        self,
        observations: dict[str, Tensor],
        observation_features: Any,
        distribution: TanhMultivariateNormalDiag,
        noise: Tensor,
        actor_encoding: Tensor,
        critic_encoding: Tensor,
        critic_action_grad: Tensor | None = None,
        identity_preconditioner: bool = False,
    ) -> tuple[Tensor, Tensor]:
        """``c_i = -actor_lr * <grad l_i, P grad H>`` for the batch, and the entropy estimate H.

        ``H = -mean_{i,k} log pi(a_ik|s_i)`` over ``num_action_samples`` reparameterised actions
        per state, differentiated once; ``P`` is the actor optimiser's preconditioner for its
        next step (:func:`~.influence.diagonal_preconditioner`). ``l_i`` is
        :meth:`per_sample_loss_fn` at ``noise``; its derivative along ``u = P grad H`` is one JVP
        through the actor, ``(d log pi_i, d a_i)``, and the chain rule through the frozen
        critics: ``<grad l_i, u> = alpha d log pi_i - <dQ_i/da_i, d a_i>``.

        Args:
            observations: The batch's observations.
            observation_features: Cached image features (or None), as in the actor loss.
            distribution: The actor's distribution on the batch, with its graph to the parameters.
            noise: ``[B, action_dim]`` standard normal draw that defines ``l_i``.
            actor_encoding: Actor encoding of the observations (reused when the encoder is not
                differentiated).
            critic_encoding: Critic encoding of the observations, without gradient.
            critic_action_grad: ``[B, action_dim]`` gradient of ``min_j Q_j(s_i, a)`` at the
                actions of ``noise``, if already computed (the actor loss has it).
            identity_preconditioner: Use ``P = I`` (a plain SGD step) whatever the optimiser.

        Returns:
            ``([B] influence, scalar entropy)``, without gradient.
        """
        params = self.actor_parameters()
        entropy, entropy_grad = self.entropy_gradient(distribution, params)
        optimizer = None if identity_preconditioner else self.optimizers.get("actor")
        direction = diagonal_preconditioner(optimizer, params)
        for name in params:
            direction[name] = direction[name] * entropy_grad[name]
        sample = self.actor_sample_fn(observations, observation_features, actor_encoding, noise)
        # A differentiated image encoder draws its own dropout masks: keep them off the global stream.
        devices = [self._device] if self._device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices, enabled=_with_prefix(params, "encoder") != {}):
            (_, actions), (d_log_prob, d_actions) = directional_derivative(sample, params, direction)
        if critic_action_grad is None:
            with torch.enable_grad():
                actions = actions.detach().requires_grad_(True)
                min_q = self._frozen_min_q(critic_encoding, actions)
                critic_action_grad = torch.autograd.grad(min_q.sum(), actions)[0]
        derivative = self.temperature * d_log_prob - (critic_action_grad.detach() * d_actions).sum(dim=-1)
        return -self.config.actor_lr * derivative, entropy.detach()

    def entropy_gradient(
        self, distribution: TanhMultivariateNormalDiag, params: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """``H = -mean_{i,k} log pi(a_ik|s_i)`` over ``num_action_samples`` reparameterised actions per state, and ``grad H``.

        Args:
            distribution: The actor's distribution on the batch, with its graph to ``params``.
            params: Parameters to differentiate, by name.

        Returns:
            ``(H, {name: dH/dparam})`` without gradient (zeros where H does not depend on one).
        """
        _, log_probs = squash_with_log_prob(
            distribution, diagonal_base(distribution).rsample((self.config.num_action_samples,))
        )
        entropy = -log_probs.mean()
        grads: tuple[Tensor | None, ...] = (None,) * len(params)
        if params and entropy.requires_grad:
            grads = torch.autograd.grad(entropy, list(params.values()), retain_graph=True, allow_unused=True)
        return entropy.detach(), {
            name: torch.zeros_like(param) if grad is None else grad
            for (name, param), grad in zip(params.items(), grads, strict=True)
        }

    def actor_distribution_fn(
        self, observations: dict[str, Tensor], observation_features: Any, actor_encoding: Tensor
    ) -> Callable[[dict[str, Tensor]], TanhMultivariateNormalDiag]:
        """``theta -> pi_theta(.|s)`` on the batch's states, for actor parameter values by name.

        Any subset of :meth:`actor_parameters` may be given; the others keep their values. The
        encoder runs only when its parameters are among them, otherwise ``actor_encoding`` is
        reused (shared or frozen encoder, as in the actor loss).
        """
        actor: Policy = self.policy.actor
        fixed_encoding = actor_encoding.detach()

        def distribution(params: dict[str, Tensor]) -> TanhMultivariateNormalDiag:
            encoding = fixed_encoding
            encoder_params = _with_prefix(params, "encoder")
            if encoder_params:
                encoding = functional_call(
                    actor.encoder,
                    encoder_params,
                    (observations,),
                    {"cache": observation_features, "detach": actor.encoder_is_shared},
                )
            return action_distribution(actor, encoding, params)

        return distribution

    def actor_sample_fn(
        self,
        observations: dict[str, Tensor],
        observation_features: Any,
        actor_encoding: Tensor,
        noise: Tensor,
    ) -> Callable[[dict[str, Tensor]], tuple[Tensor, Tensor]]:
        """``theta -> (log pi(a_i|s_i), a_i)`` with ``a_i = tanh(mu_i + sigma_i noise_i)``, ``[B]`` and ``[B, A]``.

        A function of actor parameter values by name, as :meth:`actor_distribution_fn`.
        """
        distribution_fn = self.actor_distribution_fn(observations, observation_features, actor_encoding)

        def sample(params: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
            distribution = distribution_fn(params)
            base = diagonal_base(distribution)
            actions, log_probs = squash_with_log_prob(distribution, base.loc + base.scale * noise)
            return log_probs, actions

        return sample

    def per_sample_loss_fn(
        self,
        observations: dict[str, Tensor],
        observation_features: Any,
        actor_encoding: Tensor,
        critic_encoding: Tensor,
        noise: Tensor,
    ) -> Callable[[dict[str, Tensor]], Tensor]:
        """``theta -> [B] l_i = alpha log pi(a_i|s_i) - min_j Q_j(s_i, a_i)`` at ``noise`` (:meth:`actor_sample_fn`).

        The per-sample actor loss the first-order form differentiates, as a function of actor
        parameter values by name; critics, alpha and noise are fixed.
        """
        sample = self.actor_sample_fn(observations, observation_features, actor_encoding, noise)
        alpha = self.temperature

        def per_sample_loss(params: dict[str, Tensor]) -> Tensor:
            log_probs, actions = sample(params)
            return alpha * log_probs - self._frozen_min_q(critic_encoding, actions)

        return per_sample_loss

    def _frozen_min_q(self, critic_encoding: Tensor, actions: Tensor) -> Tensor:
        """Min over the online critic heads, differentiable in ``actions`` only.

        The heads run with detached parameters, so the actor loss leaves no gradient in the
        critics (SAC's leaves one there that the next critic step zeroes).
        """
        inputs = torch.cat([critic_encoding, actions], dim=-1)
        q_values = [
            functional_call(head, {n: p.detach() for n, p in head.named_parameters()}, (inputs,))
            for head in self.critic_ensemble.critics
        ]
        return torch.stack(q_values, dim=0).squeeze(-1).min(dim=0)[0]

    def _monte_carlo_min_q(
        self,
        critic_encoding: Tensor,
        mc_actions: Tensor,
        anchor: tuple[Tensor, list[Tensor]] | None = None,
    ) -> Tensor:
        """``[K, B]`` min-ensemble Q of the Monte Carlo actions (no gradient).

        With the fast update (:mod:`.fast_update`) the K x B rows skip the state columns of each
        head's first layer (:func:`~.fast_update.heads_min_q`): its output is taken at the actor
        loss's action and offset (``anchor``: those ``[B, A]`` actions and the heads' first-layer
        outputs there), or else computed once per state; the other layers write into reused
        buffers. Without it the encoding is repeated for every action.
        """
        if self.config.fast_update:
            heads = list(self.critic_ensemble.critics)
            if anchor is not None and len(anchor[1]) == len(heads):
                offsets = mc_actions - anchor[0].detach()
                return heads_min_q(heads, anchor[1], offsets, self._estimate_workspace)
            return split_head_min_q(heads, critic_encoding, mc_actions, self._estimate_workspace)
        expanded = critic_encoding.unsqueeze(0).expand(mc_actions.shape[0], *critic_encoding.shape)
        return self._frozen_min_q(expanded, mc_actions)

    def configure_data_iterator(
        self,
        data_mixer: DataMixer,
        batch_size: int,
        *,
        async_prefetch: bool = True,
        queue_size: int = 2,
    ) -> Iterator[BatchType]:
        """LeRobot's batches, each with a full-length ``complementary_info["is_intervention"]``.

        Transitions without the flag are taken as human data in the offline (demo and
        intervention) buffer and as policy data in the online buffer. With an
        :class:`OnlineOfflineMixer` the two halves are flagged before they are concatenated,
        because ``concatenate_batch_transitions`` keeps a key only one half has at that half's
        length: LeRobot's mixer runs on the two buffers seen through :class:`FlaggedBuffer`.
        """
        if isinstance(data_mixer, OnlineOfflineMixer) and data_mixer.offline_buffer is not None:
            data_mixer = OnlineOfflineMixer(
                online_buffer=FlaggedBuffer(data_mixer.online_buffer, default=False),
                offline_buffer=FlaggedBuffer(data_mixer.offline_buffer, default=True),
                online_ratio=data_mixer.online_ratio,
            )
            return super().configure_data_iterator(
                data_mixer, batch_size, async_prefetch=async_prefetch, queue_size=queue_size
            )
        batches = super().configure_data_iterator(
            data_mixer, batch_size, async_prefetch=async_prefetch, queue_size=queue_size
        )
        return (with_intervention_flags(batch, default=False) for batch in batches)

    def _prepare_forward_batch(
        self, batch: BatchType, *, include_complementary_info: bool = True
    ) -> dict[str, Any]:
        forward_batch = super()._prepare_forward_batch(
            batch, include_complementary_info=include_complementary_info
        )
        info = batch.get("complementary_info") or {}
        flags = info.get(INTERVENTION_KEY)
        if flags is not None and flags.shape[0] == batch["reward"].shape[0]:
            forward_batch[INTERVENTION_KEY] = flags.bool()
        return forward_batch


def action_distribution(
    actor: Policy, encoding: Tensor, params: dict[str, Tensor] | None = None
) -> TanhMultivariateNormalDiag:
    """The actor's action distribution from an already-encoded observation (``Policy.forward``).

    Args:
        actor: The actor.
        encoding: Encoded observations.
        params: Optional values, by name in ``actor``, for some of its network, mean and std
            parameters (``torch.func.functional_call``); the others are the actor's own.
    """

    def layer(name: str, x: Tensor) -> Tensor:
        module = getattr(actor, name)
        values = _with_prefix(params, name) if params else {}
        return functional_call(module, values, (x,)) if values else module(x)

    outputs = layer("network", encoding)
    means = layer("mean_layer", outputs)
    if actor.fixed_std is None:
        std = torch.clamp(torch.exp(layer("std_layer", outputs)), actor.std_min, actor.std_max)
    else:
        std = actor.fixed_std.expand_as(means)
    return TanhMultivariateNormalDiag(loc=means, scale_diag=std)


def _with_prefix(params: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The entries of ``params`` under ``prefix.``, with the prefix removed."""
    return {name[len(prefix) + 1 :]: value for name, value in params.items() if name.startswith(prefix + ".")}


def reparameterised_sample(
    distribution: torch.distributions.TransformedDistribution,
) -> tuple[Tensor, Tensor]:
    """``distribution.rsample()`` done step by step, keeping the pre-squash sample.

    The same random stream and the same values as ``rsample`` (a base-Gaussian draw pushed
    through each transform); calling the transforms fills their cache, so ``log_prob`` of the
    returned actions is computed exactly as after ``rsample``.

    Returns:
        ``(pre-squash sample, actions)``, both ``[B, action_dim]`` with gradient.
    """
    x = distribution.base_dist.rsample()
    actions = x
    for transform in distribution.transforms:
        actions = transform(actions)
    return x, actions


def sample_with_log_prob(
    distribution: torch.distributions.TransformedDistribution, num_samples: int
) -> tuple[Tensor, Tensor]:
    """Draw ``num_samples`` actions per state and their log-probabilities.

    The base Gaussian is diagonal, so it is sampled and scored per dimension (no Cholesky
    solve), and the log-probability comes from the pre-squash sample by change of variables,
    never by inverting tanh, so saturated actions stay finite.

    Returns:
        ``([K, B, action_dim] actions, [K, B] log-probabilities)``.
    """
    diagonal = diagonal_base(distribution)
    return squash_with_log_prob(distribution, diagonal.sample((num_samples,)))


def diagonal_base(distribution: torch.distributions.TransformedDistribution) -> torch.distributions.Normal:
    """The actor's base Gaussian as independent per-dimension normals (its covariance is diagonal)."""
    base = distribution.base_dist
    return torch.distributions.Normal(base.loc, torch.diagonal(base.scale_tril, dim1=-2, dim2=-1))


def squash_with_log_prob(
    distribution: torch.distributions.TransformedDistribution, x: Tensor
) -> tuple[Tensor, Tensor]:
    """Push pre-squash samples ``x`` through ``distribution``'s transforms, with their log-probabilities.

    The log-probability is the base density of ``x`` minus the log-Jacobians (change of variables),
    never computed by inverting tanh, so saturated actions stay finite.

    Args:
        distribution: The actor's ``TanhMultivariateNormalDiag``.
        x: ``[..., B, action_dim]`` samples of its base Gaussian.

    Returns:
        ``(actions, log-probabilities)``, shaped ``x`` and ``x`` without its last dimension.
    """
    log_prob = diagonal_base(distribution).log_prob(x).sum(dim=-1)
    event_dim = len(distribution.event_shape)
    for transform in distribution.transforms:
        y = transform(x)
        log_prob = log_prob - _sum_rightmost(
            transform.log_abs_det_jacobian(x, y), event_dim - transform.codomain.event_dim
        )
        x = y
    return x, log_prob


def with_intervention_flags(batch: BatchType, default: bool) -> BatchType:
    """Give ``batch`` a bool ``complementary_info["is_intervention"]`` of full batch length.

    Args:
        batch: A replay batch; modified in place.
        default: Flag for transitions that carry none (True for demo data).

    Returns:
        The same batch.
    """
    size = batch["reward"].shape[0]
    info = batch.get("complementary_info")
    if info is None:
        info = {}
        batch["complementary_info"] = info
    flags = info.get(INTERVENTION_KEY)
    if flags is None or flags.shape[0] != size:
        info[INTERVENTION_KEY] = torch.full((size,), default, dtype=torch.bool, device=batch["reward"].device)
    else:
        info[INTERVENTION_KEY] = flags.reshape(size).bool()
    return batch


class FlaggedBuffer:
    """A replay buffer whose batches carry :func:`with_intervention_flags` (``default`` where none).

    Stands in for a ``ReplayBuffer`` in LeRobot's ``OnlineOfflineMixer``: its ``get_iterator``
    and ``sample`` are the buffer's, with each batch flagged before the mixer concatenates it.
    """

    def __init__(self, buffer: Any, default: bool):
        self.buffer = buffer
        self.default = default

    def get_iterator(
        self, batch_size: int, async_prefetch: bool = True, queue_size: int = 2
    ) -> Iterator[BatchType]:
        """The buffer's batches, flagged."""
        batches = self.buffer.get_iterator(
            batch_size=batch_size, async_prefetch=async_prefetch, queue_size=queue_size
        )
        return (with_intervention_flags(batch, default=self.default) for batch in batches)

    def sample(self, batch_size: int) -> BatchType:
        """One batch of the buffer, flagged."""
        return with_intervention_flags(self.buffer.sample(batch_size), default=self.default)

    def __len__(self) -> int:
        return len(self.buffer)
