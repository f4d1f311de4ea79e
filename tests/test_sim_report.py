"""The launcher's collapse warning and plots, on synthetic metrics records."""

from __future__ import annotations

import random

from lerobot_policy_e2hil.launcher.report import collapse_check, episode_stats, progress_line, write_plots


def _episodes(successes: list[int]) -> list[dict]:
    return [
        {"kind": "episode", "env_step": 20 * (i + 1), "length": 20, "success": s, "intervention_steps": 5}
        for i, s in enumerate(successes)
    ]


def test_collapse_fires_after_a_late_fall():
    # The signature: solved for 600 episodes, then success falls to zero.
    successes = [1] * 600 + [0] * 60
    collapse = collapse_check(successes, window=50, drop=0.3)
    assert collapse is not None
    assert collapse["best"] == 1.0 and collapse["current"] == 0.0
    assert collapse["best_episode"] == 49


def test_no_collapse_on_a_flat_or_rising_series():
    rng = random.Random(0)
    flat = [int(rng.random() < 0.8) for _ in range(800)]
    assert collapse_check(flat, window=50, drop=0.3) is None
    rising = [int(rng.random() < i / 800) for i in range(800)]
    assert collapse_check(rising, window=50, drop=0.3) is None


def test_no_verdict_before_a_full_window_and_the_drop_threshold_counts():
    assert collapse_check([1] * 10 + [0] * 30, window=50, drop=0.3) is None
    # A fall of exactly 30 points is not more than the threshold; 32 points is.
    assert collapse_check([1] * 50 + [0] * 15, window=50, drop=0.3) is None
    assert collapse_check([1] * 50 + [0] * 16, window=50, drop=0.3) is not None


def test_progress_line_and_stats_carry_the_warning():
    stats = episode_stats(_episodes([1] * 100 + [0] * 50), window=50, collapse_drop=0.3)
    assert stats["collapse"] is not None
    assert "WARNING: success collapsed from 100%" in progress_line(stats, 10.0)
    healthy = episode_stats(_episodes([1] * 150), window=50, collapse_drop=0.3)
    assert healthy["collapse"] is None
    assert "WARNING" not in progress_line(healthy, 10.0)


def test_plots_include_learner_diagnostics(tmp_path):
    train = [
        {"kind": "train", "opt_step": 100 * k, "env_step": 500, "loss_critic": 0.01 * k, "temperature": 0.01}
        for k in range(1, 5)
    ]
    written = {p.name for p in write_plots(_episodes([1, 0, 1]) + train, tmp_path)}
    assert {"success.png", "intervention_rate.png", "critic_loss.png", "temperature.png"} <= written
    assert all((tmp_path / name).stat().st_size > 0 for name in written)


def test_collapse_threshold_is_validated_at_parse_time():
    import pytest

    from lerobot_policy_e2hil.errors import ConfigError
    from lerobot_policy_e2hil.sim.config import LaunchConfig

    with pytest.raises(ConfigError, match="env.launch.collapse_drop=0"):
        LaunchConfig(collapse_drop=0.0)


def _two_actors() -> list[dict]:
    """actor_0 always succeeds with no intervention, actor_1 never, intervened on half its steps."""
    records, counts = [], {"actor_0": 0, "actor_1": 0}
    for i in range(40):
        actor = f"actor_{i % 2}"
        counts[actor] += 10
        records.append(
            {
                "kind": "episode",
                "env_step": 10 * (i + 1),
                "length": 10,
                "success": 1 - i % 2,
                "intervention_steps": 5 * (i % 2),
                "actor": actor,
                "actor_env_step": counts[actor],
            }
        )
    return records


def test_summary_counts_each_actor_apart():
    stats = episode_stats(_two_actors(), window=5)
    assert stats["by_actor"] == {
        "actor_0": {
            "episodes": 20,
            "env_steps": 200,
            "success_last": 1.0,
            "intervention_rate_last": 0.0,
            "window": 5,
        },
        "actor_1": {
            "episodes": 20,
            "env_steps": 200,
            "success_last": 0.0,
            "intervention_rate_last": 0.5,
            "window": 5,
        },
    }
    assert episode_stats(_episodes([1, 0]), window=5)["by_actor"] is None  # records without an actor


def test_plots_per_actor_with_the_total(tmp_path):
    written = {p.name for p in write_plots(_two_actors(), tmp_path, window=5)}
    assert {"success_by_actor.png", "intervention_rate_by_actor.png"} <= written
    assert (tmp_path / "success_by_actor.png").stat().st_size > 0
    one = {p.name for p in write_plots(_episodes([1, 0]), tmp_path / "one", window=5)}
    assert "success_by_actor.png" not in one


def test_teacher_dependence_fires_when_the_policy_alone_falls_short():
    from lerobot_policy_e2hil.launcher.report import teacher_dependence, teacher_dependence_text

    # The default run of 2026-11-30 (seed 1000, idle clean clone): 96% with the teacher, 28% alone.
    dependence = teacher_dependence(0.28, 0.96, gap=0.3)
    assert dependence is not None and abs(dependence["gap"] - 0.68) < 1e-9
    text = teacher_dependence_text(dependence, 0.42)
    assert "teacher-free success 28%" in text and "96%" in text and "42% of their steps" in text
    # The lockstep seed 1000 run: 98% with the teacher, 88% alone, passes; so does a missing figure.
    assert teacher_dependence(0.88, 0.98, gap=0.3) is None
    assert teacher_dependence(0.68, 0.98, gap=0.3) is None  # exactly the gap
    assert teacher_dependence(0.67, 0.98, gap=0.3) is not None
    assert teacher_dependence(None, 0.98, gap=0.3) is None


def test_summary_prints_the_teacher_dependence_warning(capsys):
    from lerobot_policy_e2hil.launcher.train import print_summary

    summary = {
        "interrupted": False,
        "warnings": [],
        "env_steps": 24986,
        "env_step_budget": 25000,
        "episodes": 1073,
        "opt_steps": 14992,
        "updates_per_env_step": 0.6,
        "window": 50,
        "success_last": 0.96,
        "teacher_free_success": 0.28,
        "eval_episodes": 50,
        "intervention_rate_all": 0.54,
        "intervention_rate_last": 0.42,
        "train_wall_s": 976.0,
        "total_wall_s": 1012.0,
        "checkpoint": "ckpt",
        "collapse": None,
        "teacher_dependence": {"teacher_free": 0.28, "with_teacher": 0.96, "gap": 0.68},
    }
    print_summary(summary)
    assert "WARNING: the policy has not taken over from the teacher" in capsys.readouterr().out
    print_summary({**summary, "teacher_dependence": None})
    assert "WARNING" not in capsys.readouterr().out


def test_teacher_gap_is_validated_at_parse_time():
    import pytest

    from lerobot_policy_e2hil.errors import ConfigError
    from lerobot_policy_e2hil.sim.config import LaunchConfig

    with pytest.raises(ConfigError, match=r"env.launch.teacher_gap=1.5 is invalid; allowed values"):
        LaunchConfig(teacher_gap=1.5)
