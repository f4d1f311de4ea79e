"""``E2HiLAlgorithm``: LeRobot's SAC with the E2HiL actor loss."""

from __future__ import annotations

from collections.abc import Iterator
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

from .configuration_e2hil import E2HiLAlgorithmConfig
from .fast_update import split_head_min_q
from .influence import e2hil_actor_loss
from .registry import register_algorithm

INTERVENTION_KEY = TeleopEvents.IS_INTERVENTION.value


@register_algorithm("e2hil")
class E2HiLAlgorithm(SACAlgorithm):
    """SAC/RLPD whose actor update keeps only samples of moderate entropy influence.

    Overrides :meth:`_compute_loss_actor` (the loss) and, to carry ``is_intervention`` into
    the actor's batch for diagnostics, :meth:`configure_data_iterator` and
    :meth:`_prepare_forward_batch`. ``update()`` is SAC's; the diagnostics of the last actor
    step are added to ``TrainingStats.extra``.
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
        actions_pi = distribution.rsample()
        log_probs = distribution.log_prob(actions_pi)

        device = self._device
        with torch.no_grad():
            critic_encoding = self.critic_ensemble.encoder(
                {k: v.to(device) for k, v in observations.items()}, cache=observation_features
            )
        min_q = self._frozen_min_q(critic_encoding, actions_pi)
        per_sample_loss = self.temperature * log_probs - min_q

        with torch.no_grad():
            mc_actions, mc_log_probs = sample_with_log_prob(distribution, self.config.num_action_samples)
            mc_q = self._monte_carlo_min_q(critic_encoding, mc_actions)

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
        )
        self.last_influence = info.pop("influence")
        self.last_mask = info.pop("mask")
        self.last_actor_info = {name: value.item() for name, value in info.items()}
        return loss

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

    def _monte_carlo_min_q(self, critic_encoding: Tensor, mc_actions: Tensor) -> Tensor:
        """``[K, B]`` min-ensemble Q of the Monte Carlo actions (no gradient).

        With the fast update (:mod:`.fast_update`) each head's first layer takes the state part of
        its input once per state; otherwise the encoding is repeated for every action.
        """
        if getattr(self, "fast_update", False):
            return split_head_min_q(self.critic_ensemble.critics, critic_encoding, mc_actions)
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
        length.
        """
        if isinstance(data_mixer, OnlineOfflineMixer) and data_mixer.offline_buffer is not None:
            return _flagged_online_offline_batches(data_mixer, batch_size, async_prefetch, queue_size)
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


def action_distribution(actor: Policy, encoding: Tensor) -> TanhMultivariateNormalDiag:
    """The actor's action distribution from an already-encoded observation (``Policy.forward``)."""
    outputs = actor.network(encoding)
    means = actor.mean_layer(outputs)
    if actor.fixed_std is None:
        std = torch.clamp(torch.exp(actor.std_layer(outputs)), actor.std_min, actor.std_max)
    else:
        std = actor.fixed_std.expand_as(means)
    return TanhMultivariateNormalDiag(loc=means, scale_diag=std)


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


def _flagged_online_offline_batches(
    mixer: OnlineOfflineMixer, batch_size: int, async_prefetch: bool, queue_size: int
) -> Iterator[BatchType]:
    from lerobot.rl.buffer import concatenate_batch_transitions

    n_online = max(1, int(batch_size * mixer.online_ratio))
    online = mixer.online_buffer.get_iterator(
        batch_size=n_online, async_prefetch=async_prefetch, queue_size=queue_size
    )
    offline = mixer.offline_buffer.get_iterator(
        batch_size=batch_size - n_online, async_prefetch=async_prefetch, queue_size=queue_size
    )
    while True:
        yield concatenate_batch_transitions(
            with_intervention_flags(next(online), default=False),
            with_intervention_flags(next(offline), default=True),
        )
