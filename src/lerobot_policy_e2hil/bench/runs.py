"""Which runs a suite or sweep consists of, training them, and the run cache.

Runs are cached by name under ``runs_dir/<name>/`` and reused when the saved config is the
same as the run's (:meth:`.config.RunConfig.to_dict`, its fingerprint): a run is deterministic
for its config, so a rerun would reproduce it. The suite and the sweep have different budgets
(:data:`.config.BUDGETS`) and, by default, different run caches, so neither overwrites the
other's runs.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .config import DEFAULT_CONFIG, Budget, RunConfig
from .records import load_record, write_record
from .trainer import load_result, train_run

# Suite variants: name -> (method, E2HiL fields of the run). Every variant runs the same seeds.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "sac": ("sac", {}),
    "e2hil": ("e2hil", {}),
    "e2hil_first_order": ("e2hil", {"influence_form": "first_order"}),
    # The control: the paper form's band count, samples chosen at random (issue 30)
    "random_mask": ("e2hil", {"random_mask": True}),
}
DEFAULT_VARIANTS = ("sac", "e2hil")
# The variant every other is compared with, paired by seed
BASELINE = "sac"
# The control every selection rule is also compared with when the suite runs it
CONTROL = "random_mask"
# The paper's regime (issue 15): two cube positions, the touch reward, the human-like teacher
PAPER_REGIME_CONFIG = "HIL-SERL/train_gym_hil_env_SIM_two_positions.json"
PAPER_REGIME_VARIANTS = ("sac", "e2hil", "e2hil_first_order", "random_mask")
# One-at-a-time sweep variants around the default (lower, upper, K); None: the JSON's value.
SWEEP_VARIANTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("default (l=0.05, u=0.90, K=8)", {}),
    ("l=0", {"influence_lower_quantile": 0.0}),
    ("l=0.10", {"influence_lower_quantile": 0.10}),
    ("u=0.85", {"influence_upper_quantile": 0.85}),
    ("u=1.0", {"influence_upper_quantile": 1.0}),
    ("K=4", {"num_action_samples": 4}),
    ("K=16", {"num_action_samples": 16}),
)
# Label of the sweep's SAC rows
SWEEP_REFERENCE = "HIL-SERL (SAC), reference"


def parse_variants(text: str) -> tuple[str, ...]:
    """``"sac,e2hil"`` -> ``("sac", "e2hil")``; the baseline first, each name once, all known.

    Raises:
        ConfigError: An unknown or repeated name, or no baseline.
    """
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    allowed = ", ".join(VARIANTS)
    for name in names:
        if name not in VARIANTS:
            raise ConfigError(f"variants={text!r} is invalid: unknown {name!r}; allowed values: {allowed}")
    if len(set(names)) != len(names) or BASELINE not in names or len(names) < 2:
        raise ConfigError(
            f"variants={text!r} is invalid; allowed values: {BASELINE!r} and at least one other of {allowed}, "
            "each once"
        )
    return (BASELINE, *(n for n in names if n != BASELINE))


# --- the runs of a suite and of a sweep -----------------------------------------------------


def variant_run(budget: Budget, variant: str, seed: int, config_path: str = DEFAULT_CONFIG) -> RunConfig:
    """The run of suite variant ``variant`` (a :data:`VARIANTS` key) with ``seed``."""
    method, fields = VARIANTS[variant]
    return budget.run(method, seed, config_path, **fields)


def suite_runs(
    budget: Budget,
    seeds: int,
    config_path: str = DEFAULT_CONFIG,
    first_seed: int = 0,
    variants: Sequence[str] = DEFAULT_VARIANTS,
) -> list[RunConfig]:
    """Every (variant, seed) run, seeds interleaved so partial results stay balanced."""
    return [
        variant_run(budget, name, seed, config_path)
        for seed in range(first_seed, first_seed + seeds)
        for name in variants
    ]


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


# --- the cache ------------------------------------------------------------------------------


def cached_result(run: RunConfig, runs_dir: Path, records_dir: Path | None = None) -> dict[str, Any] | None:
    """The saved result of ``run``: its run directory's, else its record's; None if neither matches.

    Either is reused only when its config equals ``run.to_dict()`` (the fingerprint).

    Args:
        run: The run.
        runs_dir: The run cache (``<runs_dir>/<name>/result.json``).
        records_dir: Committed run records (:mod:`.records`), or None.
    """
    fingerprint = run.to_dict()
    result = load_result(Path(runs_dir) / run.name)
    if result is not None and result.get("config") == fingerprint:
        return result
    if records_dir is not None:
        return load_record(Path(records_dir), run.name, fingerprint)
    return None


def require_result(
    run: RunConfig, runs_dir: Path, what: str, records_dir: Path | None = None
) -> dict[str, Any]:
    """:func:`cached_result`, which must exist.

    Raises:
        FileNotFoundError: The run has no result (``what`` names the command that trains it).
    """
    result = cached_result(run, runs_dir, records_dir)
    if result is None:
        where = f"{runs_dir}" + (f" or {records_dir}" if records_dir is not None else "")
        raise FileNotFoundError(f"no result for run {run.name} in {where}; run the {what} first")
    return result


def _record_finished(run: RunConfig, runs_dir: Path, records_dir: Path | None) -> None:
    """Write the record of a run that just finished in ``runs_dir`` (nothing without ``records_dir``)."""
    if records_dir is None:
        return
    result = load_result(Path(runs_dir) / run.name)
    if result is not None:
        write_record(result, records_dir)


# --- training -------------------------------------------------------------------------------


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
    records_dir: Path | None = None,
) -> dict[str, Any]:
    """Train the runs that have no cached result or record, ``workers`` at a time; return timing facts.

    ``workers == 1`` trains in this process (no start-up cost), otherwise in spawned
    processes, each with one torch thread. Each finished run's record is written to
    ``records_dir`` (if given) as soon as it finishes.
    """
    from tqdm import tqdm

    runs_dir = Path(runs_dir)
    todo = [run for run in runs if force or cached_result(run, runs_dir, records_dir) is None]
    log(
        f"[e2hil-bench] {len(runs)} runs, {len(runs) - len(todo)} cached, {len(todo)} to train, {workers} worker(s)"
    )
    start = time.perf_counter()
    bar = tqdm(total=len(todo), desc="runs", disable=not todo)
    if workers <= 1:
        for run in todo:
            result = train_run(run, out_dir=runs_dir / run.name, root=root, log=log)
            if records_dir is not None:
                write_record(result, records_dir)
            bar.update(1)
            del result
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {
                pool.submit(
                    _worker, run.to_dict(), str(runs_dir / run.name), str(root) if root else None
                ): run
                for run in todo
            }
            for future in as_completed(futures):
                future.result()
                _record_finished(futures[future], runs_dir, records_dir)
                bar.update(1)
    bar.close()
    wall = time.perf_counter() - start
    log(f"[e2hil-bench] trained {len(todo)} runs in {wall:.0f} s")
    return {"trained": len(todo), "cached": len(runs) - len(todo), "wall_s": wall, "workers": workers}
