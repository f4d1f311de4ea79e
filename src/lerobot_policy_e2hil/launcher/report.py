"""Progress lines, the end-of-run summary and the PNG plots, all read from ``metrics.jsonl``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..sim.config import LaunchConfig


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All complete records of a metrics file (a partly written last line is skipped)."""
    records = []
    if not Path(path).exists():
        return records
    with open(path) as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def episode_stats(
    records: list[dict[str, Any]], window: int, collapse_drop: float = LaunchConfig.collapse_drop
) -> dict[str, Any]:
    """Counters over the run and rates over the last ``window`` episodes.

    The intervention rate is the paper's: intervention steps / all env steps (here and in the
    plot). ``collapse`` is :func:`collapse_check` of the success series over ``window`` episodes.
    Only finished episodes count (the actor reports an episode when it ends), and after a resume
    only what the checkpoint kept (:func:`kept_records`). ``opt_steps`` is the newest optimisation
    step any record names (``train`` records come every ``log_freq`` updates, checkpoints too);
    ``updates_per_env_step`` is it over ``env_steps`` (``env.updates_per_env_step`` holds it).
    ``by_actor`` is :func:`actor_stats`.
    """
    records = kept_records(records)
    episodes = [r for r in records if r["kind"] == "episode"]
    train = [r for r in records if r["kind"] == "train"]
    steps = [r["opt_step"] for r in train] + [r["step"] for r in records if r["kind"] == "checkpoint"]
    last = episodes[-window:] if window > 0 else episodes
    steps_last = sum(r["length"] for r in last)
    steps_all = sum(r["length"] for r in episodes)
    env_steps = episodes[-1]["env_step"] if episodes else 0
    return {
        "env_steps": env_steps,
        "episodes": len(episodes),
        "opt_steps": max(steps, default=0),
        "updates_per_env_step": round(max(steps, default=0) / env_steps, 3) if env_steps else None,
        "success_last": (sum(r["success"] for r in last) / len(last)) if last else None,
        "intervention_rate_last": (sum(r["intervention_steps"] for r in last) / steps_last)
        if steps_last
        else None,
        "intervention_rate_all": (
            (sum(r["intervention_steps"] for r in episodes) / steps_all) if steps_all else None
        ),
        "window": len(last),
        "success_by_position": position_success(episodes, window),
        "by_actor": actor_stats(episodes, window),
        "collapse": collapse_check([float(r["success"]) for r in episodes], window, collapse_drop),
    }


def kept_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records without the episodes and updates that a learner restart lost.

    A killed learner has written ``episode`` and ``train`` records after its last checkpoint; the
    resumed learner starts from that checkpoint (its ``resume`` record), so those are dropped.
    """
    kept: list[dict[str, Any]] = []
    for record in records:
        if record["kind"] == "resume":
            episodes, step = record.get("episodes"), record.get("opt_step")
            kept = [
                r
                for r in kept
                if not (r["kind"] == "episode" and episodes is not None and r.get("episode", 0) > episodes)
                and not (r["kind"] == "train" and step is not None and r["opt_step"] > step)
            ]
        kept.append(record)
    return kept


def collapse_check(successes: list[float], window: int, drop: float) -> dict[str, Any] | None:
    """The collapse signature: rolling success has fallen by more than ``drop`` from its best.

    Args:
        successes: Per-episode success (0 or 1), in episode order.
        window: Episodes of the rolling mean; no verdict before one full window.
        drop: Fall, as a fraction (0.3 = 30 points), from the best full-window rolling success.

    Returns:
        ``None`` when there is no collapse, else ``{"best", "best_episode", "current", "drop"}``
        (success as fractions, ``best_episode`` the last episode of the first window at the best).
    """
    if window < 1 or len(successes) < window:
        return None
    rolling = _rolling(successes, window)[window - 1 :]
    best_index = max(range(len(rolling)), key=rolling.__getitem__)
    best, current = rolling[best_index], rolling[-1]
    if best - current <= drop + 1e-9:  # rolling means of 0/1 carry float rounding
        return None
    return {"best": best, "best_episode": best_index + window - 1, "current": current, "drop": best - current}


def collapse_text(collapse: dict[str, Any]) -> str:
    """The warning printed in progress lines and the summary."""
    return (
        f"WARNING: success collapsed from {100 * collapse['best']:.0f}% (episode {collapse['best_episode']}) "
        f"to {100 * collapse['current']:.0f}%"
    )


def teacher_dependence(
    teacher_free: float | None, success_last: float | None, gap: float
) -> dict[str, Any] | None:
    """The policy has not taken over: teacher-free success is more than ``gap`` below training success.

    Training success (the last ``summary_window`` episodes) is earned with the teacher still
    stepping in; the teacher-free evaluation is the policy alone.

    Args:
        teacher_free: Teacher-free success of the final policy (0-1), or None when not evaluated.
        success_last: Success of the last training episodes (0-1), or None.
        gap: Largest shortfall (0-1) that passes.

    Returns:
        ``None`` when it passes or a figure is missing, else ``{"teacher_free", "with_teacher", "gap"}``.
    """
    if teacher_free is None or success_last is None:
        return None
    shortfall = success_last - teacher_free
    if shortfall <= gap + 1e-9:
        return None
    return {"teacher_free": teacher_free, "with_teacher": success_last, "gap": shortfall}


def teacher_dependence_text(dependence: dict[str, Any], intervention_rate_last: float | None) -> str:
    """The summary's warning for :func:`teacher_dependence`."""
    share = (
        ""
        if intervention_rate_last is None
        else f"; it drove {100 * intervention_rate_last:.0f}% of their steps"
    )
    return (
        f"the policy has not taken over from the teacher: teacher-free success {100 * dependence['teacher_free']:.0f}% "
        f"against {100 * dependence['with_teacher']:.0f}% in the last training episodes, with the teacher{share}"
    )


def position_success(episodes: list[dict[str, Any]], window: int) -> dict[str, dict[str, Any]] | None:
    """Per cube position (``env.cube_positions`` index): success and intervention rate over its last episodes.

    Args:
        episodes: ``episode`` records; those of a run with listed positions have a ``position``.
        window: Episodes per position that the rates are over (0: all of them).

    Returns:
        ``{"<index>": {"success_last", "intervention_rate_last", "window", "episodes"}}``, or None
        when no episode has a position (the cube is not placed from a list).
    """
    indices = sorted({int(r["position"]) for r in episodes if r.get("position") is not None})
    if not indices:
        return None
    out = {}
    for index in indices:
        mine = [r for r in episodes if r.get("position") == index]
        last = mine[-window:] if window > 0 else mine
        steps = sum(r["length"] for r in last)
        out[str(index)] = {
            "success_last": sum(r["success"] for r in last) / len(last),
            "intervention_rate_last": sum(r["intervention_steps"] for r in last) / steps if steps else None,
            "window": len(last),
            "episodes": len(mine),
        }
    return out


def actor_ids(episodes: list[dict[str, Any]]) -> list[str]:
    """The actor ids of ``episode`` records, in the order they first appear (records without one: none)."""
    return list(dict.fromkeys(r["actor"] for r in episodes if r.get("actor") is not None))


def actor_stats(episodes: list[dict[str, Any]], window: int) -> dict[str, dict[str, Any]] | None:
    """Per actor id (the learner's ``actor`` field): its episodes and env steps, rates over its last episodes.

    Args:
        episodes: ``episode`` records (those a learner restart lost already left out).
        window: Episodes of that actor the rates are over (0: all of them).

    Returns:
        ``{"<actor id>": {"episodes", "env_steps", "success_last", "intervention_rate_last",
        "window"}}`` (``env_steps``: the learner's count for that actor at its last episode), or
        None when no record names an actor.
    """
    out = {}
    for actor_id in actor_ids(episodes):
        mine = [r for r in episodes if r.get("actor") == actor_id]
        last = mine[-window:] if window > 0 else mine
        steps = sum(r["length"] for r in last)
        counted = mine[-1].get("actor_env_step")
        out[actor_id] = {
            "episodes": len(mine),
            "env_steps": int(counted) if counted is not None else sum(r["length"] for r in mine),
            "success_last": sum(r["success"] for r in last) / len(last),
            "intervention_rate_last": sum(r["intervention_steps"] for r in last) / steps if steps else None,
            "window": len(last),
        }
    return out or None


def progress_line(stats: dict[str, Any], wall_s: float) -> str:
    """One human-readable progress line."""

    def pct(value: float | None) -> str:
        return "  n/a" if value is None else f"{100 * value:5.1f}%"

    if not stats["episodes"]:
        return (
            f"[e2hil-sim {wall_s:7.0f}s] starting: learner up, actor running its first episode "
            f"(counted when it ends) | updates {stats['opt_steps']}"
        )
    return (
        f"[e2hil-sim {wall_s:7.0f}s] env steps {stats['env_steps']:>7} | episodes {stats['episodes']:>5} | "
        f"updates {stats['opt_steps']:>6} | success(last {stats['window']}) {pct(stats['success_last'])} | "
        f"intervention rate(last {stats['window']}) {pct(stats['intervention_rate_last'])}"
        + (f" | {collapse_text(stats['collapse'])}" if stats.get("collapse") else "")
    )


def _rolling(values: list[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _step_share(episodes: list[dict[str, Any]], window: int) -> list[float]:
    """Intervention steps / env steps over the last ``window`` episodes, at each episode."""
    interventions = _rolling([float(r["intervention_steps"]) for r in episodes], window)
    lengths = _rolling([float(r["length"]) for r in episodes], window)
    return [i / n if n else 0.0 for i, n in zip(interventions, lengths, strict=True)]


# Learner diagnostics plotted against learner update: (metrics key, PNG name).
TRAIN_PLOTS = (
    ("e2hil/entropy", "policy_entropy"),
    ("e2hil/kept_fraction", "kept_fraction"),
    ("loss_critic", "critic_loss"),
    ("temperature", "temperature"),
)


def write_plots(
    records: list[dict[str, Any]], out_dir: Path, window: int = 20, log_freq: int | None = None
) -> list[Path]:
    """Success and intervention rate against env step, learner diagnostics against update, as PNGs.

    The intervention rate is the share of env steps, as in the summary (over a rolling window of
    episodes). Records a learner restart lost are left out (:func:`kept_records`).

    Args:
        records: Metrics records.
        out_dir: Directory for the PNG files (created).
        window: Rolling window, in episodes, of the success and intervention curves.
        log_freq: The run's ``log_freq``, named on a diagnostics plot that has no records.

    Returns:
        The files written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = kept_records(records)
    episodes = [r for r in records if r["kind"] == "episode"]
    train = [r for r in records if r["kind"] == "train"]
    ep_steps = [r["env_step"] for r in episodes]
    series = {
        "success": (
            ep_steps,
            _rolling([float(r["success"]) for r in episodes], window),
            f"success (rolling {window} ep.)",
        ),
        "intervention_rate": (
            ep_steps,
            _step_share(episodes, window),
            f"intervention rate\n(share of env steps, rolling {window} ep.)",
        ),
    }
    for key, name in TRAIN_PLOTS:
        points = [(r["opt_step"], r[key]) for r in train if key in r]
        series[name] = ([p[0] for p in points], [p[1] for p in points], key)
    written = []
    for name, (xs, ys, label) in series.items():
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(xs, ys)
        if not xs:
            ax.text(
                0.5,
                0.5,
                f"no '{label}' records in this run"
                + (
                    f"\n(written every log_freq={log_freq} learner updates)"
                    if log_freq and name in dict(TRAIN_PLOTS).values()
                    else ""
                ),
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
        ax.set_xlabel("learner update" if name in dict(TRAIN_PLOTS).values() else "env step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    actors = actor_ids(episodes)
    if len(actors) > 1:
        written += _actor_plots(episodes, actors, out_dir, window)
    positions = sorted({int(r["position"]) for r in episodes if r.get("position") is not None})
    if positions:
        # the collapse signature of the two-position task: one position solved, the other not
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for index in positions:
            mine = [r for r in episodes if r.get("position") == index]
            ax.plot(
                [r["env_step"] for r in mine],
                _rolling([float(r["success"]) for r in mine], window),
                label=f"position {index}",
            )
        ax.set_xlabel("env step")
        ax.set_ylabel(f"success per cube position\n(rolling {window} ep. of that position)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = out_dir / "success_by_position.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def _actor_plots(episodes: list[dict[str, Any]], actors: list[str], out_dir: Path, window: int) -> list[Path]:
    """``success_by_actor.png`` and ``intervention_rate_by_actor.png``: one curve per actor, and the total.

    Each actor's curve rolls over its own last ``window`` episodes, the total over all episodes.
    """
    import matplotlib.pyplot as plt

    curves = {
        "success_by_actor": (
            lambda eps: _rolling([float(r["success"]) for r in eps], window),
            f"success per actor\n(rolling {window} ep. of that actor)",
        ),
        "intervention_rate_by_actor": (
            lambda eps: _step_share(eps, window),
            f"intervention rate per actor\n(share of env steps, rolling {window} ep.)",
        ),
    }
    written = []
    for name, (curve, label) in curves.items():
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for actor_id in actors:
            mine = [r for r in episodes if r.get("actor") == actor_id]
            ax.plot([r["env_step"] for r in mine], curve(mine), label=actor_id)
        ax.plot([r["env_step"] for r in episodes], curve(episodes), label="total", color="black", linewidth=2)
        ax.set_xlabel("env step (all actors)")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written
