"""Run records: the small JSON of one finished run that a study commits, so it survives the machine.

A run directory (``runs_dir/<name>/``) holds ``result.json`` and the probe's per-sample arrays
(``samples.npz``, megabytes); both stay on the machine that trained it. A record holds what a
suite's report reads from a run: its fingerprint (the run's config, :meth:`.config.RunConfig.to_dict`),
summary, timing, episodes, evaluations (with success per cube position), the training log, and
the probed steps as columns with their floats to :data:`DIGITS` significant digits. Records are
written to ``records_dir/<name>.json`` as runs finish; a suite reuses a record whose fingerprint
equals its run's instead of training the run again (:func:`.runs.cached_result`).

Without the per-sample arrays, a report built from records leaves out the sections pooled over
samples (|c| by subset, what the mask drops, the |c| histogram) and says so.
"""

from __future__ import annotations

import functools
import json
import math
import subprocess
from pathlib import Path
from typing import Any

# Version of the record's layout; a record of another version is not reused
FORMAT = 1
# Significant digits of the probed steps' floats in a record
DIGITS = 6
# The probed steps' fields a record keeps (what the report reads)
PROBE_FIELDS = (
    "opt_step",
    "env_step",
    "entropy_before",
    "measured",
    "predicted",
    "kept_fraction",
    "intervention_fraction",
)
# The result's fields a record keeps as they are
KEPT_FIELDS = ("name", "config", "summary", "timing", "episodes", "episode_positions", "evals", "train_log")


def record_path(records_dir: Path, name: str) -> Path:
    """Where the record of run ``name`` lives."""
    return Path(records_dir) / f"{name}.json"


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.{DIGITS}g}") if math.isfinite(value) else value
    return value


def to_record(result: dict[str, Any], made_with: dict[str, Any] | None = None) -> dict[str, Any]:
    """The record of a run's ``result.json`` (:func:`.trainer.train_run`'s result).

    Args:
        result: The run's result.
        made_with: Provenance (not part of the fingerprint); None: :func:`provenance`.
    """
    probes = result.get("probes") or []
    columns = {key: [_rounded(p.get(key, math.nan)) for p in probes] for key in PROBE_FIELDS}
    return {
        "format": FORMAT,
        **{key: result.get(key) for key in KEPT_FIELDS},
        "made_with": provenance() if made_with is None else made_with,
        "probe_columns": columns,
    }


@functools.cache
def provenance() -> dict[str, Any]:
    """The package version and, in a git checkout, the commit a record was made with.

    Provenance only: the fingerprint is the run's config, so a record stays valid across code
    changes; a change that alters what a run computes must change the config (or the records
    must be made again), and the commit says which code made each record.
    """
    from importlib.metadata import version

    root = Path(__file__).resolve().parents[3]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"lerobot_policy_e2hil": version("lerobot_policy_e2hil"), "commit": commit}


def from_record(record: dict[str, Any]) -> dict[str, Any]:
    """A result with the fields the report reads, rebuilt from a record (probes as dicts again)."""
    columns = record["probe_columns"]
    count = len(next(iter(columns.values()), []))
    probes = [{key: columns[key][i] for key in columns} for i in range(count)]
    result = {key: record.get(key) for key in KEPT_FIELDS}
    result["probes"] = probes
    result["from_record"] = True
    return result


def write_record(result: dict[str, Any], records_dir: Path) -> Path:
    """Write the record of ``result`` to ``records_dir`` (atomically) and return its path."""
    path = record_path(records_dir, result["name"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(to_record(result), separators=(",", ":")) + "\n")
    tmp.replace(path)
    return path


def load_record(records_dir: Path, name: str, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """The result rebuilt from run ``name``'s record, or None if absent, of another format or config."""
    path = record_path(records_dir, name)
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    if record.get("format") != FORMAT or record.get("config") != fingerprint:
        return None
    return from_record(record)
