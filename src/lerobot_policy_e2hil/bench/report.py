"""The suite's and the sweep's report files: JSON (every number), markdown (tables) and PNG figures.

Reads the cached runs (:mod:`.runs`), aggregates them (:mod:`.aggregate`) and writes
``suite.{json,md}`` / ``sweep.{json,md}`` and the figures (:mod:`.plots`) to a report directory.
A report rebuilt from the same runs is byte-identical.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import aggregate as ag
from . import analysis as an
from .aggregate import EARLY_FRACTION, LATE_FRACTION, SERIES_BINS, finite
from .config import DEFAULT_CONFIG, Budget, RunConfig
from .runs import (
    BASELINE,
    CONTROL,
    DEFAULT_VARIANTS,
    SWEEP_REFERENCE,
    require_result,
    sweep_runs,
    variant_run,
)
from .trainer import SAMPLES_FILE

# --- markdown -------------------------------------------------------------------------------


def _pct(ci: dict[str, float]) -> str:
    if not finite(ci["mean"]):
        return "n/a"
    if not finite(ci["half_width"]):
        return f"{100 * ci['mean']:.1f}%"
    return f"{100 * ci['mean']:.1f}% [{100 * ci['low']:.1f}, {100 * ci['high']:.1f}]"


def _num(ci: dict[str, float], digits: int = 0) -> str:
    if not finite(ci["mean"]):
        return "n/a"
    if not finite(ci["half_width"]):
        return f"{ci['mean']:.{digits}f}"
    return f"{ci['mean']:.{digits}f} [{ci['low']:.{digits}f}, {ci['high']:.{digits}f}]"


def _signed_pct(ci: dict[str, float]) -> str:
    if not finite(ci["mean"]):
        return "n/a"
    if not finite(ci["half_width"]):
        return f"{100 * ci['mean']:+.1f} pts"
    return f"{100 * ci['mean']:+.1f} pts [{100 * ci['low']:+.1f}, {100 * ci['high']:+.1f}]"


def _g(value: float) -> str:
    if not finite(value):
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
    records_dir: Path | None = None,
) -> dict[str, Any]:
    """Aggregate the suite's runs and write ``suite.json``, ``suite.md`` and the PNGs to ``report_dir``.

    Every variant is compared with :data:`BASELINE`, paired by seed. With listed cube positions
    (``env.cube_positions``), the report adds success per position and ``suite_positions.png``.
    """
    runs_dir, report_dir = Path(runs_dir), Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    variants = tuple(variants)
    runs = {m: [variant_run(budget, m, seed, config_path) for seed in range(first_seed, first_seed + seeds)]
            for m in variants}  # fmt: skip
    results = {m: [require_result(run, runs_dir, "suite", records_dir) for run in runs[m]] for m in variants}
    facts = {m: [ag.run_facts(r) for r in results[m]] for m in variants}
    summary = {m: ag.method_summary(facts[m]) for m in variants}
    paired_all = ag.paired_differences(facts, variants)
    selection_rules = [m for m in variants if m not in (BASELINE, CONTROL)]
    paired_control = (
        ag.paired_differences(facts, [CONTROL, *selection_rules], reference=CONTROL)
        if CONTROL in variants and selection_rules
        else {}
    )
    validation = {m: ag.influence_validation(results[m], budget.env_steps) for m in variants}
    # The sections pooled over samples need every run's samples.npz (records do not carry them)
    run_dirs = {m: [runs_dir / run.name for run in runs[m]] for m in variants}
    with_samples = all((d / SAMPLES_FILE).is_file() for dirs in run_dirs.values() for d in dirs)
    samples = {m: ag.pooled_samples(run_dirs[m]) for m in variants} if with_samples else None
    table2 = drops = None
    if samples is not None:
        table2 = {
            m: an.intervention_table(samples[m]["abs_c"], samples[m]["is_intervention"]) for m in variants
        }
        drops = {
            m: an.mask_drop_table(
                samples[m]["is_intervention"], samples[m]["kept"], samples[m]["dropped_high"]
            )
            for m in variants
        }
    figures = suite_figures(results, samples, validation, budget.env_steps, seeds, report_dir)
    report = {
        "command": command,
        "budget": dataclasses.asdict(budget),
        "seeds": seeds,
        "variants": list(variants),
        "task": task_description(variant_run(budget, BASELINE, first_seed, config_path)),
        "timing": _previous_timing(report_dir / "suite.json", timing),
        "summary": summary,
        "paired_difference_minus_sac": paired_all,
        **({"paired_difference_e2hil_minus_sac": paired_all["e2hil"]} if "e2hil" in paired_all else {}),
        **({"paired_difference_minus_control": paired_control} if paired_control else {}),
        "per_seed": facts,
        "influence_validation": validation,
        "table2": table2,
        "mask_drops": drops,
        "figures": [p.name for p in figures.values()],
    }
    (report_dir / "suite.json").write_text(json.dumps(report, indent=1, default=_json_default))
    (report_dir / "suite.md").write_text(suite_markdown(report, budget))
    return report


def suite_figures(
    results: dict[str, list[dict[str, Any]]],
    samples: dict[str, dict[str, Any]] | None,
    validation: dict[str, dict[str, Any]],
    env_steps: int,
    seeds: int,
    report_dir: Path,
) -> dict[str, Path]:
    """Write the suite's PNGs (curves, influence scatter, series and histogram, per position) to ``report_dir``.

    Args:
        results: Per variant, its runs' results (seeds in order); the first variant is the baseline.
        samples: Per variant, :func:`.aggregate.pooled_samples` of its runs; None without them
            (a report from records): no histogram.
        validation: Per variant, :func:`.aggregate.influence_validation` of its runs.
        env_steps: The runs' budget.
        seeds: Seeds per variant (figure legends).
        report_dir: Where the files go.

    Returns:
        Figure key -> path, in the order the report lists them.
    """
    from . import plots

    variants = tuple(results)
    curves = {m: ag.method_curves(results[m], env_steps) for m in variants}
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
            {m: ag.influence_pairs(results[m]) for m in variants},
            validation,
            report_dir / "influence_scatter.png",
        ),
        "series": plots.plot_influence_series(
            {m: ag.influence_series(results[m], env_steps) for m in variants},
            report_dir / "influence_series.png",
        ),
    }
    if samples is not None:
        figures["hist"] = plots.plot_influence_hist(
            {m: (samples[m]["abs_c"], samples[m]["is_intervention"]) for m in variants},
            report_dir / "influence_hist.png",
        )
    position_panels: dict[str, dict[str, tuple]] = {}
    for m in variants:
        for index, curve in ag.position_curves(results[m]).items():
            position_panels.setdefault(f"position {index}", {})[m] = curve
    if position_panels:
        figures["positions"] = plots.plot_curves(
            position_panels,
            {k: f"teacher-free success, {k}" for k in position_panels},
            report_dir / "suite_positions.png",
            seeds,
        )
    return figures


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
        f"intervention rate, last {int(100 * LATE_FRACTION)}% | intervention steps | "
        f"policy entropy, last {int(100 * LATE_FRACTION)}% (nats) | kept fraction | "
        "env steps/s | updates/s | wall per run |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m in variants:
        x = s[m]
        kept = "1 (all)" if m == BASELINE else _num(x["kept_fraction"], 3)
        lines.append(
            f"| {_label(m)} | {_pct(x['final_success'])} | {_steps80(x)} | {_pct(x['intervention_rate'])} | "
            f"{_pct(x['late_intervention_rate'])} | {_num(x['intervention_steps'])} | {_num(x['late_entropy'], 2)} | {kept} | {x['env_steps_per_s']:.1f} | {x['updates_per_s']:.1f} | "
            f"{x['wall_s']:.0f} s |"
        )
    lines.append("")
    lines += paired_markdown(report)
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
    if report.get("table2") is None:
        lines += [
            "The sections pooled over samples (|c| by subset, what the mask drops, the |c| histogram) "
            f"are left out: some runs come from their records, which do not carry the per-sample arrays "
            f"(`{SAMPLES_FILE}` in each run directory).",
            "",
        ]
    else:
        lines += table2_markdown(report)
    return "\n".join(lines) + "\n"


# Paired facts in the paired table: (key, column title, format: "pct", "steps" or "nats")
PAIRED_COLUMNS = (
    ("final_success", "teacher-free success", "pct"),
    ("final_success_worst_position", "worse position", "pct"),
    ("intervention_rate", "intervention rate", "pct"),
    ("late_intervention_rate", f"intervention rate, last {int(100 * LATE_FRACTION)}%", "pct"),
    ("steps_to_80_censored", "env steps to 80% (not reached: the budget)", "steps"),
    ("late_entropy", f"entropy, last {int(100 * LATE_FRACTION)}% (nats)", "nats"),
)


def paired_markdown(report: dict[str, Any]) -> list[str]:
    """Paired differences by seed: every variant minus SAC, and each selection rule minus the control."""
    comparisons = [(m, BASELINE, _paired(report, m)) for m in _variants(report)[1:]]
    comparisons += [(m, CONTROL, d) for m, d in report.get("paired_difference_minus_control", {}).items()]
    if not comparisons:
        return []
    positions = sorted(
        (k for k in comparisons[0][2] if k.startswith(ag.POSITION_PREFIX)),
        key=lambda k: int(k.rsplit("_", 1)[1]),
    )
    columns = [*PAIRED_COLUMNS[:1], *((k, f"position {k.rsplit('_', 1)[1]}", "pct") for k in positions),
               *PAIRED_COLUMNS[1:]]  # fmt: skip
    lines = [
        "Paired by seed (same seed = same initial weights, teacher and cube sequence): mean difference with its "
        "95% Student-t interval; success and rates in points.",
        "",
        "| difference | " + " | ".join(title for _, title, _ in columns) + " |",
        "| --- | " + " | ".join("---" for _ in columns) + " |",
    ]
    for variant, reference, paired in comparisons:
        cells = []
        for key, _, kind in columns:
            ci = paired.get(key)
            if ci is None or not finite(ci["mean"]):
                cells.append("-")
            elif kind == "pct":
                cells.append(_signed_pct(ci))
            else:
                cells.append(_num(ci, 0 if kind == "steps" else 2))
        lines.append(f"| {_label(variant)} - {_label(reference)} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _label(method: str) -> str:
    from .plots import LABELS

    return LABELS.get(method, method)


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
    records_dir: Path | None = None,
) -> dict[str, Any]:
    """Aggregate the sweep's runs and write ``sweep.json``, ``sweep.md`` and ``sweep.png``."""
    from . import plots

    runs_dir, report_dir = Path(runs_dir), Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for label, runs in sweep_runs(budget, seeds, config_path, first_seed):
        results = [require_result(run, runs_dir, "sweep", records_dir) for run in runs]
        facts = [ag.run_facts(r) for r in results]
        summary = ag.method_summary(facts)
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
