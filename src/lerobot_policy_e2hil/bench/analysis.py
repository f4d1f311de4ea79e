"""Statistics of the benchmark as pure functions: arrays in, numbers out.

Nothing here touches a policy, an env or a file, so every function can be checked against a
hand computation (tests/test_bench_analysis.py). scipy is not a dependency of the project:
the Student-t quantile and the rank correlation are written out here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Two-sided 95% Student-t quantiles t_{0.975, df} for df = 1..30 (standard tables, 4 decimals).
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip
_Z975 = 1.959964

# Rows of the paper's Table II: (label, fraction, top tail?)
TABLE2_ROWS: tuple[tuple[str, float, bool], ...] = (
    ("Top 2%", 0.02, True),
    ("Top 5%", 0.05, True),
    ("Top 10%", 0.10, True),
    ("Top 20%", 0.20, True),
    ("Top 50%", 0.50, True),
    ("Low 20%", 0.20, False),
    ("Low 10%", 0.10, False),
    ("Low 5%", 0.05, False),
    ("Low 2%", 0.02, False),
)
PERCENTILES = (2, 5, 10, 20, 50, 80, 90, 95, 98)


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (two-sided 95%).

    Table values for ``df <= 30``; above, the Cornish-Fisher expansion in ``1/df`` (two
    terms), which agrees with the table at ``df = 30`` to 1e-4.

    Raises:
        ValueError: If ``df < 1``.
    """
    if df < 1:
        raise ValueError(f"df={df} is invalid; allowed values: >= 1")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


@dataclass(frozen=True)
class MeanCI:
    """A mean with its two-sided 95% Student-t confidence interval over ``n`` values."""

    mean: float
    half_width: float
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width


def mean_ci(values: Sequence[float]) -> MeanCI:
    """Mean and 95% CI half-width ``t_{0.975, n-1} * s / sqrt(n)`` of the finite ``values``.

    ``s`` is the sample standard deviation (divides by ``n - 1``). With one value the
    half-width is NaN; with none the mean is NaN too.
    """
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    n = int(x.size)
    if n == 0:
        return MeanCI(float("nan"), float("nan"), 0)
    if n == 1:
        return MeanCI(float(x[0]), float("nan"), 1)
    sd = float(x.std(ddof=1))
    return MeanCI(float(x.mean()), t_quantile_975(n - 1) * sd / math.sqrt(n), n)


def steps_to_threshold(steps: Sequence[int], values: Sequence[float], threshold: float) -> int | None:
    """First ``steps[i]`` whose ``values[i] >= threshold``; None if the threshold is never reached.

    Args:
        steps: Increasing env steps of the evaluations.
        values: Success rate measured at each step.
        threshold: E.g. 0.8.
    """
    if len(steps) != len(values):
        raise ValueError(f"steps and values differ in length: {len(steps)} != {len(values)}")
    for step, value in zip(steps, values, strict=True):
        if value is not None and value >= threshold:
            return int(step)
    return None


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation of two equally long samples; NaN if either is constant or n < 2."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"x and y differ in shape: {a.shape} != {b.shape}")
    if a.size < 2:
        return float("nan")
    a, b = a - a.mean(), b - b.mean()
    denominator = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    if denominator == 0.0:
        return float("nan")
    return float((a * b).sum()) / denominator


def average_ranks(x: Sequence[float]) -> np.ndarray:
    """Ranks 1..n of ``x``, ties sharing the mean of the ranks they span."""
    values = np.asarray(x, dtype=np.float64)
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(values.size, dtype=np.float64)
    sorted_values = values[order]
    start = 0
    while start < values.size:
        end = start
        while end + 1 < values.size and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation: Pearson correlation of the average ranks."""
    return pearson(average_ranks(x), average_ranks(y))


def finite_pairs(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The pairs ``(x_i, y_i)`` where both are finite."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def tail_mean(values: Sequence[float], fraction: float, top: bool) -> float:
    """Mean of the ``ceil(fraction * n)`` largest (``top``) or smallest values; NaN if empty.

    Raises:
        ValueError: If ``fraction`` is not in (0, 1].
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction={fraction} is invalid; allowed values: (0, 1]")
    x = np.sort(np.asarray(values, dtype=np.float64))
    if x.size == 0:
        return float("nan")
    k = min(x.size, max(1, math.ceil(fraction * x.size - 1e-9)))
    return float(x[-k:].mean() if top else x[:k].mean())


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation (numpy's default); NaN if empty."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return float("nan")
    return float(np.percentile(x, q))


def intervention_table(
    abs_c: Sequence[float], is_intervention: Sequence[bool]
) -> dict[str, dict[str, float]]:
    """The paper's Table II: tail means and mean of ``|c|`` for all, intervention and exploration samples.

    The paper's rows "Top x%" / "Low x%" are read as the mean of ``|c|`` over the x% largest /
    smallest samples ("All" is the mean): only that reading makes its numbers consistent (its
    "Top 50%" = 13.8 is twice its "All" = 6.9, which a median could not be).

    Args:
        abs_c: Per-sample ``|c|``.
        is_intervention: Per-sample flag, True for human (intervention or demo) samples.

    Returns:
        ``{row label: {"all": ..., "intervention": ..., "exploration": ...}}`` with the rows of
        :data:`TABLE2_ROWS`, ``"All"`` (mean), ``"n"`` (sample counts) and ``"p<q>"`` percentiles.
    """
    c = np.asarray(abs_c, dtype=np.float64)
    flags = np.asarray(is_intervention, dtype=bool)
    if c.shape != flags.shape:
        raise ValueError(f"abs_c and is_intervention differ in shape: {c.shape} != {flags.shape}")
    finite = np.isfinite(c)
    subsets = {"all": c[finite], "intervention": c[finite & flags], "exploration": c[finite & ~flags]}
    table: dict[str, dict[str, float]] = {}
    for label, fraction, top in TABLE2_ROWS:
        table[label] = {name: tail_mean(x, fraction, top) for name, x in subsets.items()}
    table["All"] = {name: float(x.mean()) if x.size else float("nan") for name, x in subsets.items()}
    for q in PERCENTILES:
        table[f"p{q}"] = {name: percentile(x, q) for name, x in subsets.items()}
    table["n"] = {name: float(x.size) for name, x in subsets.items()}
    return table


def mask_drop_table(
    is_intervention: Sequence[bool], kept: Sequence[bool], dropped_high: Sequence[bool]
) -> dict[str, dict[str, float]]:
    """Which kind of sample the entropy-bounded mask drops.

    Args:
        is_intervention: Per-sample flag, True for human samples.
        kept: Per-sample mask I (True: the sample entered the actor loss).
        dropped_high: True where the sample was dropped for a large ``|c|`` (above the upper
            bound); a dropped sample that is not ``dropped_high`` fell below the lower bound.

    Returns:
        ``{"intervention" | "exploration" | "all": {"n", "dropped", "dropped_high",
        "dropped_low", "share_of_dropped"}}``: fractions of that kind's samples, and that kind's
        share of all dropped samples (``"share_of_samples"`` for comparison).
    """
    flags = np.asarray(is_intervention, dtype=bool)
    keep = np.asarray(kept, dtype=bool)
    high = np.asarray(dropped_high, dtype=bool) & ~keep
    low = ~keep & ~high
    total, total_dropped = flags.size, int((~keep).sum())
    out: dict[str, dict[str, float]] = {}
    for name, sel in (("intervention", flags), ("exploration", ~flags), ("all", np.ones_like(flags))):
        n = int(sel.sum())
        out[name] = {
            "n": float(n),
            "dropped": _fraction(int((~keep & sel).sum()), n),
            "dropped_high": _fraction(int((high & sel).sum()), n),
            "dropped_low": _fraction(int((low & sel).sum()), n),
            "share_of_dropped": _fraction(int((~keep & sel).sum()), total_dropped),
            "share_of_samples": _fraction(n, total),
        }
    return out


def _fraction(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else float("nan")


def binned_rate(
    ends: Sequence[int], numerators: Sequence[float], denominators: Sequence[float], edges: Sequence[int]
) -> np.ndarray:
    """Ratio of sums per bin, e.g. intervention steps / env steps of the episodes ending in each bin.

    Args:
        ends: Env step at which each episode ended.
        numerators: Per-episode numerator (intervention steps).
        denominators: Per-episode denominator (episode length).
        edges: Increasing bin edges; bin ``j`` is ``edges[j] < end <= edges[j + 1]``.

    Returns:
        ``[len(edges) - 1]`` ratios; NaN for a bin without episodes.
    """
    e = np.asarray(ends, dtype=np.float64)
    num = np.asarray(numerators, dtype=np.float64)
    den = np.asarray(denominators, dtype=np.float64)
    out = np.full(len(edges) - 1, np.nan)
    for j in range(len(edges) - 1):
        sel = (e > edges[j]) & (e <= edges[j + 1])
        if den[sel].sum() > 0:
            out[j] = num[sel].sum() / den[sel].sum()
    return out


def curve_band(curves: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pointwise mean and 95% t-interval over seeds of curves sampled at the same points.

    Args:
        curves: ``[n_seeds][n_points]``; NaN entries are left out at that point.

    Returns:
        ``(mean, low, high)`` arrays of ``n_points``; the band collapses to the mean where only
        one seed has a value.
    """
    matrix = np.asarray(curves, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"curves must be [n_seeds][n_points], got shape {matrix.shape}")
    mean, low, high = (np.full(matrix.shape[1], np.nan) for _ in range(3))
    for j in range(matrix.shape[1]):
        ci = mean_ci(matrix[:, j].tolist())
        mean[j] = ci.mean
        half = 0.0 if math.isnan(ci.half_width) else ci.half_width
        low[j], high[j] = ci.mean - half, ci.mean + half
    return mean, low, high


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing mean over the last ``window`` values (fewer at the start)."""
    if window < 1:
        raise ValueError(f"window={window} is invalid; allowed values: >= 1")
    x = np.asarray(values, dtype=np.float64)
    cumulative = np.concatenate([[0.0], np.cumsum(x)])
    idx = np.arange(1, x.size + 1)
    lo = np.maximum(0, idx - window)
    return (cumulative[idx] - cumulative[lo]) / (idx - lo)


def binned_mean(steps: Sequence[float], values: Sequence[float], edges: Sequence[float]) -> np.ndarray:
    """Mean of the finite ``values`` whose step falls in each bin ``edges[j] < step <= edges[j + 1]``.

    Returns:
        ``[len(edges) - 1]`` means; NaN for an empty bin.
    """
    s = np.asarray(steps, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    out = np.full(len(edges) - 1, np.nan)
    for j in range(len(edges) - 1):
        sel = (s > edges[j]) & (s <= edges[j + 1]) & np.isfinite(v)
        if sel.any():
            out[j] = v[sel].mean()
    return out
