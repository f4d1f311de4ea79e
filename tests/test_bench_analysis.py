"""The benchmark's statistics against values computed by hand."""

import math

import numpy as np
import pytest

from lerobot_policy_e2hil.bench import analysis as an


def test_t_quantiles_from_table_and_expansion():
    assert an.t_quantile_975(1) == pytest.approx(12.7062)
    assert an.t_quantile_975(4) == pytest.approx(2.7764)
    assert an.t_quantile_975(30) == pytest.approx(2.0423)
    # Beyond the table: Cornish-Fisher, against the tabulated t_{0.975, 40} = 2.0211, t_{0.975, 120} = 1.9799
    assert an.t_quantile_975(40) == pytest.approx(2.0211, abs=2e-4)
    assert an.t_quantile_975(120) == pytest.approx(1.9799, abs=2e-4)
    with pytest.raises(ValueError, match="df=0"):
        an.t_quantile_975(0)


def test_mean_ci_student_t():
    ci = an.mean_ci([1.0, 2.0, 3.0])  # mean 2, s = 1, n = 3: 4.3027 / sqrt(3)
    assert ci.mean == 2.0 and ci.n == 3
    assert ci.half_width == pytest.approx(4.3027 / math.sqrt(3))
    assert (ci.low, ci.high) == pytest.approx((2.0 - 2.48417, 2.0 + 2.48417), abs=1e-4)
    # five seeds with success 0.2, 0.4, 0.4, 0.6, 0.8: s = sqrt(0.052), t_4 = 2.7764
    ci5 = an.mean_ci([0.2, 0.4, 0.4, 0.6, 0.8])
    assert ci5.mean == pytest.approx(0.48)
    assert ci5.half_width == pytest.approx(2.7764 * math.sqrt(0.052) / math.sqrt(5))
    one = an.mean_ci([0.5, float("nan"), None])
    assert one.mean == 0.5 and one.n == 1 and math.isnan(one.half_width)
    assert an.mean_ci([]).n == 0 and math.isnan(an.mean_ci([]).mean)


def test_steps_to_threshold():
    assert an.steps_to_threshold([100, 200, 300], [0.5, 0.8, 0.9], 0.8) == 200
    assert an.steps_to_threshold([100, 200, 300], [0.9, 0.1, 0.9], 0.8) == 100
    assert an.steps_to_threshold([100, 200], [0.7, 0.79], 0.8) is None
    with pytest.raises(ValueError, match="length"):
        an.steps_to_threshold([1, 2], [0.1], 0.8)


def test_pearson_by_hand():
    # x = 1,2,3; y = 2,4,7: sum dx dy = 5, sxx = 2, syy = 114/9
    assert an.pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(5 / math.sqrt(2 * 114 / 9))
    assert an.pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(an.pearson([1, 1, 1], [1, 2, 3]))
    assert math.isnan(an.pearson([1], [2]))


def test_spearman_and_average_ranks():
    np.testing.assert_array_equal(an.average_ranks([10, 20, 20, 30]), [1, 2.5, 2.5, 4])
    np.testing.assert_array_equal(an.average_ranks([3, 1, 2]), [3, 1, 2])
    # no ties: 1 - 6 sum d^2 / (n (n^2 - 1)) = 1 - 6 * 2 / 60
    assert an.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    # monotone but not linear
    assert an.spearman([1, 2, 3, 4], [1, 10, 100, 1000]) == pytest.approx(1.0)


def test_finite_pairs_drops_incomplete_pairs():
    x, y = an.finite_pairs([1.0, float("nan"), 3.0, 4.0], [1.0, 2.0, float("inf"), 5.0])
    np.testing.assert_array_equal(x, [1.0, 4.0])
    np.testing.assert_array_equal(y, [1.0, 5.0])


def test_tail_mean_and_percentile():
    values = list(range(1, 11))  # 1..10
    assert an.tail_mean(values, 0.2, top=True) == pytest.approx(9.5)
    assert an.tail_mean(values, 0.2, top=False) == pytest.approx(1.5)
    assert an.tail_mean(values, 0.05, top=True) == 10  # ceil(0.5) = 1 sample
    assert an.tail_mean(values, 0.5, top=True) == pytest.approx(8.0)
    assert an.percentile(values, 50) == pytest.approx(5.5)
    assert math.isnan(an.tail_mean([], 0.1, top=True))
    with pytest.raises(ValueError, match="fraction"):
        an.tail_mean(values, 0.0, top=True)


def test_intervention_table_by_hand():
    abs_c = [1.0, 2.0, 3.0, 4.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
    flags = [False] * 4 + [True] * 6
    table = an.intervention_table(abs_c, flags)
    assert table["All"]["all"] == pytest.approx(22.0)
    assert table["All"]["intervention"] == pytest.approx(35.0)
    assert table["All"]["exploration"] == pytest.approx(2.5)
    assert table["Top 20%"]["all"] == pytest.approx(55.0)  # 60, 50
    assert table["Top 20%"]["intervention"] == pytest.approx(55.0)  # ceil(1.2) = 2 samples
    assert table["Top 50%"]["exploration"] == pytest.approx(3.5)  # 4, 3
    assert table["Low 10%"]["all"] == 1.0
    assert table["n"] == {"all": 10.0, "intervention": 6.0, "exploration": 4.0}
    assert table["p50"]["exploration"] == pytest.approx(2.5)


def test_mask_drop_table_by_hand():
    flags = [True, True, True, True, False, False, False, False]
    kept = [True, False, False, True, True, True, False, True]
    high = [False, True, False, False, False, False, False, False]
    d = an.mask_drop_table(flags, kept, high)
    assert d["intervention"]["dropped"] == pytest.approx(0.5)
    assert d["intervention"]["dropped_high"] == pytest.approx(0.25)
    assert d["intervention"]["dropped_low"] == pytest.approx(0.25)
    assert d["exploration"]["dropped"] == pytest.approx(0.25)
    assert d["exploration"]["dropped_low"] == pytest.approx(0.25)
    assert d["intervention"]["share_of_dropped"] == pytest.approx(2 / 3)
    assert d["exploration"]["share_of_dropped"] == pytest.approx(1 / 3)
    assert d["all"]["dropped"] == pytest.approx(3 / 8)
    assert d["intervention"]["share_of_samples"] == pytest.approx(0.5)


def test_binned_rate_and_mean():
    edges = [0, 100, 200, 300]
    rate = an.binned_rate([50, 90, 150, 300], [10, 0, 5, 20], [20, 20, 50, 40], edges)
    np.testing.assert_allclose(rate, [10 / 40, 5 / 50, 20 / 40])
    assert np.isnan(an.binned_rate([50], [1], [2], edges)[1])
    means = an.binned_mean([10, 20, 150, 250], [1.0, 3.0, float("nan"), 4.0], edges)
    np.testing.assert_allclose(means[[0, 2]], [2.0, 4.0])
    assert np.isnan(means[1])


def test_curve_band_and_moving_average():
    mean, low, high = an.curve_band([[0.0, 1.0], [1.0, float("nan")], [2.0, float("nan")]])
    assert mean[0] == pytest.approx(1.0)
    assert high[0] - mean[0] == pytest.approx(4.3027 / math.sqrt(3))
    assert mean[1] == 1.0 and low[1] == high[1] == 1.0  # one seed: no band
    np.testing.assert_allclose(an.moving_average([1, 2, 3, 4], 2), [1, 1.5, 2.5, 3.5])


def test_late_intervention_rate_counts_only_episodes_ending_in_the_last_fifth():
    from lerobot_policy_e2hil.bench.aggregate import late_intervention_rate

    # [end env step, length, intervention steps, success, is demo]; budget 100 -> window (80, 100]
    episodes = [[50, 50, 50, 1, 1], [80, 30, 30, 0, 0], [90, 10, 5, 0, 0], [100, 10, 0, 1, 0]]
    assert late_intervention_rate(episodes, 100) == pytest.approx(5 / 20)
    assert math.isnan(late_intervention_rate(episodes[:2], 100))


def test_late_entropy_averages_only_the_probes_of_the_last_fifth():
    from lerobot_policy_e2hil.bench.aggregate import late_entropy

    probes = [
        {"env_step": 10, "entropy_before": 9.0},
        {"env_step": 80, "entropy_before": 9.0},
        {"env_step": 81, "entropy_before": 1.0},
        {"env_step": 100, "entropy_before": 2.0},
        {"env_step": 100, "entropy_before": float("nan")},
    ]
    assert late_entropy(probes, 100) == pytest.approx(1.5)
    assert math.isnan(late_entropy(probes[:2], 100))
