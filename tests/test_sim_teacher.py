"""The scripted teacher alone, through gym-hil's intervention wrapper, on randomised cubes."""

from pathlib import Path

import numpy as np
import pytest

from lerobot_policy_e2hil.errors import ConfigError

pytest.importorskip("gym_hil")

from lerobot_policy_e2hil.sim.config import (  # noqa: E402
    CUBE_X_RANGE,
    CUBE_Y_RANGE,
    E2HiLSimEnvConfig,
    TeacherConfig,
)
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


@pytest.mark.slow
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


# --- the human-like profile ------------------------------------------------------------------

TWO = [[0.4, -0.12], [0.4, 0.12]]
IDLE = np.array([0.0, 0.0, 0.0, 1.0])


def _episode(env, policy_action=IDLE):
    """One episode; per step (intervened, teleop action, tcp xyz), and whether it succeeded."""
    env.reset()
    raw = env.unwrapped
    steps, done = [], False
    while not done:
        _, _, terminated, truncated, info = env.step(policy_action)
        tcp = np.asarray(raw.data.sensor("2f85/pinch_pos").data).copy()
        steps.append((bool(info["is_intervention"]), np.asarray(info["teleop_action"]).copy(), tcp))
        done = terminated or truncated
    return steps, bool(info["is_success"])


@pytest.mark.slow
@pytest.mark.parametrize("reward", ["lift", "touch"])
def test_human_like_teacher_alone_solves_both_positions(reward):
    for index, position in enumerate(TWO):
        teacher = TeacherConfig(mode="always", profile="human_like", seed=index)
        cfg = E2HiLSimEnvConfig(cube_positions=[position], reward=reward, teacher=teacher)
        env = make_sim_env(cfg.sim_options(teacher=True))
        try:
            outcomes = [_episode(env) for _ in range(20)]
        finally:
            env.close()
        successes = sum(ok for _, ok in outcomes)
        assert successes >= 18, f"{reward}, position {position}: {successes}/20 (need >= 90%)"
        # a human-like operator is slower than the scripted expert (19 steps to lift, 13 to touch)
        lengths = [len(steps) for steps, _ in outcomes]
        assert np.mean(lengths) > {"lift": 19, "touch": 13}[reward] + 1


def _first_takeover(profile, **knobs):
    teacher = TeacherConfig(mode="scripted", demo_episodes=0, stall_steps=5, profile=profile, **knobs)
    env = make_sim_env(E2HiLSimEnvConfig(teacher=teacher, max_episode_steps=40).sim_options(teacher=True))
    try:
        steps, _ = _episode(env)
    finally:
        env.close()
    flags = [flag for flag, _, _ in steps]
    return flags.index(True) if any(flags) else None


def test_human_like_takes_over_after_its_reaction_delay():
    scripted = _first_takeover("scripted")
    human = _first_takeover(
        "human_like", reaction_delay_min_steps=3, reaction_delay_max_steps=3, absent_probability=0.0
    )
    assert scripted is not None and human == scripted + 3


def test_human_like_operator_can_be_absent_for_a_whole_episode():
    assert _first_takeover("human_like", absent_probability=1.0) is None
    assert _first_takeover("human_like", absent_probability=0.0) is not None


def _takeover_lengths(jitter, episodes=4):
    teacher = TeacherConfig(
        mode="scripted",
        demo_episodes=0,
        stall_steps=4,
        handback_steps=6,
        max_takeovers_per_episode=10,
        profile="human_like",
        absent_probability=0.0,
        handback_jitter_steps=jitter,
        seed=3,
    )
    # a policy that pushes up and away: take-overs end by hand-back, not by success
    env = make_sim_env(E2HiLSimEnvConfig(teacher=teacher, max_episode_steps=80).sim_options(teacher=True))
    lengths = []
    try:
        for _ in range(episodes):
            steps, _ = _episode(env, np.array([0.0, 1.0, 1.0, 1.0]))
            run = 0
            for flag, _, _ in steps:
                if flag:
                    run += 1
                elif run:
                    lengths.append(run)
                    run = 0
    finally:
        env.close()
    return lengths


@pytest.mark.slow
def test_human_like_hands_back_early_or_late():
    assert set(_takeover_lengths(jitter=0)) == {6}
    jittered = _takeover_lengths(jitter=4)
    assert len(set(jittered)) > 1 and min(jittered) >= 2 and max(jittered) <= 10


def _outside_cube_area(tcp) -> float:
    """How far (metres) the tool tip is outside the area cubes are placed in; 0 inside."""
    dx = max(CUBE_X_RANGE[0] - tcp[0], tcp[0] - CUBE_X_RANGE[1], 0.0)
    dy = max(CUBE_Y_RANGE[0] - tcp[1], tcp[1] - CUBE_Y_RANGE[1], 0.0)
    return float(np.hypot(dx, dy))


def test_human_like_detours_out_of_the_cube_area_and_hovers():
    teacher = TeacherConfig(
        mode="always",
        profile="human_like",
        detour_probability=1.0,
        hover_probability=1.0,
        motion_noise_std=0.0,
    )
    cfg = E2HiLSimEnvConfig(cube_positions=[[0.4, 0.12]], teacher=teacher)
    env = make_sim_env(cfg.sim_options(teacher=True))
    try:
        steps, success = _episode(env)
    finally:
        env.close()
    assert success
    outside = [_outside_cube_area(tcp) for _, _, tcp in steps[: teacher.detour_steps]]
    assert max(outside) > 0.02, "the detour leaves the cube's area (x 0.3-0.5, |y| <= 0.15) by > 2 cm"
    assert all(flag for flag, _, _ in steps)
    still = [np.abs(action[:3]).max() == 0.0 for _, action, _ in steps]
    longest, run = 0, 0
    for flag in still:
        run = run + 1 if flag else 0
        longest = max(longest, run)
    assert longest == teacher.hover_steps


def test_scripted_profile_is_unchanged_bit_for_bit():
    """Golden numbers recorded with the teacher before the human-like profile existed."""
    cfg = E2HiLSimEnvConfig(
        random_block_position=True,
        max_episode_steps=40,
        teacher=TeacherConfig(
            mode="scripted",
            demo_episodes=1,
            stall_steps=4,
            handback_steps=5,
            decay_episodes=3,
            min_takeover_probability=0.3,
            action_noise_std=0.2,
            seed=7,
        ),
    )
    env = make_sim_env(cfg.sim_options(teacher=True))
    np.random.seed(5)
    rng = np.random.default_rng(1)
    actions, flags, observations = 0.0, 0, 0.0
    try:
        for _ in range(5):
            env.reset()
            done = False
            while not done:
                action = np.concatenate([rng.uniform(-1, 1, 3), [1.0]])
                obs, _, terminated, truncated, info = env.step(action)
                actions += float(np.sum(info["teleop_action"]))
                flags += int(info["is_intervention"])
                observations += float(np.sum(obs["agent_pos"])) + float(np.sum(obs["environment_state"]))
                done = terminated or truncated
    finally:
        env.close()
    assert flags == 35
    assert actions == pytest.approx(175.15277583086723, rel=1e-9)
    assert observations == pytest.approx(2200.991568259895, rel=1e-9)


def test_teacher_profile_and_human_knobs_are_validated():
    with pytest.raises(
        ConfigError, match=r"teacher.profile='expert' is invalid; allowed values: 'scripted', 'human_like'"
    ):
        TeacherConfig(profile="expert")
    with pytest.raises(ConfigError, match="reaction_delay_max_steps"):
        TeacherConfig(reaction_delay_min_steps=4, reaction_delay_max_steps=2)
    with pytest.raises(ConfigError, match="absent_probability"):
        TeacherConfig(absent_probability=1.5)
    with pytest.raises(ConfigError, match="motion_noise_correlation"):
        TeacherConfig(motion_noise_correlation=1.0)
