"""The E2HiL math against plain, loop-by-loop computations of the paper's formulas."""

import math

import pytest
import torch

from lerobot_policy_e2hil.algorithm.influence import (
    e2hil_actor_loss,
    entropy_bounded_mask,
    influence_values,
    masked_mean,
    soft_advantage,
)


def plain_influence(log_probs, q_values, alpha, form, clamp):
    """c_i = -Cov_k(log pi, y), y = pi * A (policy_gradient) or A (natural), with Python floats."""
    out = []
    for lp_row, q_row in zip(log_probs.tolist(), q_values.tolist(), strict=True):
        k = len(lp_row)
        soft = [q - alpha * lp for lp, q in zip(lp_row, q_row, strict=True)]
        value = sum(soft) / k
        adv = [g - value for g in soft]
        if form == "policy_gradient":
            y = [min(math.exp(lp), clamp) * a for lp, a in zip(lp_row, adv, strict=True)]
        else:
            y = adv
        mean_lp, mean_y = sum(lp_row) / k, sum(y) / k
        cov = sum((lp - mean_lp) * (yy - mean_y) for lp, yy in zip(lp_row, y, strict=True)) / (k - 1)
        out.append(-cov)
    return torch.tensor(out, dtype=torch.float64)


LOG_PROBS = torch.tensor(
    [[0.5, -1.0, 2.0, 0.1], [1.2, 1.1, 0.9, 3.0], [-2.0, -0.5, -1.0, 0.0]], dtype=torch.float64
)
Q_VALUES = torch.tensor(
    [[1.0, 2.0, -0.5, 0.3], [0.0, 0.5, 1.5, -1.0], [2.0, 2.5, 1.0, 3.0]], dtype=torch.float64
)


@pytest.mark.parametrize("form", ["policy_gradient", "natural"])
def test_influence_matches_plain_formula(form):
    got = influence_values(LOG_PROBS, Q_VALUES, alpha=0.3, form=form, density_clamp=1e6)
    want = plain_influence(LOG_PROBS, Q_VALUES, 0.3, form, 1e6)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_density_clamp_applies_to_pi_only_in_policy_gradient_form():
    clamp = 2.0  # exp(2.0) and exp(3.0) exceed it
    got = influence_values(LOG_PROBS, Q_VALUES, 0.3, "policy_gradient", density_clamp=clamp)
    torch.testing.assert_close(got, plain_influence(LOG_PROBS, Q_VALUES, 0.3, "policy_gradient", clamp))
    unclamped = influence_values(LOG_PROBS, Q_VALUES, 0.3, "policy_gradient", density_clamp=1e6)
    assert not torch.allclose(got, unclamped)
    natural = influence_values(LOG_PROBS, Q_VALUES, 0.3, "natural", density_clamp=clamp)
    torch.testing.assert_close(natural, influence_values(LOG_PROBS, Q_VALUES, 0.3, "natural", 1e6))


def test_soft_advantage_is_centred_per_state():
    adv = soft_advantage(LOG_PROBS, Q_VALUES, 0.3)
    torch.testing.assert_close(adv.sum(dim=-1), torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(adv[0, 0], (1.0 - 0.3 * 0.5) - (Q_VALUES[0] - 0.3 * LOG_PROBS[0]).mean())


def test_influence_is_stop_gradient():
    log_probs = LOG_PROBS.clone().requires_grad_(True)
    q_values = Q_VALUES.clone().requires_grad_(True)
    assert not influence_values(log_probs, q_values, 0.3).requires_grad


def test_influence_rejects_single_action_and_unknown_form():
    with pytest.raises(ValueError, match="at least 2"):
        influence_values(LOG_PROBS[:, :1], Q_VALUES[:, :1], 0.3)
    with pytest.raises(ValueError, match="allowed values"):
        influence_values(LOG_PROBS, Q_VALUES, 0.3, form="fisher")


def test_mask_keeps_values_between_batch_quantiles():
    c = torch.tensor([-10.0, 0.0, 1.0, -2.0, 3.0, 4.0, -5.0, 6.0, 7.0, 8.0, 9.0])
    mask, lower, upper = entropy_bounded_mask(c, 0.1, 0.9)
    magnitudes = sorted(abs(v) for v in c.tolist())  # 0..10, 11 values: q0.1 = 1, q0.9 = 9
    assert (lower.item(), upper.item()) == (magnitudes[1], magnitudes[9])
    assert mask.tolist() == [False, False, True, True, True, True, True, True, True, True, True]


def test_mask_with_full_quantile_range_keeps_everything():
    c = torch.randn(64, generator=torch.Generator().manual_seed(0))
    mask, _, _ = entropy_bounded_mask(c, 0.0, 1.0)
    assert bool(mask.all())


def test_mask_drops_non_finite_values_and_ignores_them_in_bounds():
    c = torch.tensor([1.0, 2.0, float("nan"), 3.0, float("inf"), -4.0])
    mask, lower, upper = entropy_bounded_mask(c, 0.0, 1.0)
    assert mask.tolist() == [True, True, False, True, False, True]
    assert (lower.item(), upper.item()) == (1.0, 4.0)
    mask, lower, _ = entropy_bounded_mask(torch.full((4,), float("nan")), 0.05, 0.9)
    assert not bool(mask.any()) and math.isnan(lower.item())


def test_masked_mean_equals_plain_ratio_and_blocks_gradient_of_masked_entries():
    values = torch.tensor([1.0, float("nan"), 3.0, float("inf")], requires_grad=True)
    mask = torch.tensor([True, False, True, False])
    out = masked_mean(values, mask, eps=1e-8)
    assert out.item() == pytest.approx(2.0)
    out.backward()
    assert values.grad.tolist() == pytest.approx([0.5, 0.0, 0.5, 0.0])


def _loss_inputs(batch_size=16, k=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    per_sample = torch.randn(batch_size, generator=gen, requires_grad=True)
    return per_sample, torch.randn(batch_size, k, generator=gen), torch.randn(batch_size, k, generator=gen)


@pytest.mark.parametrize("form", ["policy_gradient", "natural"])
def test_actor_loss_matches_plain_masked_average(form):
    per_sample, log_probs, q_values = _loss_inputs()
    loss, info = e2hil_actor_loss(per_sample, log_probs, q_values, 0.2, form=form)
    c = plain_influence(log_probs.double(), q_values.double(), 0.2, form, 1e6)
    magnitudes = c.abs()
    lower, upper = torch.quantile(magnitudes, 0.05).item(), torch.quantile(magnitudes, 0.90).item()
    keep = [(lower <= m <= upper) for m in magnitudes.tolist()]
    want = sum(v for v, k in zip(per_sample.tolist(), keep, strict=True) if k) / sum(keep)
    assert loss.item() == pytest.approx(want, rel=1e-5)
    assert info["e2hil/kept_fraction"].item() == pytest.approx(sum(keep) / len(keep))
    assert info["mask"].tolist() == keep
    assert info["e2hil/c_mean"].item() == pytest.approx(c.mean().item(), rel=1e-4)
    assert info["e2hil/entropy"].item() == pytest.approx(-log_probs.mean().item())
    assert sum(keep) < len(keep)  # the bounds really drop something here


def test_actor_loss_with_selection_off_is_the_plain_mean():
    per_sample, log_probs, q_values = _loss_inputs()
    loss, info = e2hil_actor_loss(per_sample, log_probs, q_values, 0.2, selection=False)
    assert loss.item() == pytest.approx(per_sample.mean().item(), rel=1e-6)
    assert info["e2hil/kept_fraction"].item() == 1.0


def test_all_influences_tied_keeps_everything_and_stays_finite():
    per_sample = torch.randn(8, requires_grad=True)
    log_probs = torch.zeros(8, 4)  # constant log pi: every covariance is exactly 0
    loss, info = e2hil_actor_loss(per_sample, log_probs, torch.randn(8, 4), 0.2)
    assert info["e2hil/kept_fraction"].item() == 1.0
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(per_sample.grad).all()


def test_nothing_kept_gives_zero_loss_and_zero_gradient():
    per_sample = torch.randn(2, requires_grad=True)
    # Two states, |c| = {a, b}: quantiles 0.4 and 0.6 fall strictly between them, keeping none.
    log_probs = torch.tensor([[0.0, 1.0], [0.0, 2.0]])
    q_values = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    loss, info = e2hil_actor_loss(
        per_sample, log_probs, q_values, 1.0, lower_quantile=0.4, upper_quantile=0.6, form="natural"
    )
    assert info["e2hil/kept_fraction"].item() == 0.0
    assert loss.item() == 0.0
    loss.backward()
    assert per_sample.grad.tolist() == [0.0, 0.0]
    assert math.isnan(info["e2hil/c_mean_kept"].item())


def test_kept_fraction_by_sample_source():
    per_sample, log_probs, q_values = _loss_inputs(batch_size=20)
    human = torch.tensor([True] * 5 + [False] * 15)
    _, info = e2hil_actor_loss(per_sample, log_probs, q_values, 0.2, is_intervention=human)
    mask, _, _ = entropy_bounded_mask(influence_values(log_probs, q_values, 0.2), 0.05, 0.90)
    assert info["e2hil/kept_fraction_intervention"].item() == pytest.approx(mask[:5].float().mean().item())
    assert info["e2hil/kept_fraction_policy"].item() == pytest.approx(mask[5:].float().mean().item())
    assert info["e2hil/intervention_fraction"].item() == 0.25
