"""Variants ({sac, e2hil} by default) x seeds at a fixed budget, the sensitivity sweep, and their reports.

Runs are cached by name under ``runs_dir/<name>/`` and reused when the saved config is the
same (a run is deterministic for its config, so a rerun would reproduce it). The suite and the
sweep have different budgets (:data:`DEFAULT_BUDGET`, :data:`SWEEP_BUDGET`) and, by default,
different run caches, so neither overwrites the other's runs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from . import analysis as an
from .config import DEFAULT_CONFIG, RunConfig
from .trainer import load_result, load_samples, train_run

SUCCESS_THRESHOLD = 0.8
CURVE_BINS = 10
SERIES_BINS = 20
EARLY_FRACTION = 0.2
LATE_FRACTION = 0.2


@dataclass(frozen=True)
class Budget:
    """The per-run budget shared by every run of a suite or sweep (see :class:`.config.RunConfig`)."""

    env_steps: int
    updates_per_env_step: float
    batch_size: int
    eval_every: int
    eval_episodes: int
    final_eval_episodes: int
    probe_every: int
    learning_starts: int | None = None
    overrides: tuple[str, ...] = field(default_factory=tuple)

    def run(self, method: str, seed: int, config_path: str = DEFAULT_CONFIG, **e2hil: Any) -> RunConfig:
        """The :class:`RunConfig` of ``method`` and ``seed`` under this budget."""
        fields = dataclasses.asdict(self)
        fields["overrides"] = tuple(self.overrides)
        return RunConfig(method=method, seed=seed, config_path=config_path, **fields, **e2hil)


# The suite's budget: 20k env steps at the sim default's batch (128) and one update per env
# step, about where the distributed default learns the fixed cube; 10 runs, 2 workers, under
# 2 hours on the 2-core machine (measured in docs/benchmarks.md).
DEFAULT_BUDGET = Budget(
    env_steps=20000,
    updates_per_env_step=1.0,
    batch_size=128,
    eval_every=2500,
    eval_episodes=10,
    final_eval_episodes=30,
    probe_every=5,
)
# The sweep's shorter budget: (7 variants + SAC) x 2 seeds took about 35 minutes.
SWEEP_BUDGET = Budget(
    env_steps=6000,
    updates_per_env_step=0.5,
    batch_size=256,
    eval_every=600,
    eval_episodes=5,
    final_eval_episodes=20,
    probe_every=5,
)
# Smoke check for tests: short episodes, tiny batches, a couple of evaluation episodes.
QUICK_BUDGET = Budget(
    env_steps=120,
    updates_per_env_step=0.25,
    batch_size=32,
    eval_every=60,
    eval_episodes=1,
    final_eval_episodes=2,
    probe_every=2,
    learning_starts=40,
    overrides=("--env.max_episode_steps=30", "--env.teacher.demo_episodes=2"),
)
# One-at-a-time variants around the default (lower, upper, K); None: the JSON's value.
SWEEP_VARIANTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("default (l=0.05, u=0.90, K=8)", {}),
    ("l=0", {"influence_lower_quantile": 0.0}),
    ("l=0.10", {"influence_lower_quantile": 0.10}),
    ("u=0.85", {"influence_upper_quantile": 0.85}),
    ("u=1.0", {"influence_upper_quantile": 1.0}),
    ("K=4", {"num_action_samples": 4}),
    ("K=16", {"num_action_samples": 16}),
)


# Suite variants: name -> (method, E2HiL fields of the run). Every variant runs the same seeds.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "sac": ("sac", {}),
    "e2hil": ("e2hil", {}),
    "e2hil_first_order": ("e2hil", {"influence_form": "first_order"}),
}
DEFAULT_VARIANTS = ("sac", "e2hil")
# The variant every other is compared with, paired by seed
BASELINE = "sac"
# The paper's regime (issue 15): two cube positions, the touch reward, the human-like teacher
PAPER_REGIME_CONFIG = "HIL-SERL/train_gym_hil_env_SIM_two_positions.json"
PAPER_REGIME_VARIANTS = ("sac", "e2hil", "e2hil_first_order")


def parse_variants(text: str) -> tuple[str, ...]:
    """``"sac,e2hil"`` -> ``("sac", "e2hil")``; the baseline first, each name once, all known.

    Raises:
        ConfigError: An unknown or repeated name, or no baseline.
    """
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    allowed = ", ".join(VARIANTS)
    for name in names:
        if name not in VARIANTS:
            raise ConfigError(f"--variants={text!r} is invalid: unknown {name!r}; allowed values: {allowed}")
    if len(set(names)) != len(names) or BASELINE not in names or len(names) < 2:
        raise ConfigError(
            f"--variants={text!r} is invalid; allowed values: {BASELINE!r} and at least one other of {allowed}, "
            "each once"
        )
    return (BASELINE, *(n for n in names if n != BASELINE))


# --- execution ------------------------------------------------------------------------------


def _cached(run: RunConfig, runs_dir: Path) -> dict[str, Any] | None:
    result = load_result(runs_dir / run.name)
    if result is not None and result.get("config") == run.to_dict():
        return result
    return None


def _worker(run_data: dict[str, Any], out_dir: str, root: str | None) -> dict[str, Any]:
    """Train one run in a worker process (one torch thread) and return its summary."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    import lerobot_policy_e2hil  # noqa: F401  (registers e2hil, e2hil_sim)

    from .trainer import summary_line

    run = RunConfig.from_dict(run_data)
    result = train_run(run, out_dir=Path(out_dir), root=Path(root) if root else None, log=_flush_print)
    return {"name": result["name"], "line": summary_line(result), "wall_s": result["timing"]["wall_s"]}


def _flush_print(line: str) -> None:
    print(line, flush=True)


def execute(
    runs: Sequence[RunConfig],
    runs_dir: Path,
    workers: int = 2,
    root: Path | None = None,
    force: bool = False,
    log: Callable[[str], None] = _flush_print,
) -> dict[str, Any]:
    """Train the runs that have no cached result, ``workers`` at a time; return timing facts.

    ``workers == 1`` trains in this process (no start-up cost), otherwise in spawned
    processes, each with one torch thread.
    """
    from tqdm import tqdm

    runs_dir = Path(runs_dir)
    todo = [run for run in runs if force or _cached(run, runs_dir) is None]
    log(
        f"[e2hil-bench] {len(runs)} runs, {len(runs) - len(todo)} cached, {len(todo)} to train, {workers} worker(s)"
    )
    start = time.perf_counter()
    bar = tqdm(total=len(todo), desc="runs", disable=not todo)
    if workers <= 1:
        for run in todo:
            result = train_run(run, out_dir=runs_dir / run.name, root=root, log=log)
            bar.update(1)
            del result
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [
                pool.submit(_worker, run.to_dict(), str(runs_dir / run.name), str(root) if root else None)
                for run in todo
            ]
            for future in as_completed(futures):
                future.result()
                bar.update(1)
    bar.close()
    wall = time.perf_counter() - start
    log(f"[e2hil-bench] trained {len(todo)} runs in {wall:.0f} s")
    return {"trained": len(todo), "cached": len(runs) - len(todo), "wall_s": wall, "workers": workers}


def suite_runs(
    budget: Budget,
    seeds: int,
    config_path: str = DEFAULT_CONFIG,
    first_seed: int = 0,
    variants: Sequence[str] = DEFAULT_VARIANTS,
) -> list[RunConfig]:
    """Every (variant, seed) run, seeds interleaved so partial results stay balanced."""
    return [
        _variant_run(budget, name, seed, config_path)
        for seed in range(first_seed, first_seed + seeds)
        for name in variants
    ]


def _variant_run(budget: Budget, variant: str, seed: int, config_path: str) -> RunConfig:
    method, fields = VARIANTS[variant]
    return budget.run(method, seed, config_path, **fields)


SWEEP_REFERENCE = "HIL-SERL (SAC), reference"


def sweep_runs(
    budget: Budget, seeds: int, config_path: str = DEFAULT_CONFIG, first_seed: int = 0
) -> list[tuple[str, list[RunConfig]]]:
    """E2HiL runs of each :data:`SWEEP_VARIANTS` entry, then the SAC runs of the same seeds."""
    seed_range = range(first_seed, first_seed + seeds)
    variants = [
        (label, [budget.run("e2hil", seed, config_path, **values) for seed in seed_range])
        for label, values in SWEEP_VARIANTS
    ]
    return [*variants, (SWEEP_REFERENCE, [budget.run("sac", seed, config_path) for seed in seed_range])]


# --- per-run facts --------------------------------------------------------------------------


def run_facts(result: dict[str, Any]) -> dict[str, Any]:
    """The numbers of one run that the report aggregates."""
    evals = result["evals"]
    steps = [e["env_step"] for e in evals]
    success = [e["success"] for e in evals]
    s, t = result["summary"], result["timing"]
    by_position = evals[-1].get("by_position", {}) if evals else {}
    return {
        "seed": result["config"]["seed"],
        "final_success": s["final_success"],
        "final_success_by_position": by_position,
        "final_success_worst_position": min(by_position.values()) if by_position else math.nan,
        "train_success_by_position": train_success_by_position(result),
        "steps_to_80": an.steps_to_threshold(steps, success, SUCCESS_THRESHOLD),
        "intervention_rate": s["intervention_rate"],
        "intervention_steps": s["intervention_steps"],
        "late_intervention_rate": late_intervention_rate(result["episodes"], s["env_steps"]),
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


def _mean_of(records: list[dict[str, Any]], key: str) -> float:
    values = [r[key] for r in records if key in r and r[key] is not None and math.isfinite(r[key])]
    return float(np.mean(values)) if values else float("nan")


def _ci_dict(values: Sequence[float]) -> dict[str, float]:
    ci = an.mean_ci(values)
    return {"mean": ci.mean, "low": ci.low, "high": ci.high, "half_width": ci.half_width, "n": ci.n}


def method_summary(facts: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and 95% CI over seeds of a method's run facts."""
    reached = [f["steps_to_80"] for f in facts if f["steps_to_80"] is not None]
    positions = sorted({k for f in facts for k in f.get("final_success_by_position", {})}, key=int)
    return {
        "final_success": _ci_dict([f["final_success"] for f in facts]),
        "final_success_by_position": {
            k: _ci_dict([f["final_success_by_position"].get(k, math.nan) for f in facts]) for k in positions
        },
        "final_success_worst_position": _ci_dict(
            [f.get("final_success_worst_position", math.nan) for f in facts]
        ),
        "intervention_rate": _ci_dict([f["intervention_rate"] for f in facts]),
        "intervention_steps": _ci_dict([f["intervention_steps"] for f in facts]),
        "late_intervention_rate": _ci_dict([f["late_intervention_rate"] for f in facts]),
        "kept_fraction": _ci_dict([f["kept_fraction"] for f in facts]),
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
            [p["opt_step"] for p in probes if _finite(p["predicted"]) and _finite(p["measured"])]
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
        "pearson_per_seed": _ci_dict(per_seed_pearson),
        "spearman_per_seed": _ci_dict(per_seed_spearman),
        "fraction_same_sign": float(np.mean(np.sign(predicted) == np.sign(measured)))
        if predicted.size
        else math.nan,
    }
    if env_steps is not None:
        _, binned_predicted, binned_measured = influence_series(results, env_steps)
        out["pearson_binned"] = an.pearson(*an.finite_pairs(binned_predicted, binned_measured))
        out["spearman_binned"] = an.spearman(*an.finite_pairs(binned_predicted, binned_measured))
    return out


def _finite(value: Any) -> bool:
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


# --- markdown -------------------------------------------------------------------------------


def _pct(ci: dict[str, float]) -> str:
    if not _finite(ci["mean"]):
        return "n/a"
    if not _finite(ci["half_width"]):
        return f"{100 * ci['mean']:.1f}%"
    return f"{100 * ci['mean']:.1f}% [{100 * ci['low']:.1f}, {100 * ci['high']:.1f}]"


def _num(ci: dict[str, float], digits: int = 0) -> str:
    if not _finite(ci["mean"]):
        return "n/a"
    if not _finite(ci["half_width"]):
        return f"{ci['mean']:.{digits}f}"
    return f"{ci['mean']:.{digits}f} [{ci['low']:.{digits}f}, {ci['high']:.{digits}f}]"


def _signed_pct(ci: dict[str, float]) -> str:
    if not _finite(ci["mean"]):
        return "n/a"
    if not _finite(ci["half_width"]):
        return f"{100 * ci['mean']:+.1f} pts"
    return f"{100 * ci['mean']:+.1f} pts [{100 * ci['low']:+.1f}, {100 * ci['high']:+.1f}]"


def _g(value: float) -> str:
    if not _finite(value):
        return "n/a"
    return f"{value:.3g}"


def _steps80(summary: dict[str, Any]) -> str:
    n, reached = summary["n"], summary["steps_to_80_reached"]
    if not reached:
        return f"not reached (0/{n})"
    return f"{summary['steps_to_80_median']:.0f} (median of {reached}/{n} seeds that reached it)"


def budget_line(budget: Budget, seeds: int, per: str = "method") -> str:
    """One sentence describing the budget."""
    extra = f"; overrides {' '.join(budget.overrides)}" if budget.overrides else ""
    return (
        f"{seeds} seeds per {per}, {budget.env_steps} env steps per run, "
        f"{budget.updates_per_env_step:g} updates per env step, batch {budget.batch_size}, "
        f"teacher-free evaluation every {budget.eval_every} env steps ({budget.eval_episodes} episodes) "
        f"and {budget.final_eval_episodes} episodes at the end{extra}"
    )


# --- suite report ---------------------------------------------------------------------------


def suite_report(
    budget: Budget,
    seeds: int,
    runs_dir: Path,
    report_dir: Path,
    command: str,
    timing: dict[str, Any] | None = None,
    config_path: str = DEFAULT_CONFIG,
    first_seed: int = 0,
    variants: Sequence[str] = DEFAULT_VARIANTS,
) -> dict[str, Any]:
    """Aggregate the suite's runs and write ``suite.json``, ``suite.md`` and the PNGs to ``report_dir``.

    Every variant is compared with :data:`BASELINE`, paired by seed. With listed cube positions
    (``env.cube_positions``), the report adds success per position and ``suite_positions.png``.
    """
    from . import plots

    runs_dir, report_dir = Path(runs_dir), Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    variants = tuple(variants)
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in variants}
    dirs: dict[str, list[Path]] = {m: [] for m in variants}
    for seed in range(first_seed, first_seed + seeds):
        for m in variants:
            run = _variant_run(budget, m, seed, config_path)
            result = _cached(run, runs_dir)
            if result is None:
                raise FileNotFoundError(f"no result for run {run.name} in {runs_dir}; run the suite first")
            results[m].append(result)
            dirs[m].append(runs_dir / run.name)

    facts = {m: [run_facts(r) for r in results[m]] for m in variants}
    summary = {m: method_summary(facts[m]) for m in variants}
    paired_all = {}
    for m in variants[1:]:
        paired_all[m] = {}
        for key in (
            "final_success",
            "final_success_worst_position",
            "intervention_rate",
            "late_intervention_rate",
            "intervention_steps",
        ):
            diffs = [e[key] - b[key] for e, b in zip(facts[m], facts[BASELINE], strict=True)]
            paired_all[m][key] = _ci_dict(diffs)
    validation = {m: influence_validation(results[m], budget.env_steps) for m in variants}
    samples = {m: pooled_samples(dirs[m]) for m in variants}
    table2 = {m: an.intervention_table(samples[m]["abs_c"], samples[m]["is_intervention"]) for m in variants}
    drops = {
        m: an.mask_drop_table(samples[m]["is_intervention"], samples[m]["kept"], samples[m]["dropped_high"])
        for m in variants
    }

    curves = {m: method_curves(results[m], budget.env_steps) for m in variants}
    panels = {metric: {m: curves[m][metric] for m in variants} for metric in curves[BASELINE]}
    titles = {
        "success": "teacher-free success",
        "intervention_rate": "intervention rate (per bin)",
        "entropy": "policy entropy (probe, nats)",
        "kept_fraction": "kept fraction (SAC: all)",
    }
    figures = {
        "curves": plots.plot_curves(panels, titles, report_dir / "suite_curves.png", seeds),
        "scatter": plots.plot_influence_scatter(
            {m: _pairs(results[m]) for m in variants}, validation, report_dir / "influence_scatter.png"
        ),
        "series": plots.plot_influence_series(
            {m: influence_series(results[m], budget.env_steps) for m in variants},
            report_dir / "influence_series.png",
        ),
        "hist": plots.plot_influence_hist(
            {m: (samples[m]["abs_c"], samples[m]["is_intervention"]) for m in variants},
            report_dir / "influence_hist.png",
        ),
    }
    position_panels: dict[str, dict[str, tuple]] = {}
    for m in variants:
        for index, curve in position_curves(results[m]).items():
            position_panels.setdefault(f"position {index}", {})[m] = curve
    if position_panels:
        figures["positions"] = plots.plot_curves(
            position_panels,
            {k: f"teacher-free success, {k}" for k in position_panels},
            report_dir / "suite_positions.png",
            seeds,
        )
    report = {
        "command": command,
        "budget": dataclasses.asdict(budget),
        "seeds": seeds,
        "variants": list(variants),
        "task": task_description(_variant_run(budget, BASELINE, first_seed, config_path)),
        "timing": _previous_timing(report_dir / "suite.json", timing),
        "summary": summary,
        "paired_difference_minus_sac": paired_all,
        **({"paired_difference_e2hil_minus_sac": paired_all["e2hil"]} if "e2hil" in paired_all else {}),
        "per_seed": facts,
        "influence_validation": validation,
        "table2": table2,
        "mask_drops": drops,
        "figures": [p.name for p in figures.values()],
    }
    (report_dir / "suite.json").write_text(json.dumps(report, indent=1, default=_json_default))
    (report_dir / "suite.md").write_text(suite_markdown(report, budget))
    return report


def task_description(run: RunConfig) -> dict[str, Any]:
    """The task of a run as its parsed config has it: cube placement, reward, teacher profile."""
    from .config import load_pipeline_config

    env = load_pipeline_config(run, _source_root(run)).env
    placement = (
        f"one of {len(env.cube_positions)} positions {env.cube_positions}"
        if env.cube_positions
        else ("random in x 0.3-0.5, y -0.15-0.15" if env.random_block_position else "fixed at (0.5, 0)")
    )
    return {
        "cube": placement,
        "cube_positions": [list(p) for p in env.cube_positions],
        "reward": env.reward,
        "teacher_profile": env.teacher.profile,
        "teacher_mode": env.teacher.mode,
    }


def _source_root(run: RunConfig) -> Path | None:
    """Directory a relative config path is resolved against: cwd, else the source checkout."""
    if Path(run.config_path).is_absolute() or Path(run.config_path).exists():
        return None
    return Path(__file__).resolve().parents[3]


def _previous_timing(path: Path, timing: dict[str, Any] | None) -> dict[str, Any]:
    """``timing``, or (when the report is only rebuilt) the timing an earlier report recorded."""
    if timing is not None:
        return timing
    if path.exists():
        return json.loads(path.read_text()).get("timing", {})
    return {}


def _pairs(results: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    predicted = [p["predicted"] for r in results for p in r["probes"]]
    measured = [p["measured"] for r in results for p in r["probes"]]
    return an.finite_pairs(predicted, measured)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def suite_markdown(report: dict[str, Any], budget: Budget) -> str:
    """The suite report as markdown (tables and figure links relative to the report directory)."""
    s, seeds = report["summary"], report["seeds"]
    variants = _variants(report)
    task = report.get("task")
    lines = [
        f"<!-- generated by: {report['command']} -->",
        "",
        f"Budget: {budget_line(budget, seeds)}. Means with 95% Student-t intervals over seeds in brackets.",
        "",
    ]
    if task:
        lines += [
            f"Task: cube {task['cube']}, reward `{task['reward']}`, teacher `{task['teacher_mode']}` with the "
            f"`{task['teacher_profile']}` profile.",
            "",
        ]
    lines += [
        "| method | teacher-free success (final) | env steps to 80% success | intervention rate | "
        f"intervention rate, last {int(100 * LATE_FRACTION)}% | intervention steps | kept fraction | "
        "env steps/s | updates/s | wall per run |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m in variants:
        x = s[m]
        kept = "1 (all)" if m == BASELINE else _num(x["kept_fraction"], 3)
        lines.append(
            f"| {_label(m)} | {_pct(x['final_success'])} | {_steps80(x)} | {_pct(x['intervention_rate'])} | "
            f"{_pct(x['late_intervention_rate'])} | {_num(x['intervention_steps'])} | {kept} | {x['env_steps_per_s']:.1f} | {x['updates_per_s']:.1f} | "
            f"{x['wall_s']:.0f} s |"
        )
    lines.append("")
    for m in variants[1:]:
        paired = _paired(report, m)
        worst = paired.get("final_success_worst_position")
        worst_text = (
            f", success at the worse position {_signed_pct(worst)}"
            if worst and _finite(worst["mean"])
            else ""
        )
        lines += [
            "Paired by seed (same seed = same initial weights, teacher and cube sequence), "
            f"{_label(m)} minus SAC: success {_signed_pct(paired['final_success'])}{worst_text}, intervention rate "
            f"{_signed_pct(paired['intervention_rate'])} (last {int(100 * LATE_FRACTION)}% of the env steps: "
            f"{_signed_pct(paired['late_intervention_rate'])}), intervention steps {_num(paired['intervention_steps'])}.",
            "",
        ]
    lines += position_markdown(report)
    lines += [
        "Per seed (final success / env steps to 80% / intervention rate / intervention steps):",
        "",
        "| seed | " + " | ".join(_label(m) for m in variants) + " |",
        "| --- | " + " | ".join("---" for _ in variants) + " |",
    ]
    for i, fact in enumerate(report["per_seed"][BASELINE]):
        cells = []
        for m in variants:
            f = report["per_seed"][m][i]
            s80 = "-" if f["steps_to_80"] is None else str(f["steps_to_80"])
            cells.append(
                f"{100 * f['final_success']:.0f}% / {s80} / {100 * f['intervention_rate']:.1f}% / {f['intervention_steps']}"
            )
        lines.append(f"| {fact['seed']} | " + " | ".join(cells) + " |")
    lines += ["", "![curves](suite_curves.png)", ""]
    lines += influence_markdown(report)
    lines += table2_markdown(report)
    return "\n".join(lines) + "\n"


def _label(method: str) -> str:
    return {"sac": "HIL-SERL (SAC)", "e2hil": "E2HiL", "e2hil_first_order": "E2HiL, first-order c"}.get(
        method, method
    )


def _variants(report: dict[str, Any]) -> tuple[str, ...]:
    """The report's variants (reports written before variants existed: sac and e2hil)."""
    return tuple(report.get("variants", DEFAULT_VARIANTS))


def _paired(report: dict[str, Any], variant: str) -> dict[str, Any]:
    if "paired_difference_minus_sac" in report:
        return report["paired_difference_minus_sac"][variant]
    return report["paired_difference_e2hil_minus_sac"]


def position_markdown(report: dict[str, Any]) -> list[str]:
    """Teacher-free success per cube position (the collapse signature: one solved, the other not)."""
    variants, s = _variants(report), report["summary"]
    positions = sorted({k for m in variants for k in s[m].get("final_success_by_position", {})}, key=int)
    if not positions:
        return []
    coords = (report.get("task") or {}).get("cube_positions") or []
    names = [
        f"position {k}" + (f" {tuple(coords[int(k)])}" if int(k) < len(coords) else "") for k in positions
    ]
    lines = [
        "Teacher-free success per cube position at the end (the final evaluation's episodes at each position), "
        "and at the worse of the positions per seed (a policy that has collapsed onto one position scores low there):",
        "",
        "| method | " + " | ".join(names) + " | worse position |",
        "| --- | " + " | ".join("---" for _ in positions) + " | --- |",
    ]
    for m in variants:
        cells = [_pct(s[m]["final_success_by_position"][k]) for k in positions]
        lines.append(
            f"| {_label(m)} | " + " | ".join(cells) + f" | {_pct(s[m]['final_success_worst_position'])} |"
        )
    lines += ["", "![positions](suite_positions.png)", ""]
    return lines


def influence_markdown(report: dict[str, Any]) -> list[str]:
    """Influence validation table."""
    v = report["influence_validation"]
    variants = _variants(report)
    lines = [
        "Influence validation (every probed actor step, seeds pooled): predicted "
        "`dH_pred = actor_lr * mean_{i kept} c_i` against measured `dH = H_after - H_before` on the "
        f"actor's batch. Early = first {int(100 * EARLY_FRACTION)}% of the updates.",
        "",
        "| method | probed steps | Pearson | Spearman | Pearson per seed | Pearson early / late | "
        f"Spearman early / late | same sign | Pearson / Spearman of the {SERIES_BINS}-bin curves |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m in variants:
        x = v[m]
        lines.append(
            f"| {_label(m)} | {x['n']} | {_g(x['pearson'])} | {_g(x['spearman'])} | "
            f"{_num(x['pearson_per_seed'], 2)} | {_g(x['pearson_early'])} / {_g(x['pearson_late'])} | "
            f"{_g(x['spearman_early'])} / {_g(x['spearman_late'])} | {100 * x['fraction_same_sign']:.0f}% | "
            f"{_g(x.get('pearson_binned', math.nan))} / {_g(x.get('spearman_binned', math.nan))} |"
        )
    lines += ["", "![scatter](influence_scatter.png)", "", "![series](influence_series.png)", ""]
    return lines


def table2_markdown(report: dict[str, Any]) -> list[str]:
    """The paper's Table II for both methods and the mask-drop table."""
    t2, drops = report["table2"], report["mask_drops"]
    variants = _variants(report)
    task = report.get("task") or {}
    teacher = f" Teacher profile: `{task['teacher_profile']}`." if task else ""
    lines = [
        "|c| of the actor-batch samples at the probed steps, seeds pooled (paper Table II: mean of |c| over "
        f"the top / lowest x% of samples; `All` = mean). SAC = HIL-SERL training, as in the paper.{teacher}",
        "",
        "| subset | "
        + " | ".join(f"{_label(m)}: {k}" for m in variants for k in ("all", "interv.", "explor."))
        + " |",
        "| --- | " + " | ".join("---" for _ in variants for _ in range(3)) + " |",
    ]
    rows = [label for label, _, _ in an.TABLE2_ROWS] + ["All", "p50", "n"]
    for row in rows:
        cells = []
        for m in variants:
            for k in ("all", "intervention", "exploration"):
                value = t2[m][row][k]
                cells.append(f"{value:.0f}" if row == "n" else _g(value))
        name = "median" if row == "p50" else ("samples" if row == "n" else row)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "What the entropy-bounded mask drops (E2HiL: the mask of the step; SAC: the mask E2HiL's default "
        "bounds l=0.05, u=0.90 would apply to the same batch). `high` = above the upper bound (shortcut), "
        "`low` = below the lower bound (noisy).",
        "",
        "| method | kind | share of samples | dropped | dropped high | dropped low | share of dropped |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m in variants:
        for kind in ("intervention", "exploration"):
            d = drops[m][kind]
            lines.append(
                f"| {_label(m)} | {kind} | {100 * d['share_of_samples']:.1f}% | {100 * d['dropped']:.1f}% | "
                f"{100 * d['dropped_high']:.1f}% | {100 * d['dropped_low']:.1f}% | {100 * d['share_of_dropped']:.1f}% |"
            )
    lines += ["", "![hist](influence_hist.png)", ""]
    return lines


# --- sweep report ---------------------------------------------------------------------------


def sweep_report(
    budget: Budget,
    seeds: int,
    runs_dir: Path,
    report_dir: Path,
    command: str,
    timing: dict[str, Any] | None = None,
    config_path: str = DEFAULT_CONFIG,
    first_seed: int = 0,
) -> dict[str, Any]:
    """Aggregate the sweep's runs and write ``sweep.json``, ``sweep.md`` and ``sweep.png``."""
    from . import plots

    runs_dir, report_dir = Path(runs_dir), Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for label, runs in sweep_runs(budget, seeds, config_path, first_seed):
        results = []
        for run in runs:
            result = _cached(run, runs_dir)
            if result is None:
                raise FileNotFoundError(f"no result for run {run.name} in {runs_dir}; run the sweep first")
            results.append(result)
        facts = [run_facts(r) for r in results]
        summary = method_summary(facts)
        rows.append({"variant": label, **summary, "per_seed": facts})
    plots.plot_sweep(
        [r["variant"] for r in rows],
        {
            "teacher-free success": (
                [r["final_success"]["mean"] for r in rows],
                [r["final_success"]["half_width"] for r in rows],
            ),
            "intervention rate": (
                [r["intervention_rate"]["mean"] for r in rows],
                [r["intervention_rate"]["half_width"] for r in rows],
            ),
        },
        report_dir / "sweep.png",
    )
    report = {
        "command": command,
        "budget": dataclasses.asdict(budget),
        "seeds": seeds,
        "timing": _previous_timing(report_dir / "sweep.json", timing),
        "rows": rows,
    }
    (report_dir / "sweep.json").write_text(json.dumps(report, indent=1, default=_json_default))
    lines = [
        f"<!-- generated by: {command} -->",
        "",
        f"E2HiL variants and HIL-SERL (SAC) on the same seeds for reference. "
        f"Budget: {budget_line(budget, seeds, 'variant')}. Means with 95% Student-t intervals over seeds.",
        "",
        "| variant | teacher-free success | env steps to 80% | intervention rate | intervention steps | kept fraction |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {_pct(r['final_success'])} | {_steps80(r)} | {_pct(r['intervention_rate'])} | "
            f"{_num(r['intervention_steps'])} | {'1 (all)' if r['variant'] == SWEEP_REFERENCE else _num(r['kept_fraction'], 3)} |"
        )
    lines += ["", "![sweep](sweep.png)", ""]
    (report_dir / "sweep.md").write_text("\n".join(lines) + "\n")
    return report
