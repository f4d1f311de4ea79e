"""The E2HiL math as pure tensor functions (paper Eq. 9-12, and the first-order estimate).

Shapes: ``B`` states, ``K`` Monte Carlo actions per state. Nothing here touches a policy,
a critic or an environment, so each function can be checked against a hand computation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from .configuration_e2hil import COVARIANCE_FORMS


def soft_advantage(log_probs: Tensor, q_values: Tensor, alpha: float) -> Tensor:
    """Soft advantage of each sampled action against the state's entropy-regularised value.

    ``g_ik = Q(s_i, a_ik) - alpha * log pi(a_ik|s_i)``, ``V_i = mean_k g_ik``, ``A_ik = g_ik - V_i``.

    Args:
        log_probs: ``[B, K]`` log pi(a_ik | s_i).
        q_values: ``[B, K]`` min over the critic ensemble of Q(s_i, a_ik).
        alpha: SAC temperature.

    Returns:
        ``[B, K]`` soft advantages; they sum to zero over K for every state.
    """
    soft_values = q_values - alpha * log_probs
    return soft_values - soft_values.mean(dim=-1, keepdim=True)


def influence_values(
    log_probs: Tensor,
    q_values: Tensor,
    alpha: float,
    form: str = "policy_gradient",
    density_clamp: float = 1e6,
) -> Tensor:
    """Per-state influence on the policy entropy, ``c_i`` (Eq. 9-10, eta dropped).

    ``policy_gradient``: ``c_i = -Cov_k(log pi, min(pi, clamp) * A)``;
    ``natural``: ``c_i = -Cov_k(log pi, A)``. The covariance over the K actions is the unbiased
    sample covariance (divides by K - 1). The result carries no gradient.

    Args:
        log_probs: ``[B, K]`` log pi(a_ik | s_i).
        q_values: ``[B, K]`` min-ensemble Q of the sampled actions.
        alpha: SAC temperature.
        form: ``"policy_gradient"`` or ``"natural"``.
        density_clamp: Upper bound applied to pi(a|s) in the ``policy_gradient`` form.

    Returns:
        ``[B]`` influence values (negative: the sample is predicted to lower the entropy).
    """
    if form not in COVARIANCE_FORMS:
        raise ValueError(f"influence form {form!r} is invalid; allowed values: {COVARIANCE_FORMS}")
    num_samples = log_probs.shape[-1]
    if num_samples < 2:
        raise ValueError(f"need at least 2 actions per state for a covariance, got K={num_samples}")
    log_probs = log_probs.detach()
    advantages = soft_advantage(log_probs, q_values.detach(), alpha)
    if form == "policy_gradient":
        weighted = log_probs.exp().clamp(max=density_clamp) * advantages
    else:
        weighted = advantages
    centred_log_probs = log_probs - log_probs.mean(dim=-1, keepdim=True)
    centred_weighted = weighted - weighted.mean(dim=-1, keepdim=True)
    covariance = (centred_log_probs * centred_weighted).sum(dim=-1) / (num_samples - 1)
    return -covariance


def entropy_bounded_mask(
    influence: Tensor, lower_quantile: float, upper_quantile: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Keep the samples whose ``|c|`` lies inside the batch quantile bounds (Eq. 11).

    ``l = quantile_lower(|c|)``, ``u = quantile_upper(|c|)``, ``I_i = 1[l <= |c_i| <= u]``
    (linear interpolation between order statistics, as ``torch.quantile``). Non-finite values
    never enter the bounds and are never kept; if no value is finite, nothing is kept and both
    bounds are NaN.

    Args:
        influence: ``[B]`` influence values c.
        lower_quantile: Quantile in [0, 1] giving the lower bound on |c|.
        upper_quantile: Quantile in [0, 1] giving the upper bound on |c|.

    Returns:
        ``(mask, lower, upper)``: a ``[B]`` bool mask and the two scalar bounds.
    """
    magnitude = influence.detach().abs()
    finite = torch.isfinite(magnitude)
    if not bool(finite.any()):
        nan = magnitude.new_tensor(float("nan"))
        return torch.zeros_like(finite), nan, nan
    finite_values = magnitude[finite].float()
    bounds = torch.quantile(finite_values, finite_values.new_tensor([lower_quantile, upper_quantile]))
    lower, upper = bounds[0].to(magnitude.dtype), bounds[1].to(magnitude.dtype)
    mask = finite & (magnitude >= lower) & (magnitude <= upper)
    return mask, lower, upper


def same_count_random_mask(mask: Tensor, generator: torch.Generator) -> Tensor:
    """A uniformly random ``[B]`` mask with as many True entries as ``mask`` (the control rule).

    Which samples are kept depends only on ``generator``, never on ``mask``'s positions or on
    any influence value; a full or empty ``mask`` is returned as a copy without a draw.

    Args:
        mask: ``[B]`` bool mask whose count is kept (E2HiL's band on this batch).
        generator: CPU generator the positions are drawn from.

    Returns:
        ``[B]`` bool mask on ``mask``'s device.
    """
    size, kept = mask.numel(), int(mask.sum())
    if kept in (0, size):
        return mask.clone()
    order = torch.randperm(size, generator=generator)[:kept].to(mask.device)
    return torch.zeros_like(mask).index_fill_(0, order, True)


def masked_mean(values: Tensor, mask: Tensor, eps: float) -> Tensor:
    """``sum_i I_i v_i / (sum_i I_i + eps)`` (Eq. 12); an empty mask gives exactly 0.

    Masked entries go through ``torch.where``, so a NaN or inf there reaches neither the value
    nor the gradient.

    Args:
        values: ``[B]`` per-sample values.
        mask: ``[B]`` bool, True where the sample is kept.
        eps: Positive constant added to the count.

    Returns:
        Scalar tensor.
    """
    kept = torch.where(mask, values, torch.zeros_like(values))
    return kept.sum() / (mask.sum().to(values.dtype) + eps)


def e2hil_actor_loss(
    per_sample_loss: Tensor,
    mc_log_probs: Tensor,
    mc_q_values: Tensor,
    alpha: float,
    *,
    lower_quantile: float = 0.05,
    upper_quantile: float = 0.90,
    form: str = "policy_gradient",
    density_clamp: float = 1e6,
    eps: float = 1e-8,
    selection: bool = True,
    is_intervention: Tensor | None = None,
    random_mask: torch.Generator | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """E2HiL actor loss from SAC's per-sample actor loss and K Monte Carlo actions per state.

    Args:
        per_sample_loss: ``[B]`` ``alpha * log pi(a~|s) - min_j Q_j(s, a~)`` with gradient.
        mc_log_probs: ``[B, K]`` log-probabilities of K fresh actions per state.
        mc_q_values: ``[B, K]`` min-ensemble Q of those actions.
        alpha: SAC temperature.
        lower_quantile: Lower quantile of |c| (Eq. 11).
        upper_quantile: Upper quantile of |c| (Eq. 11).
        form: Influence form, ``"policy_gradient"`` or ``"natural"``.
        density_clamp: Clamp on pi in the ``policy_gradient`` form.
        eps: Added to the kept count in the masked mean.
        selection: If False every sample is kept (SAC's actor loss); diagnostics are still computed.
        is_intervention: Optional ``[B]`` bool, True for human (intervention or demo) samples.
        random_mask: As :func:`selected_actor_loss` (the control rule).

    Returns:
        ``(loss, info)`` as :func:`selected_actor_loss`.
    """
    influence = influence_values(mc_log_probs, mc_q_values, alpha, form, density_clamp)
    return selected_actor_loss(
        per_sample_loss,
        influence,
        -mc_log_probs.detach().mean(),
        lower_quantile=lower_quantile,
        upper_quantile=upper_quantile,
        eps=eps,
        selection=selection,
        is_intervention=is_intervention,
        random_mask=random_mask,
    )


def selected_actor_loss(
    per_sample_loss: Tensor,
    influence: Tensor,
    entropy: Tensor,
    *,
    lower_quantile: float = 0.05,
    upper_quantile: float = 0.90,
    eps: float = 1e-8,
    selection: bool = True,
    is_intervention: Tensor | None = None,
    random_mask: torch.Generator | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Entropy-bounded selection (Eq. 11) and masked mean (Eq. 12) for given influence values.

    Args:
        per_sample_loss: ``[B]`` SAC's per-sample actor loss, with gradient.
        influence: ``[B]`` influence values c of any form (no gradient).
        entropy: Scalar Monte Carlo entropy estimate, logged as ``e2hil/entropy``.
        lower_quantile: Lower quantile of |c| (Eq. 11).
        upper_quantile: Upper quantile of |c| (Eq. 11).
        eps: Added to the kept count in the masked mean.
        selection: If False every sample is kept (SAC's actor loss); diagnostics are still computed.
        is_intervention: Optional ``[B]`` bool, True for human (intervention or demo) samples.
        random_mask: If given, the control rule: the band's mask is replaced by
            :func:`same_count_random_mask` drawn from this generator (same count, samples chosen
            independently of ``c``); the bounds are still the band's.

    Returns:
        ``(loss, info)``. ``info`` maps names to detached tensors: per-sample ``"influence"``
        and ``"mask"`` (``[B]``), and the scalar diagnostics logged under ``e2hil/`` (formulas in
        docs/metrics.md); a diagnostic that has no sample to average over is NaN.
    """
    influence = influence.detach()
    mask, lower, upper = entropy_bounded_mask(influence, lower_quantile, upper_quantile)
    if not selection:
        mask = torch.ones_like(mask)
    elif random_mask is not None:
        mask = same_count_random_mask(mask, random_mask)
    loss = masked_mean(per_sample_loss, mask, eps)

    finite = torch.isfinite(influence)
    info: dict[str, Tensor] = {
        "influence": influence,
        "mask": mask,
        "e2hil/kept_fraction": mask.float().mean(),
        "e2hil/c_abs_lower": lower,
        "e2hil/c_abs_upper": upper,
        "e2hil/c_mean": _mean_where(influence, finite),
        "e2hil/c_mean_kept": _mean_where(influence, mask & finite),
        "e2hil/entropy": entropy.detach(),
    }
    if is_intervention is not None:
        human = is_intervention.bool()
        info["e2hil/kept_fraction_intervention"] = _mean_where(mask.float(), human)
        info["e2hil/kept_fraction_policy"] = _mean_where(mask.float(), ~human)
        info["e2hil/intervention_fraction"] = human.float().mean()
    return loss, info


def diagonal_preconditioner(
    optimizer: torch.optim.Optimizer | None, params: Mapping[str, Tensor]
) -> dict[str, Tensor]:
    """Diagonal preconditioner ``P`` of the optimiser's next step, per parameter.

    Adam and AdamW: ``P = 1 / (sqrt(v_hat) + eps)`` with ``v_hat = beta2 * v / (1 - beta2^(t+1))``,
    the second moment the next step divides by (its bias correction for step ``t + 1``) without
    the new gradient's ``(1 - beta2) g^2`` term; AMSGrad takes the running maximum as Adam does.
    Identity for a parameter without optimiser state (before the first step), and for every
    other optimiser (SGD's step is ``lr * g``).

    Args:
        optimizer: The optimiser that steps ``params`` (None: identity).
        params: Parameters by name.

    Returns:
        ``{name: P}``, each shaped like its parameter, without gradient.
    """
    adam = isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW))
    groups = {}
    if adam:
        groups = {id(p): group for group in optimizer.param_groups for p in group["params"]}
    result = {}
    for name, param in params.items():
        state = optimizer.state.get(param, {}) if adam else {}
        group = groups.get(id(param))
        if group is None or "exp_avg_sq" not in state or float(state["step"]) < 1:
            result[name] = torch.ones_like(param, memory_format=torch.preserve_format).detach()
            continue
        beta2, eps = group["betas"][1], group["eps"]
        second = beta2 * state["exp_avg_sq"]
        if group.get("amsgrad") and "max_exp_avg_sq" in state:
            second = torch.maximum(state["max_exp_avg_sq"], second)
        correction = 1.0 - beta2 ** (float(state["step"]) + 1.0)
        result[name] = ((second / correction).sqrt() + eps).reciprocal().detach()
    return result


def first_order_influence(
    per_sample_loss_fn: Callable[[dict[str, Tensor]], Tensor],
    params: Mapping[str, Tensor],
    entropy_grad: Mapping[str, Tensor],
    preconditioner: Mapping[str, Tensor],
    lr: float,
) -> Tensor:
    """First-order entropy change of a step on each sample alone: ``c_i = -lr <grad l_i, P grad H>``.

    All ``B`` values come from one forward-mode product of the per-sample loss vector along
    ``u = P * grad H`` (``torch.func.jvp``); per-sample gradients are never formed.

    Args:
        per_sample_loss_fn: Maps ``{name: parameter value}`` to the ``[B]`` per-sample loss.
        params: Current parameter values by name (the point of the product).
        entropy_grad: ``grad_theta H`` by name.
        preconditioner: Diagonal ``P`` by name (:func:`diagonal_preconditioner`).
        lr: Step size of the optimiser.

    Returns:
        ``[B]`` influence values, without gradient.
    """
    direction = {name: preconditioner[name] * entropy_grad[name] for name in params}
    _, directional = directional_derivative(per_sample_loss_fn, params, direction)
    return -lr * directional


def directional_derivative(
    fn: Callable, params: Mapping[str, Tensor], direction: Mapping[str, Tensor]
) -> tuple:
    """``(fn(params), d/dt fn(params + t * direction) at t = 0)``: one forward-mode product (``torch.func.jvp``).

    Args:
        fn: Maps ``{name: value}`` to a tensor or a tuple of tensors.
        params: The point, by name.
        direction: The tangent, by name (same keys and shapes).

    Returns:
        ``(value, derivative)``, each shaped as ``fn``'s output, without gradient.
    """
    primals = {name: value.detach() for name, value in params.items()}
    tangents = {name: direction[name].detach() for name in primals}
    value, derivative = torch.func.jvp(fn, (primals,), (tangents,))
    return _detached(value), _detached(derivative)


def _detached(value: Tensor | tuple[Tensor, ...]) -> Tensor | tuple[Tensor, ...]:
    return tuple(v.detach() for v in value) if isinstance(value, tuple) else value.detach()


def _mean_where(values: Tensor, where: Tensor) -> Tensor:
    """Mean of ``values[where]``; NaN when ``where`` selects nothing."""
    if not bool(where.any()):
        return values.new_tensor(float("nan"))
    return values[where].mean()
