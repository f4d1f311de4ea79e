"""PNG figures of the benchmark report (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

COLORS = {
    "sac": "tab:blue",
    "e2hil": "tab:orange",
    "e2hil_first_order": "tab:green",
    "random_mask": "tab:purple",
}
# The name of each suite variant in every table and figure
LABELS = {
    "sac": "HIL-SERL (SAC)",
    "e2hil": "E2HiL",
    "e2hil_first_order": "E2HiL, first-order c",
    "random_mask": "random drop (control)",
}
# A curve: x, mean, band low, band high
Curve = tuple[Sequence[float], Sequence[float], Sequence[float], Sequence[float]]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(
    panels: dict[str, dict[str, Curve]], titles: dict[str, str], path: Path, n_seeds: int
) -> Path:
    """One panel per metric, one line per method with its 95% t-band over seeds.

    Args:
        panels: ``{metric: {method: (x, mean, low, high)}}``.
        titles: Y-axis label of each metric.
        path: Output PNG.
        n_seeds: Seeds per method (in the caption).
    """
    plt = _pyplot()
    n = len(panels)
    cols = 2 if n > 1 else 1
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 3.4 * rows), squeeze=False)
    for ax, (metric, curves) in zip(axes.flat, panels.items(), strict=False):
        for method, (x, mean, low, high) in curves.items():
            color = COLORS.get(method)
            ax.plot(x, mean, marker=".", color=color, label=LABELS.get(method, method))
            ax.fill_between(x, low, high, color=color, alpha=0.2, linewidth=0)
        ax.set_xlabel("env step")
        ax.set_ylabel(titles.get(metric, metric))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(f"mean and 95% t-interval over {n_seeds} seeds", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_influence_scatter(
    pairs: dict[str, tuple[np.ndarray, np.ndarray]], stats: dict[str, dict[str, float]], path: Path
) -> Path:
    """Measured against predicted entropy change of each probed actor step, one panel per method."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.2 * len(pairs), 4), squeeze=False)
    for ax, (method, (predicted, measured)) in zip(axes.flat, pairs.items(), strict=True):
        ax.scatter(predicted, measured, s=4, alpha=0.35, color=COLORS.get(method))
        ax.axhline(0, color="grey", lw=0.6)
        ax.axvline(0, color="grey", lw=0.6)
        s = stats.get(method, {})
        ax.set_title(
            f"{LABELS.get(method, method)}: Pearson {s.get('pearson', float('nan')):.2f}, "
            f"Spearman {s.get('spearman', float('nan')):.2f} (n={len(predicted)})",
            fontsize=9,
        )
        ax.set_xlabel("predicted dH = actor_lr * mean c (kept samples)")
        ax.set_ylabel("measured dH (after - before actor step)")
        ax.set_xscale("symlog", linthresh=_linthresh(predicted))
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_influence_series(series: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], path: Path) -> Path:
    """Paper Fig. 5 left: batch-mean c and the measured entropy change along training.

    Args:
        series: ``{method: (env steps, binned mean predicted dH, binned mean measured dH)}``.
        path: Output PNG.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(series), figsize=(5.2 * len(series), 3.6), squeeze=False)
    for ax, (method, (x, predicted, measured)) in zip(axes.flat, series.items(), strict=True):
        ax.plot(x, measured, color="black", label="measured dH per actor step")
        ax.set_xlabel("env step")
        ax.set_ylabel("measured dH")
        ax.axhline(0, color="grey", lw=0.6)
        twin = ax.twinx()
        twin.plot(x, predicted, color=COLORS.get(method), label="predicted: actor_lr * mean c")
        twin.set_ylabel("predicted dH", color=COLORS.get(method))
        ax.set_title(LABELS.get(method, method), fontsize=9)
        lines = ax.get_lines()[:1] + twin.get_lines()
        ax.legend(lines, [line.get_label() for line in lines], fontsize=7, loc="lower right")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_influence_hist(samples: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> Path:
    """Histograms of log10 |c| for intervention and exploration samples (paper Fig. 5 right)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(samples), figsize=(5.2 * len(samples), 3.4), squeeze=False)
    for ax, (method, (abs_c, flags)) in zip(axes.flat, samples.items(), strict=True):
        finite = np.isfinite(abs_c) & (abs_c > 0)
        logs = np.log10(abs_c[finite])
        flags = flags[finite]
        bins = np.linspace(logs.min(), logs.max(), 60) if logs.size else 10
        ax.hist(logs[flags], bins=bins, alpha=0.6, density=True, label="intervention", color="tab:red")
        ax.hist(logs[~flags], bins=bins, alpha=0.6, density=True, label="exploration", color="tab:green")
        ax.set_xlabel("log10 |c|")
        ax.set_ylabel("density")
        ax.set_title(LABELS.get(method, method), fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_sweep(
    labels: Sequence[str], metrics: dict[str, tuple[Sequence[float], Sequence[float]]], path: Path
) -> Path:
    """Bars with 95% CI error bars per variant, one panel per metric.

    Args:
        labels: Variant names.
        metrics: ``{metric title: (means, half widths)}``.
        path: Output PNG.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 3.8), squeeze=False)
    x = np.arange(len(labels))
    for ax, (title, (means, halves)) in zip(axes.flat, metrics.items(), strict=True):
        errors = np.nan_to_num(np.asarray(halves, dtype=float), nan=0.0)
        colors = [COLORS["sac"] if label.startswith("HIL-SERL") else COLORS["e2hil"] for label in labels]
        ax.bar(x, means, yerr=errors, capsize=3, color=colors, alpha=0.8)
        ax.set_xticks(x, labels, rotation=35, ha="right", fontsize=8)
        ax.set_ylabel(title)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return _save(fig, path)


def _linthresh(values: np.ndarray) -> float:
    finite = np.abs(np.asarray(values, dtype=float))
    finite = finite[np.isfinite(finite) & (finite > 0)]
    return float(np.percentile(finite, 25)) if finite.size else 1e-6


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
