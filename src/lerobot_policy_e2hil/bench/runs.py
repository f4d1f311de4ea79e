"""Which runs a suite or sweep consists of, training them, and the run cache.

Runs are cached by name under ``runs_dir/<name>/`` and reused when the saved config is the
same as the run's (:meth:`.config.RunConfig.to_dict`, its fingerprint): a run is deterministic
for its config, so a rerun would reproduce it. The suite and the sweep have different budgets
(:data:`.config.BUDGETS`) and, by default, different run caches, so neither overwrites the
other's runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .config import DEFAULT_CONFIG, Budget, RunConfig
from .executors import LOG_FILE, LocalExecutor, RayExecutor, land
from .records import load_record, write_record
from .trainer import load_result

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
        ConfigError: The run has no result (``what`` names the command that trains it).
    """
    result = cached_result(run, runs_dir, records_dir)
    if result is None:
        where = f"{runs_dir}" + (f" or {records_dir}" if records_dir is not None else "")
        raise ConfigError(
            f"report_only=true is invalid: run {run.name} has no result in {where}; allowed values: "
            f"report_only=false (the {what} trains the missing runs), or --seeds/--variants that the "
            "finished runs cover"
        )
    return result


def _record_finished(run: RunConfig, runs_dir: Path, records_dir: Path | None) -> None:
    """Write the record of a run that just finished in ``runs_dir`` (nothing without ``records_dir``)."""
    if records_dir is None:
        return
    result = load_result(Path(runs_dir) / run.name)
    if result is not None:
        write_record(result, records_dir)


# --- training -------------------------------------------------------------------------------


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
    executor: LocalExecutor | RayExecutor | None = None,
) -> dict[str, Any]:
    """Train the runs that have no cached result or record; return timing facts and the failed runs.

    The local executor (the default) trains ``workers`` runs at a time: in this process
    (``workers == 1``), otherwise in spawned processes, each with one torch thread; a Ray
    executor sends each run to the cluster (:mod:`.executors`). Each run's output goes to
    ``<run dir>/train.log``. A line is logged whenever the count of runs done, running or left
    changes; a failed run is logged with its cause and log and the others go on. Each finished
    run's record is written to ``records_dir`` (if given) as soon as it finishes.

    Returns:
        ``trained`` (runs that finished), ``cached``, ``wall_s``, ``workers``, and ``failed``
        (``{name: (cause, log path)}``) only when a run failed.
    """
    runs_dir = Path(runs_dir)
    executor = executor if executor is not None else LocalExecutor(workers)
    todo = [run for run in runs if force or cached_result(run, runs_dir, records_dir) is None]
    width = f"{workers} worker(s)" if executor.name == "local" else f"executor {executor.name}"
    log(f"[e2hil-bench] {len(runs)} runs, {len(runs) - len(todo)} cached, {len(todo)} to train, {width}")
    start = time.perf_counter()
    failed: dict[str, tuple[str, str]] = {}
    finished, shown = 0, None
    left, running = list(todo), {}
    if todo:
        with executor:
            try:
                while left or running:
                    while left and len(running) < executor.slots():
                        run = left.pop(0)
                        running[executor.submit(run, runs_dir / run.name, root)] = run
                    state = (finished, len(running), len(left), len(failed))
                    if state != shown:
                        log(
                            f"[e2hil-bench] runs: {finished} done, {len(running)} running, {len(left)} left, "
                            f"{len(failed)} failed"
                        )
                        shown = state
                    for handle, outcome in executor.wait(list(running)):
                        run = running.pop(handle)
                        land(outcome, runs_dir / run.name)
                        if outcome.error is None:
                            finished += 1
                            log(outcome.line)
                            _record_finished(run, runs_dir, records_dir)
                        else:
                            where = str(runs_dir / run.name / LOG_FILE)
                            failed[run.name] = (outcome.error, where)
                            log(f"[e2hil-bench] failed: {run.name}: {outcome.error} (log: {where})")
            finally:
                executor.cancel(list(running))
        log(f"[e2hil-bench] runs: {finished} done, 0 running, 0 left, {len(failed)} failed")
    wall = time.perf_counter() - start
    log(f"[e2hil-bench] trained {finished} runs in {wall:.0f} s")
    timing: dict[str, Any] = {"trained": finished, "cached": len(runs) - len(todo), "wall_s": wall}
    timing["workers"] = workers
    if executor.name != "local":
        timing["executor"] = executor.name
    if failed:
        timing["failed"] = failed
    return timing
