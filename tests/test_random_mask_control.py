"""The control rule (``random_mask``): the band's count, samples drawn independently of ``c``."""

import pytest
import torch

from lerobot_policy_e2hil.algorithm.configuration_e2hil import E2HiLConfigError
from lerobot_policy_e2hil.algorithm.influence import (
    entropy_bounded_mask,
    same_count_random_mask,
    selected_actor_loss,
)
from lerobot_policy_e2hil.synthetic import random_batch
from test_e2hil_algorithm import actor_loss, twin_algorithms

CONTROL = {"random_mask": True}


def test_random_mask_keeps_the_band_count_for_every_batch():
    generator = torch.Generator().manual_seed(0)
    for seed in range(20):
        influence = torch.randn(128, generator=torch.Generator().manual_seed(seed)) ** 3
        band, _, _ = entropy_bounded_mask(influence, 0.05, 0.90)
        control = same_count_random_mask(band, generator)
        assert control.dtype == torch.bool and control.shape == band.shape
        assert int(control.sum()) == int(band.sum())
        assert not torch.equal(control, band)


def test_random_mask_does_not_depend_on_the_influence_values():
    masks = []
    for values_seed in range(4):
        influence = torch.randn(64, generator=torch.Generator().manual_seed(values_seed))
        loss = torch.ones(64)
        _, info = selected_actor_loss(
            loss, influence, torch.tensor(0.0), random_mask=torch.Generator().manual_seed(11)
        )
        masks.append(info["mask"])
    # Same generator state, different influence values: the same samples are kept.
    assert all(torch.equal(masks[0], m) for m in masks[1:])
    # Another draw of the generator keeps the same count of other samples.
    _, other = selected_actor_loss(
        torch.ones(64), torch.randn(64), torch.tensor(0.0), random_mask=torch.Generator().manual_seed(12)
    )
    assert int(other["mask"].sum()) == int(masks[0].sum())
    assert not torch.equal(other["mask"], masks[0])


def test_random_mask_keeps_samples_uniformly():
    generator = torch.Generator().manual_seed(0)
    band = torch.zeros(50, dtype=torch.bool)
    band[:40] = True  # the band keeps the first 40; the control must not favour them
    counts = torch.zeros(50)
    for _ in range(2000):
        counts += same_count_random_mask(band, generator).float()
    rate = counts / 2000
    assert rate.sub(0.8).abs().max() < 0.05
    assert abs(rate[:40].mean() - rate[40:].mean()) < 0.02


@pytest.mark.parametrize("kept", [0, 16])
def test_full_or_empty_band_needs_no_draw(kept):
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    band = torch.arange(16) < kept
    assert torch.equal(same_count_random_mask(band, generator), band)
    assert torch.equal(generator.get_state(), state)


@pytest.mark.parametrize("form", ["policy_gradient", "first_order"])
def test_control_equals_sac_bit_for_bit_when_nothing_is_dropped(form):
    sac, control = twin_algorithms(
        influence_form=form, influence_lower_quantile=0.0, influence_upper_quantile=1.0, **CONTROL
    )
    batch = random_batch(sac.policy, 32, generator=torch.Generator().manual_seed(3))
    assert torch.equal(actor_loss(sac, batch), actor_loss(control, batch))
    assert control.last_actor_info["e2hil/kept_fraction"] == 1.0


def test_control_drops_as_many_samples_as_e2hil_but_other_ones():
    _, e2hil = twin_algorithms()
    _, control = twin_algorithms(**CONTROL)
    batch = random_batch(e2hil.policy, 128, generator=torch.Generator().manual_seed(3))
    e2hil_loss, control_loss = actor_loss(e2hil, batch), actor_loss(control, batch)
    # Same weights and draws: the same influence values, the same band count, other samples.
    assert torch.equal(e2hil.last_influence, control.last_influence)
    assert int(e2hil.last_mask.sum()) == int(control.last_mask.sum()) < 128
    assert not torch.equal(e2hil.last_mask, control.last_mask)
    assert not torch.equal(e2hil_loss, control_loss)


def test_control_generator_does_not_shift_the_global_random_stream():
    _, e2hil = twin_algorithms()
    _, control = twin_algorithms(**CONTROL)
    batch = random_batch(e2hil.policy, 64, generator=torch.Generator().manual_seed(3))
    actor_loss(e2hil, batch)
    after_e2hil = torch.rand(3)
    actor_loss(control, batch)
    assert torch.equal(torch.rand(3), after_e2hil)


def test_control_masks_repeat_for_the_same_seed():
    masks = []
    for _ in range(2):
        torch.manual_seed(5)
        _, control = twin_algorithms(**CONTROL)
        torch.manual_seed(5)  # the run's seed; the control's stream starts from it
        batch = random_batch(control.policy, 64, generator=torch.Generator().manual_seed(3))
        actor_loss(control, batch)
        masks.append(control.last_mask)
    assert torch.equal(*masks)


@pytest.mark.parametrize("value", ["yes", 1])
def test_random_mask_must_be_a_bool(value):
    from lerobot_policy_e2hil.algorithm.configuration_e2hil import E2HiLAlgorithmConfig

    with pytest.raises(E2HiLConfigError, match=r"algorithm\.random_mask=.* allowed values: true, false"):
        E2HiLAlgorithmConfig(random_mask=value)
