"""Plot the E2HiL diagnostics of a run from its ``metrics.jsonl``, against learner update.

``e2hil-sim`` writes ``<output_dir>/metrics.jsonl``: one JSON record per line, the learner's
``{"kind": "train", "opt_step": ..., "e2hil/...": ...}`` every ``log_freq`` updates among them
(docs/metrics.md gives each key's formula). This script needs only json and matplotlib.

    python examples/plot_metrics.py outputs/e2hil_sim/<run>/metrics.jsonl
    python examples/plot_metrics.py outputs/e2hil_sim/<run>/metrics.jsonl --output diagnostics.png
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

# One panel per row: (title, keys drawn in it)
PANELS = (
    (
        "kept fraction",
        ("e2hil/kept_fraction", "e2hil/kept_fraction_intervention", "e2hil/kept_fraction_policy"),
    ),
    ("policy entropy (MC estimate)", ("e2hil/entropy",)),
    ("mean influence c", ("e2hil/c_mean", "e2hil/c_mean_kept")),
    ("|c| selection bounds", ("e2hil/c_abs_lower", "e2hil/c_abs_upper")),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("metrics", type=Path, help="a run's metrics.jsonl")
    parser.add_argument("--output", type=Path, help="PNG to write (default: e2hil_diagnostics.png beside it)")
    return parser.parse_args(argv)


def read_train_records(path: Path) -> list[dict]:
    """The ``train`` records of a metrics file, in order; a torn last line is skipped."""
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("kind") == "train":
            records.append(record)
    return records


def series(records: list[dict], key: str) -> tuple[list[int], list[float]]:
    """``(opt_step, value)`` of ``key`` over the records that have a finite value."""
    points = [(r["opt_step"], float(r[key])) for r in records if key in r and math.isfinite(float(r[key]))]
    return [p[0] for p in points], [p[1] for p in points]


def plot(records: list[dict], output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(PANELS), 1, figsize=(7, 2.4 * len(PANELS)), sharex=True)
    for ax, (title, keys) in zip(axes, PANELS, strict=True):
        for key in keys:
            steps, values = series(records, key)
            if steps:
                ax.plot(steps, values, label=key)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7)
    axes[-1].set_xlabel("learner update")
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not args.metrics.is_file():
        print(f"error: {args.metrics} does not exist; give a run's metrics.jsonl", file=sys.stderr)
        sys.exit(2)
    records = read_train_records(args.metrics)
    keys = [key for _, panel in PANELS for key in panel if series(records, key)[0]]
    if not keys:
        print(
            f'error: {args.metrics} has no train record with e2hil/ diagnostics (an "e2hil" run logs '
            "them every log_freq learner updates)",
            file=sys.stderr,
        )
        sys.exit(2)
    output = args.output or args.metrics.with_name("e2hil_diagnostics.png")
    plot(records, output)
    for key in keys:
        steps, values = series(records, key)
        print(f"{key}: {len(steps)} points, last {values[-1]:.4g} at update {steps[-1]}")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
