"""Side-by-side learning diagnostics of several runs, for the late-collapse diagnosis (docs/sim.md).

Reads launcher runs (``<output_dir>/metrics.jsonl``) and benchmark runs (``<run>/result.json``),
prints one table per run (success, episode length, intervention share, critic loss, temperature,
entropy per slice of env steps) and writes one PNG with a row of panels per metric.

    python benchmarks/experiments/collapse_diagnosis.py RUN [RUN ...] --out docs/sim/collapse.png [--slices 10]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

# metrics key -> panel title; the keys LeRobot's SAC and our E2HiL log per update
TRAIN_KEYS = {
    "loss_critic": "critic loss",
    "temperature": "temperature alpha",
    "e2hil/entropy": "policy entropy (nats)",
    "loss_actor": "actor loss",
    "e2hil/kept_fraction": "E2HiL kept fraction",
}


def load_run(path: Path) -> dict[str, Any]:
    """``{"name", "episodes": [{env_step, length, success, intervention_steps}], "train": [...]}``."""
    path = Path(path)
    if (path / "result.json").exists():
        result = json.loads((path / "result.json").read_text())
        # the trainer stores each episode as [env step at its end, length, intervention steps, success, demo]
        episodes = [
            {"env_step": e[0], "length": e[1], "success": float(e[3]), "intervention_steps": e[2]}
            for e in result["episodes"]
        ]
        return {
            "name": result["name"],
            "episodes": episodes,
            "train": result["train_log"],
            "evals": result["evals"],
        }
    records = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines() if line.strip()]
    summary = json.loads((path / "summary.json").read_text()) if (path / "summary.json").exists() else {}
    evals = []
    if summary.get("teacher_free_success") is not None:
        evals = [{"env_step": summary["env_steps"], "success": summary["teacher_free_success"]}]
    return {
        "name": "/".join(path.parts[-3:]),
        "episodes": [r for r in records if r["kind"] == "episode"],
        "train": [r for r in records if r["kind"] == "train"],
        "evals": evals,
    }


def slice_table(run: dict[str, Any], slices: int) -> list[dict[str, Any]]:
    """Per slice of env steps: episode success and length, intervention share, train means."""
    episodes, train = run["episodes"], run["train"]
    if not episodes:
        return []
    last_step = episodes[-1]["env_step"]
    rows = []
    for k in range(slices):
        lo, hi = last_step * k / slices, last_step * (k + 1) / slices
        eps = [e for e in episodes if lo < e["env_step"] <= hi]
        tr = [t for t in train if lo < t["env_step"] <= hi]
        steps = sum(e["length"] for e in eps)
        row = {
            "env_step": int(hi),
            "episodes": len(eps),
            "success": sum(e["success"] for e in eps) / len(eps) if eps else float("nan"),
            "length": steps / len(eps) if eps else float("nan"),
            "intervention": sum(e["intervention_steps"] for e in eps) / steps if steps else float("nan"),
            "updates": tr[-1]["opt_step"] if tr else None,
        }
        for key in TRAIN_KEYS:
            values = [t[key] for t in tr if key in t]
            row[key] = sum(values) / len(values) if values else float("nan")
        rows.append(row)
    return rows


def print_table(run: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    print(f"\n## {run['name']}")
    evals = ", ".join(f"{e['env_step']}: {100 * e['success']:.0f}%" for e in run["evals"])
    print(f"teacher-free evaluations (env step: success): {evals or 'none'}")
    header = ["env step", "episodes", "success", "length", "interv.", "updates", *TRAIN_KEYS]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        cells = [
            str(r["env_step"]),
            str(r["episodes"]),
            f"{r['success']:.2f}",
            f"{r['length']:.0f}",
            f"{r['intervention']:.2f}",
            str(r["updates"]),
            *(f"{r[k]:.4g}" for k in TRAIN_KEYS),
        ]
        print("| " + " | ".join(cells) + " |")


def plot(runs: list[dict[str, Any]], out: Path, window: int = 30) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        "success (rolling, teacher active)",
        "teacher-free success",
        "updates per env step (so far)",
        *TRAIN_KEYS.values(),
    ]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.1 * len(panels)), sharex=True)
    for run in runs:
        eps = run["episodes"]
        xs = [e["env_step"] for e in eps]
        succ = [e["success"] for e in eps]
        rolling = [sum(succ[max(0, i - window + 1) : i + 1]) / min(i + 1, window) for i in range(len(succ))]
        (line,) = axes[0].plot(xs, rolling, label=run["name"])
        axes[1].plot(
            [e["env_step"] for e in run["evals"]],
            [e["success"] for e in run["evals"]],
            "o-",
            color=line.get_color(),
        )
        ratio = [(t["env_step"], t["opt_step"] / t["env_step"]) for t in run["train"] if t.get("env_step")]
        axes[2].plot([p[0] for p in ratio], [p[1] for p in ratio], color=line.get_color(), lw=0.8)
        for ax, key in zip(axes[3:], TRAIN_KEYS, strict=True):
            pts = [(t["env_step"], t[key]) for t in run["train"] if key in t]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], color=line.get_color(), lw=0.8)
    for ax, title in zip(axes, panels, strict=True):
        ax.set_ylabel(title, fontsize=8)
        ax.grid(alpha=0.3)
    axes[3].set_yscale("log")
    axes[4].set_yscale("log")
    axes[-1].set_xlabel("env step")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    print(f"\nplot: {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="launcher output dirs or benchmark run dirs")
    parser.add_argument("--out", type=Path, default=Path("outputs/collapse_diagnosis.png"))
    parser.add_argument("--slices", type=int, default=10, help="rows per table (>= 1)")
    args = parser.parse_args(argv)
    if args.slices < 1:
        parser.error(f"--slices must be >= 1, got {args.slices}")
    for path in args.runs:
        if not ((path / "result.json").is_file() or (path / "metrics.jsonl").is_file()):
            parser.error(
                f"run {str(path)!r}: no result.json (benchmark run) or metrics.jsonl (launcher run) in it"
            )
    runs = [load_run(p) for p in args.runs]
    for run in runs:
        print_table(run, slice_table(run, args.slices))
    plot(runs, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
