"""Issue 12, item 7: the launcher's summary, progress line, plots and help say what they count."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lerobot_policy_e2hil.launcher.report import episode_stats, progress_line
from test_faults_helpers import ROOT, SIM_JSON


def episode(n: int, env_step: int, length: int = 10, interventions: int = 0) -> dict:
    return {
        "kind": "episode",
        "episode": n,
        "env_step": env_step,
        "length": length,
        "success": False,
        "intervention_steps": interventions,
        "intervention_rate": interventions / length,
    }


def test_episodes_a_killed_learner_lost_are_not_counted_after_resume():
    # 72 episodes recorded, the killed learner's last checkpoint had 70; the resumed run adds one.
    before = [episode(n, 10 * n) for n in range(1, 73)]
    train = [{"kind": "train", "opt_step": s, "env_step": 0} for s in (5, 10, 15)]
    resume = {"kind": "resume", "episodes": 70, "interaction_step": 700, "opt_step": 10}
    records = [*before, *train, resume, episode(71, 710)]
    stats = episode_stats(records, window=50)
    assert (stats["episodes"], stats["env_steps"]) == (71, 710)
    from lerobot_policy_e2hil.launcher.report import kept_records

    assert [r["opt_step"] for r in kept_records(records) if r["kind"] == "train"] == [5, 10]


def test_learner_updates_come_from_the_newest_optimisation_step_any_record_names():
    # log_freq 100 and 89 updates: no train record, but the final checkpoint is step 89.
    records = [episode(1, 10), {"kind": "checkpoint", "step": 89, "path": "checkpoints/000089"}]
    assert episode_stats(records, window=50)["opt_steps"] == 89


def test_intervention_rate_is_the_share_of_steps_in_the_summary_and_the_plot():
    episodes = [episode(1, 10, length=10, interventions=10), episode(2, 100, length=90, interventions=0)]
    stats = episode_stats(episodes, window=50)
    assert stats["intervention_rate_all"] == pytest.approx(0.1)  # 10 of 100 steps, not (1 + 0) / 2
    from lerobot_policy_e2hil.launcher.report import _step_share

    assert _step_share(episodes, window=50)[-1] == pytest.approx(0.1)


def test_progress_line_says_starting_until_the_first_episode_ends():
    line = progress_line(episode_stats([], window=50), 30.0)
    assert "starting" in line and "env steps" not in line
    assert "env steps      10" in progress_line(episode_stats([episode(1, 10)], window=50), 40.0)


def test_summary_states_the_budget_and_that_unfinished_episodes_are_not_counted(capsys):
    from lerobot_policy_e2hil.launcher.train import print_summary

    stats = episode_stats([episode(n, 90 * n, length=90) for n in (1, 2, 3, 4)], window=50)
    print_summary(
        {
            **stats,
            "env_step_budget": 400,
            "teacher_free_success": None,
            "eval_episodes": 0,
            "train_wall_s": 1.0,
            "total_wall_s": 2.0,
            "interrupted": False,
            "reason": None,
            "checkpoint": None,
        }
    )
    out = capsys.readouterr().out
    assert "env steps trained              360 of the 400 budget" in out
    assert "an unfinished last episode is not counted" in out
    assert "intervention rate, share of env steps" in out


@pytest.mark.e2e
def test_help_begins_with_what_the_launcher_does():
    result = subprocess.run(
        [sys.executable, "-m", "lerobot_policy_e2hil.launcher.train", "--help"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0
    first = result.stdout.splitlines()[:20]
    assert first[0].startswith("e2hil-sim: train a policy with human-in-the-loop RL")
    assert any("Exit code 0: a complete run; 1: a partial run" in line for line in first)


def test_a_learner_crash_after_its_final_checkpoint_is_a_warning_not_a_partial_run(tmp_path):
    from lerobot_policy_e2hil.launcher.hooks import FINAL_CHECKPOINT
    from lerobot_policy_e2hil.launcher.train import BUDGET_SPENT, _process_reasons, _teardown_warnings

    actor = f"... {BUDGET_SPENT}; flushing queues ..."
    whole = {"actor": actor, "learner": f"... {FINAL_CHECKPOINT}out/checkpoints/014994\nterminate called ..."}
    broken = {"actor": actor, "learner": "... RuntimeError: boom"}
    sigabrt = -6
    # asked to stop (learner_early None), then SIGABRT
    assert _process_reasons(whole, tmp_path, 0, None, 0, sigabrt, False) == []
    (warning,) = _teardown_warnings(whole, None, sigabrt)
    assert warning.startswith("the learner exited with") and warning.endswith(
        "after writing its final checkpoint"
    )
    assert _teardown_warnings(whole, None, 0) == []
    # without the final checkpoint it stays a failed run
    assert _teardown_warnings(broken, None, sigabrt) == []
    assert "the learner failed" in _process_reasons(broken, tmp_path, 0, None, 0, sigabrt, False)[0]
    # a learner that ended by itself is never excused
    assert _teardown_warnings(whole, sigabrt, sigabrt) == []


def test_several_actors_share_the_budget_and_get_their_own_name_seed_and_threads():
    from lerobot_policy_e2hil.faults.settings import FaultSettings
    from lerobot_policy_e2hil.launcher.train import actor_budget, actor_flags, actor_names, grpc_workers

    assert actor_names(1) == ["actor"] and actor_names(3) == ["actor_0", "actor_1", "actor_2"]
    assert (actor_budget(500, 1), actor_budget(500, 2), actor_budget(500, 3)) == (500, 250, 167)
    assert (grpc_workers(1), grpc_workers(4), grpc_workers(5), grpc_workers(10)) == (16, 16, 19, 34)
    settings = FaultSettings(actor_id="mine", connect_timeout_s=7.0)
    flags = actor_flags(1, 2, settings, 10, ["--policy.online_steps=250"])
    assert "--faults.actor_id=actor_1" in flags and "--faults.connect_timeout_s=7.0" in flags
    assert flags[-2:] == ["--env.env_seed=11", "--policy.online_steps=250"]
    alone = actor_flags(0, 1, settings, 10, [])
    assert "--faults.actor_id=mine" in alone and not any(f.startswith("--env.env_seed") for f in alone)


def test_the_fault_flags_the_launcher_passes_parse_as_the_processes_parse_them():
    from lerobot_policy_e2hil.faults.settings import FaultSettings
    from lerobot_policy_e2hil.launcher.train import actor_flags
    from lerobot_policy_e2hil.train_config import E2HiLTrainConfig

    settings = FaultSettings(insecure=True, keep_buffers=3, tls_server_name="learner.local")
    flags = actor_flags(0, 1, settings, 10, [])
    cfg = E2HiLTrainConfig.from_pretrained(str(SIM_JSON), cli_args=flags)  # parser.wrap's path
    assert cfg.faults == FaultSettings(
        insecure=True, keep_buffers=3, tls_server_name="learner.local", actor_id="actor"
    )


def test_a_single_actor_keeps_its_id_across_a_resume_so_the_summary_lists_one_actor():
    from lerobot_policy_e2hil.faults.settings import FaultSettings
    from lerobot_policy_e2hil.launcher.train import actor_flags

    first, resumed = (
        actor_flags(0, 1, FaultSettings(), 10, []),
        actor_flags(0, 1, FaultSettings(), 10, ["--x=1"]),
    )
    ids = {f for f in first + resumed if f.startswith("--faults.actor_id=")}
    assert ids == {"--faults.actor_id=actor"}


def test_each_actor_must_spend_its_budget(tmp_path):
    from lerobot_policy_e2hil.launcher.train import BUDGET_SPENT, _run_reasons

    texts = {"learner": "", "actor_0": f"... {BUDGET_SPENT} ...", "actor_1": "... started ...", "actor_2": ""}
    early = {"actor_0": 0, "actor_1": 0, "actor_2": -9}
    reasons = _run_reasons(texts, tmp_path, early, None, 0, False)
    assert reasons == [
        f"actor actor_1 stopped before its budget was spent (exit code 0); see {tmp_path / 'actor_1.out'}",
        f"actor actor_2 died before its budget was spent (killed by SIGKILL); see {tmp_path / 'actor_2.out'}",
    ]
    texts["actor_1"] = f"... {BUDGET_SPENT} ..."
    assert _run_reasons(texts, tmp_path, {"actor_0": 0, "actor_1": 0, "actor_2": None}, None, 0, False) == []


def test_num_actors_below_one_is_refused():
    from lerobot_policy_e2hil.errors import ConfigError
    from lerobot_policy_e2hil.sim.config import LaunchConfig

    with pytest.raises(ConfigError, match=r"^env.launch.num_actors=0 is invalid; allowed values: >= 1$"):
        LaunchConfig(num_actors=0)
