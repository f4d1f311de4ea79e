"""What the report says about a set of runs, as pure functions of their saved results.

Per run (:func:`run_facts`), per variant over seeds (:func:`method_summary`, paired differences
with the baseline), along training (:func:`method_curves`, :func:`position_curves`) and the
influence validation (:func:`influence_validation`: predicted against measured entropy change).
The statistics themselves are in :mod:`.analysis`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import analysis as an
from .runs import BASELINE
from .trainer import load_samples

SUCCESS_THRESHOLD = 0.8
CURVE_BINS = 10
SERIES_BINS = 20
EARLY_FRACTION = 0.2
LATE_FRACTION = 0.2
# Run facts compared with the baseline's of the same seed
PAIRED_KEYS = (
    "final_success",
    "final_success_worst_position",
    "intervention_rate",
    "late_intervention_rate",
    "intervention_steps",
    "late_entropy",
    "steps_to_80_censored",
)
# Prefix of the per-position success facts (``final_success_position_<index>``), paired too
POSITION_PREFIX = "final_success_position_"


# --- per-run facts --------------------------------------------------------------------------


def run_facts(result: dict[str, Any]) -> dict[str, Any]:
    """The numbers of one run that the report aggregates."""
    evals = result["evals"]
    steps = [e["env_step"] for e in evals]
    success = [e["success"] for e in evals]
    s, t = result["summary"], result["timing"]
    by_position = evals[-1].get("by_position", {}) if evals else {}
    steps_to_80 = an.steps_to_threshold(steps, success, SUCCESS_THRESHOLD)
    return {
        "seed": result["config"]["seed"],
        **{f"{POSITION_PREFIX}{k}": v for k, v in by_position.items()},
        "final_success": s["final_success"],
        "final_success_by_position": by_position,
        "final_success_worst_position": min(by_position.values()) if by_position else math.nan,
        "train_success_by_position": train_success_by_position(result),
        "steps_to_80": steps_to_80,
        # A run that never reached the threshold counts as the whole budget (censored)
        "steps_to_80_censored": s["env_steps"] if steps_to_80 is None else steps_to_80,
        "intervention_rate": s["intervention_rate"],
        "intervention_steps": s["intervention_steps"],
        "late_intervention_rate": late_intervention_rate(result["episodes"], s["env_steps"]),
        "late_entropy": late_entropy(result["probes"], s["env_steps"]),
        "episodes": s["episodes"],
        "updates": s["updates"],
        "wall_s": t["wall_s"],
        "env_steps_per_s": t["env_steps_per_s"],
        "updates_per_s": t["updates_per_s"],
        "kept_fraction": _mean_of(result["probes"], "kept_fraction")
        if result["config"]["method"] == "e2hil"
        else 1.0,
    }


def train_success_by_position(result: dict[str, Any]) -> dict[str, float]:
    """Success (teacher active) per cube position over the training episodes of the last :data:`LATE_FRACTION`."""
    positions = result.get("episode_positions") or []
    episodes = result["episodes"]
    if len(positions) != len(episodes):
        return {}
    start = (1.0 - LATE_FRACTION) * result["summary"]["env_steps"]
    outcomes: dict[str, list[int]] = {}
    for episode, position in zip(episodes, positions, strict=True):
        if episode[0] > start:
            outcomes.setdefault(str(position), []).append(int(episode[3]))
    return {k: sum(v) / len(v) for k, v in sorted(outcomes.items())}


def late_intervention_rate(episodes: Sequence[Sequence[int]], env_steps: int) -> float:
    """Intervention steps / env steps over the episodes that end in the last :data:`LATE_FRACTION` of the run.

    Args:
        episodes: ``[end env step, length, intervention steps, success, is demo]`` per episode.
        env_steps: The run's budget.

    Returns:
        The rate, or NaN when no episode ends in that window.
    """
    start = (1.0 - LATE_FRACTION) * env_steps
    late = [e for e in episodes if e[0] > start]
    length = sum(e[1] for e in late)
    return sum(e[2] for e in late) / length if length else float("nan")


def late_entropy(probes: Sequence[dict[str, Any]], env_steps: int) -> float:
    """Mean policy entropy (the probe's ``entropy_before``, nats) over the probes of the last :data:`LATE_FRACTION`.

    Returns:
        The mean, or NaN when the run has no probe in that window (``probe_every`` 0).
    """
    start = (1.0 - LATE_FRACTION) * env_steps
    return _mean_of([p for p in probes if p["env_step"] > start], "entropy_before")


def _mean_of(records: list[dict[str, Any]], key: str) -> float:
    values = [r[key] for r in records if key in r and r[key] is not None and math.isfinite(r[key])]
    return float(np.mean(values)) if values else float("nan")


def ci_dict(values: Sequence[float]) -> dict[str, float]:
    """Mean and 95% Student-t interval of ``values`` as a JSON-able dict."""
    ci = an.mean_ci(values)
    return {"mean": ci.mean, "low": ci.low, "high": ci.high, "half_width": ci.half_width, "n": ci.n}


def method_summary(facts: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and 95% CI over seeds of a method's run facts."""
    reached = [f["steps_to_80"] for f in facts if f["steps_to_80"] is not None]
    positions = sorted({k for f in facts for k in f.get("final_success_by_position", {})}, key=int)
    return {
        "final_success": ci_dict([f["final_success"] for f in facts]),
        "final_success_by_position": {
            k: ci_dict([f["final_success_by_position"].get(k, math.nan) for f in facts]) for k in positions
        },
        "final_success_worst_position": ci_dict(
            [f.get("final_success_worst_position", math.nan) for f in facts]
        ),
        "intervention_rate": ci_dict([f["intervention_rate"] for f in facts]),
        "intervention_steps": ci_dict([f["intervention_steps"] for f in facts]),
        "late_intervention_rate": ci_dict([f["late_intervention_rate"] for f in facts]),
        "late_entropy": ci_dict([f.get("late_entropy", math.nan) for f in facts]),
        "kept_fraction": ci_dict([f["kept_fraction"] for f in facts]),
        "steps_to_80_reached": len(reached),
        "steps_to_80_median": float(np.median(reached)) if reached else None,
        "steps_to_80": [f["steps_to_80"] for f in facts],
        "wall_s": float(np.mean([f["wall_s"] for f in facts])),
        "env_steps_per_s": float(np.mean([f["env_steps_per_s"] for f in facts])),
        "updates_per_s": float(np.mean([f["updates_per_s"] for f in facts])),
        "n": len(facts),
    }


# --- curves ---------------------------------------------------------------------------------


def position_curves(results: list[dict[str, Any]]) -> dict[str, tuple]:
    """Teacher-free success per cube position along training, banded over seeds (``{index: curve}``)."""
    if not results or "by_position" not in results[0]["evals"][-1]:
        return {}
    x = [e["env_step"] for e in results[0]["evals"]]
    positions = sorted(results[0]["evals"][-1]["by_position"], key=int)
    return {
        k: (
            x,
            *_clipped(
                an.curve_band(
                    [[e.get("by_position", {}).get(k, math.nan) for e in r["evals"]] for r in results]
                )
            ),
        )
        for k in positions
    }


def method_curves(results: list[dict[str, Any]], env_steps: int) -> dict[str, tuple]:
    """Success, intervention rate, entropy and kept fraction of one method, banded over seeds."""
    edges = np.linspace(0, env_steps, CURVE_BINS + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    success_x = [e["env_step"] for e in results[0]["evals"]]
    success = [[e["success"] for e in r["evals"]] for r in results]
    interventions = []
    entropy = []
    kept = []
    for r in results:
        episodes = np.asarray(r["episodes"], dtype=float).reshape(-1, 5)
        interventions.append(an.binned_rate(episodes[:, 0], episodes[:, 2], episodes[:, 1], edges))
        probes = r["probes"]
        entropy.append(
            an.binned_mean([p["env_step"] for p in probes], [p["entropy_before"] for p in probes], edges)
        )
        if r["config"]["method"] == BASELINE:
            kept.append(np.where(np.isnan(entropy[-1]), np.nan, 1.0))
        else:
            kept.append(
                an.binned_mean([p["env_step"] for p in probes], [p["kept_fraction"] for p in probes], edges)
            )
    return {
        "success": (success_x, *_clipped(an.curve_band(success))),
        "intervention_rate": (centres, *_clipped(an.curve_band(interventions))),
        "entropy": (centres, *an.curve_band(entropy)),
        "kept_fraction": (centres, *an.curve_band(kept)),
    }


# --- influence validation and Table II ------------------------------------------------------


def _clipped(band: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[np.ndarray, ...]:
    """A band of a rate, clipped to [0, 1]."""
    return tuple(np.clip(x, 0.0, 1.0) for x in band)


def influence_validation(results: list[dict[str, Any]], env_steps: int | None = None) -> dict[str, Any]:
    """Correlation of predicted and measured entropy change over the probed actor steps of a method.

    Per step (seeds pooled, per seed, early and late updates) and, with ``env_steps``, between the
    two curves of :func:`influence_series` (the comparison of the paper's Fig. 5 left).
    """
    per_seed_pearson, per_seed_spearman = [], []
    predicted_all, measured_all, early_mask = [], [], []
    for r in results:
        probes = r["probes"]
        predicted, measured = an.finite_pairs(
            [p["predicted"] for p in probes], [p["measured"] for p in probes]
        )
        per_seed_pearson.append(an.pearson(predicted, measured))
        per_seed_spearman.append(an.spearman(predicted, measured))
        steps = np.asarray(
            [p["opt_step"] for p in probes if finite(p["predicted"]) and finite(p["measured"])]
        )
        limit = EARLY_FRACTION * (steps.max() if steps.size else 0)
        predicted_all.append(predicted)
        measured_all.append(measured)
        early_mask.append(steps <= limit)
    predicted = np.concatenate(predicted_all) if predicted_all else np.zeros(0)
    measured = np.concatenate(measured_all) if measured_all else np.zeros(0)
    early = np.concatenate(early_mask) if early_mask else np.zeros(0, dtype=bool)
    out = {
        "n": int(predicted.size),
        "pearson": an.pearson(predicted, measured),
        "spearman": an.spearman(predicted, measured),
        "pearson_early": an.pearson(predicted[early], measured[early]),
        "spearman_early": an.spearman(predicted[early], measured[early]),
        "pearson_late": an.pearson(predicted[~early], measured[~early]),
        "spearman_late": an.spearman(predicted[~early], measured[~early]),
        "pearson_per_seed": ci_dict(per_seed_pearson),
        "spearman_per_seed": ci_dict(per_seed_spearman),
        "fraction_same_sign": float(np.mean(np.sign(predicted) == np.sign(measured)))
        if predicted.size
        else math.nan,
    }
    if env_steps is not None:
        _, binned_predicted, binned_measured = influence_series(results, env_steps)
        out["pearson_binned"] = an.pearson(*an.finite_pairs(binned_predicted, binned_measured))
        out["spearman_binned"] = an.spearman(*an.finite_pairs(binned_predicted, binned_measured))
    return out


def finite(value: Any) -> bool:
    """Whether ``value`` is a number other than NaN or infinity (None: no)."""
    return value is not None and math.isfinite(value)


def influence_series(
    results: list[dict[str, Any]], env_steps: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Binned (seeds pooled) predicted and measured entropy change along training (Fig. 5 left)."""
    edges = np.linspace(0, env_steps, SERIES_BINS + 1)
    steps = [p["env_step"] for r in results for p in r["probes"]]
    predicted = [p["predicted"] for r in results for p in r["probes"]]
    measured = [p["measured"] for r in results for p in r["probes"]]
    return (
        (edges[:-1] + edges[1:]) / 2,
        an.binned_mean(steps, predicted, edges),
        an.binned_mean(steps, measured, edges),
    )


def pooled_samples(run_dirs: Sequence[Path]) -> dict[str, np.ndarray]:
    """The probe's per-sample arrays of several runs, concatenated."""
    parts = [load_samples(d) for d in run_dirs]
    parts = [p for p in parts if p]
    if not parts:
        return {"abs_c": np.zeros(0), "is_intervention": np.zeros(0, bool), "kept": np.zeros(0, bool),
                "dropped_high": np.zeros(0, bool)}  # fmt: skip
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def paired_differences(
    facts: dict[str, list[dict[str, Any]]], variants: Sequence[str], reference: str = BASELINE
) -> dict[str, Any]:
    """Per variant other than ``reference``, its paired facts minus ``reference``'s of the same seed.

    The facts: :data:`PAIRED_KEYS` and the success at each cube position (``final_success_position_<i>``).
    """
    keys = [*PAIRED_KEYS, *sorted(k for k in facts[reference][0] if k.startswith(POSITION_PREFIX))]
    return {
        m: {
            key: ci_dict(
                [
                    e.get(key, math.nan) - b.get(key, math.nan)
                    for e, b in zip(facts[m], facts[reference], strict=True)
                ]
            )
            for key in keys
        }
        for m in variants
        if m != reference
    }


def influence_pairs(results: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Predicted and measured entropy change of every probed actor step (finite pairs, seeds pooled)."""
    predicted = [p["predicted"] for r in results for p in r["probes"]]
    measured = [p["measured"] for r in results for p in r["probes"]]
    return an.finite_pairs(predicted, measured)
