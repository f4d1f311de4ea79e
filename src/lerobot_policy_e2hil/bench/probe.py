"""Measurements around the actor step that leave the training run untouched.

:class:`ActorStepProbe` wraps the algorithm's ``_compute_loss_actor`` on the instance: on
selected updates, just before the actor loss is computed (after that update's critic step), it
estimates the policy entropy on the actor's batch; after ``update()`` returns it estimates it
again on the same states with the same noise, so ``after - before`` is the change the actor step
made (common random numbers: the Monte Carlo noise cancels). It also records the per-sample
influence ``c`` of that step with the sample's intervention flag:

* E2HiL: the algorithm's own ``last_influence`` and ``last_mask`` (the step's values);
* SAC: ``c`` computed here with the same estimator (:func:`~..algorithm.influence.influence_values`),
  on Monte Carlo actions drawn from a private ``torch.Generator``. SAC's update is not
  changed: everything runs under ``no_grad`` and no draw touches torch's global generator
  (tests/test_bench_trainer.py checks SAC's weights bit for bit with and without the probe).

Predicted entropy change of a step (paper Eq. 9-10 with the step size put back):
``dH_pred = actor_lr * mean_{i kept} c_i``, the mean over the samples that entered the actor
loss (all of them for SAC).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..algorithm.e2hil_algorithm import (
    INTERVENTION_KEY,
    action_distribution,
    diagonal_base,
    squash_with_log_prob,
)
from ..algorithm.influence import entropy_bounded_mask, influence_values


def log_prob_from_noise(
    distribution: torch.distributions.TransformedDistribution, noise: Tensor
) -> tuple[Tensor, Tensor]:
    """Actions ``T(loc + scale * noise)`` of the actor's tanh-Gaussian and their log-probabilities.

    Args:
        distribution: The actor's ``TanhMultivariateNormalDiag`` for ``B`` states.
        noise: ``[M, B, action_dim]`` standard normal draws.

    Returns:
        ``([M, B, action_dim] actions, [M, B] log-probabilities)`` (change of variables from
        the pre-squash sample, never by inverting tanh).
    """
    base = diagonal_base(distribution)
    return squash_with_log_prob(distribution, base.loc + base.scale * noise)


def entropy_from_noise(distribution: torch.distributions.TransformedDistribution, noise: Tensor) -> float:
    """Monte Carlo policy entropy ``-mean_{m,i} log pi(a_mi | s_i)`` with the given noise (float64 mean)."""
    _, log_prob = log_prob_from_noise(distribution, noise)
    return float(-log_prob.double().mean())


def min_q_heads(critic_ensemble: Any, critic_encoding: Tensor, actions: Tensor) -> Tensor:
    """Min over the online critic heads of ``Q(s, a)`` for ``[..., B, feat]`` features and actions."""
    inputs = torch.cat([critic_encoding.expand(*actions.shape[:-1], -1), actions], dim=-1)
    q_values = torch.stack([head(inputs).squeeze(-1) for head in critic_ensemble.critics], dim=0)
    return q_values.min(dim=0)[0]


@dataclass
class ProbeSettings:
    """What the probe measures and how often.

    Args:
        every: Probe every ``every``-th actor step (1: all).
        entropy_samples: Monte Carlo actions per state for each entropy estimate.
        num_action_samples: K for SAC's ``c`` (E2HiL uses its own config's K).
        lower_quantile: Bounds of the would-be mask reported for SAC (E2HiL's defaults).
        upper_quantile: See ``lower_quantile``.
        influence_form: Estimator form for SAC's ``c``.
        density_clamp: Clamp on pi in the ``policy_gradient`` form.
        seed: Seed of the probe's private generator.
    """

    every: int = 5
    entropy_samples: int = 32
    num_action_samples: int = 8
    lower_quantile: float = 0.05
    upper_quantile: float = 0.90
    influence_form: str = "policy_gradient"
    density_clamp: float = 1e6
    seed: int = 0


@dataclass
class ProbeRecords:
    """Everything the probe measured in a run."""

    steps: list[dict[str, float]] = field(default_factory=list)
    abs_c: list[np.ndarray] = field(default_factory=list)
    is_intervention: list[np.ndarray] = field(default_factory=list)
    kept: list[np.ndarray] = field(default_factory=list)
    dropped_high: list[np.ndarray] = field(default_factory=list)
    opt_step: list[np.ndarray] = field(default_factory=list)

    def sample_arrays(self) -> dict[str, np.ndarray]:
        """Per-sample arrays over all probed steps (for the Table II analysis)."""

        def cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

        return {
            "abs_c": cat(self.abs_c, np.float32),
            "is_intervention": cat(self.is_intervention, bool),
            "kept": cat(self.kept, bool),
            "dropped_high": cat(self.dropped_high, bool),
            "opt_step": cat(self.opt_step, np.int32),
        }


class ActorStepProbe:
    """Entropy change and per-sample influence of selected actor steps (see the module docstring).

    Args:
        algorithm: A ``SACAlgorithm`` (or subclass) whose ``_compute_loss_actor`` is wrapped.
        batch_source: Object whose ``last`` attribute is the batch the actor loss receives
            (its ``complementary_info`` carries the intervention flags).
        settings: What to measure.
    """

    def __init__(self, algorithm: Any, batch_source: Any, settings: ProbeSettings):
        self.algorithm = algorithm
        self.batch_source = batch_source
        self.settings = settings
        self.generator = torch.Generator().manual_seed(int(settings.seed))
        self.records = ProbeRecords()
        self.actor_steps = 0
        self._pending: dict[str, Any] | None = None
        self.is_e2hil = hasattr(algorithm, "last_influence")
        original = algorithm._compute_loss_actor

        def compute_loss_actor(batch: dict[str, Any]) -> Tensor:
            if self.actor_steps % self.settings.every == 0:
                self._before(batch)
            self.actor_steps += 1
            return original(batch)

        algorithm._compute_loss_actor = compute_loss_actor

    def _distribution(self, batch: dict[str, Any]) -> Any:
        actor = self.algorithm.policy.actor
        encoding = actor.encoder(batch["state"], cache=batch.get("observation_feature"), detach=True)
        return action_distribution(actor, encoding)

    @torch.no_grad()
    def _before(self, batch: dict[str, Any]) -> None:
        distribution = self._distribution(batch)
        batch_size, action_dim = distribution.base_dist.loc.shape
        noise = torch.randn(
            (self.settings.entropy_samples, batch_size, action_dim), generator=self.generator
        ).to(distribution.base_dist.loc.device)
        pending: dict[str, Any] = {
            "batch": batch,
            "noise": noise,
            "entropy_before": entropy_from_noise(distribution, noise),
            "flags": self._intervention_flags(batch_size),
            "alpha": self.algorithm.temperature,
        }
        if not self.is_e2hil:
            pending["influence"] = self._influence(batch, distribution)
        self._pending = pending

    def _influence(self, batch: dict[str, Any], distribution: Any) -> Tensor:
        s = self.settings
        batch_size, action_dim = distribution.base_dist.loc.shape
        noise = torch.randn((s.num_action_samples, batch_size, action_dim), generator=self.generator)
        actions, log_probs = log_prob_from_noise(distribution, noise.to(distribution.base_dist.loc.device))
        critics = self.algorithm.critic_ensemble
        device = self.algorithm._device
        encoding = critics.encoder(
            {k: v.to(device) for k, v in batch["state"].items()}, cache=batch.get("observation_feature")
        )
        q_values = min_q_heads(critics, encoding.unsqueeze(0), actions)
        return influence_values(
            log_probs.transpose(0, 1),
            q_values.transpose(0, 1),
            self.algorithm.temperature,
            s.influence_form,
            s.density_clamp,
        )

    def _intervention_flags(self, batch_size: int) -> np.ndarray:
        last = getattr(self.batch_source, "last", None) or {}
        flags = (last.get("complementary_info") or {}).get(INTERVENTION_KEY)
        if flags is None or flags.shape[0] != batch_size:
            return np.zeros(batch_size, dtype=bool)
        return flags.reshape(batch_size).bool().cpu().numpy()

    @torch.no_grad()
    def after_update(self, opt_step: int, env_step: int, actor_lr: float) -> dict[str, float] | None:
        """Finish a pending probe once ``update()`` has returned; returns its record (or None).

        Args:
            opt_step: The algorithm's optimisation step after the update.
            env_step: Env steps done so far.
            actor_lr: The actor's step size eta in ``dH_pred = eta * mean c``.
        """
        pending, self._pending = self._pending, None
        if pending is None:
            return None
        entropy_after = entropy_from_noise(self._distribution(pending["batch"]), pending["noise"])
        if self.is_e2hil:
            influence = self.algorithm.last_influence.detach().float().cpu()
            kept = self.algorithm.last_mask.detach().bool().cpu()
        else:
            influence = pending["influence"].float().cpu()
            s = self.settings
            kept, _, _ = entropy_bounded_mask(influence, s.lower_quantile, s.upper_quantile)
        abs_c = influence.abs()
        finite = torch.isfinite(influence)
        step_mask = (kept & finite) if self.is_e2hil else finite
        c_step = _mean(influence[step_mask])
        record = {
            "opt_step": int(opt_step),
            "env_step": int(env_step),
            "entropy_before": pending["entropy_before"],
            "entropy_after": entropy_after,
            "measured": entropy_after - pending["entropy_before"],
            "c_mean": _mean(influence[finite]),
            "c_mean_step": c_step,
            "predicted": actor_lr * c_step,
            "kept_fraction": float(kept.float().mean()),
            "alpha": pending["alpha"],
            "intervention_fraction": float(pending["flags"].mean()),
        }
        self.records.steps.append(record)
        median = torch.nanmedian(abs_c) if bool(finite.any()) else torch.tensor(float("nan"))
        self.records.abs_c.append(abs_c.numpy())
        self.records.is_intervention.append(pending["flags"])
        self.records.kept.append(kept.numpy())
        self.records.dropped_high.append((~kept & (abs_c > median)).numpy())
        self.records.opt_step.append(np.full(abs_c.shape[0], opt_step, dtype=np.int32))
        return record


def _mean(values: Tensor) -> float:
    return float(values.double().mean()) if values.numel() else math.nan
