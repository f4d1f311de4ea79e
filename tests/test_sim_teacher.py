"""The scripted teacher alone, through gym-hil's intervention wrapper, on randomised cubes."""

from pathlib import Path

import numpy as np
import pytest

from lerobot_policy_e2hil.errors import ConfigError

pytest.importorskip("gym_hil")

from lerobot_policy_e2hil.sim.config import E2HiLSimEnvConfig, TeacherConfig  # noqa: E402
from lerobot_policy_e2hil.sim.env import make_sim_env  # noqa: E402


def _run(env, episodes, policy_action):
    successes, flags = 0, []
    for _ in range(episodes):
        env.reset()
        done = False
        while not done:
            _, _, terminated, truncated, info = env.step(policy_action)
            flags.append((bool(info["is_intervention"]), np.asarray(info["teleop_action"]).copy()))
            done = terminated or truncated
        successes += bool(info["is_success"])
    return successes, flags


def test_teacher_alone_solves_randomised_episodes():
    cfg = E2HiLSimEnvConfig(random_block_position=True, teacher=TeacherConfig(mode="always"))
    env = make_sim_env(cfg.sim_options(teacher=True))
    np.random.seed(123)
    try:
        successes, flags = _run(env, 20, np.array([0.0, 0.0, 0.0, 1.0]))
    finally:
        env.close()
    assert successes >= 19, f"teacher solved {successes}/20 randomised episodes (need >= 95%)"
    assert all(flag for flag, _ in flags)
    # The executed (teleop) action is the teacher's, not the idle policy action passed in.
    assert any(np.abs(action[:3]).max() > 0.5 for _, action in flags)


def test_teacher_off_never_intervenes_and_idle_policy_fails():
    cfg = E2HiLSimEnvConfig(teacher=TeacherConfig(mode="off"), max_episode_steps=20)
    env = make_sim_env(cfg.sim_options(teacher=True))
    try:
        successes, flags = _run(env, 2, np.array([0.0, 0.0, 0.0, 1.0]))
    finally:
        env.close()
    assert successes == 0
    assert not any(flag for flag, _ in flags)


def test_scripted_teacher_demos_then_takes_over_a_stalled_policy():
    teacher = TeacherConfig(mode="scripted", demo_episodes=1, stall_steps=5, handback_steps=4)
    cfg = E2HiLSimEnvConfig(teacher=teacher, max_episode_steps=40)
    env = make_sim_env(cfg.sim_options(teacher=True))
    try:
        _, demo = _run(env, 1, np.array([0.0, 0.0, 0.0, 1.0]))
        _, later = _run(env, 1, np.array([0.0, 0.0, 0.0, 1.0]))
    finally:
        env.close()
    assert all(flag for flag, _ in demo)
    later_flags = [flag for flag, _ in later]
    assert not all(later_flags[:5]), "a stall needs stall_steps of observation before a take-over"
    assert any(later_flags), "an idle (stalled) policy must trigger a take-over"
    # hand-back after handback_steps: no run of teacher steps longer than handback_steps
    longest, run = 0, 0
    for flag in later_flags:
        run = run + 1 if flag else 0
        longest = max(longest, run)
    assert longest <= teacher.handback_steps


def test_teacher_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="teacher.mode"):
        TeacherConfig(mode="sometimes")
    with pytest.raises(ConfigError, match="handback_steps"):
        TeacherConfig(handback_steps=0)


def test_bad_teacher_value_is_named_at_parse_time(tmp_path):
    import json

    import draccus
    from lerobot.rl.train_rl import TrainRLServerPipelineConfig

    raw = json.loads(
        (Path(__file__).resolve().parents[1] / "HIL-SERL/train_gym_hil_env_SIM.json").read_text()
    )
    raw["env"]["teacher"]["mode"] = "bogus"
    path = tmp_path / "train.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(draccus.utils.ParsingError) as info:
        draccus.parse(TrainRLServerPipelineConfig, config_path=str(path), args=[])
    assert "teacher.mode='bogus' is invalid" in str(info.value)
