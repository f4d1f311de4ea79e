"""Task variants of the sim: listed cube positions, the touch reward, and their validation."""

import subprocess
import sys
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
from lerobot_policy_e2hil.sim.env import FINGER_BODIES, POSITION_INFO_KEY, make_sim_env  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TWO = [[0.4, -0.12], [0.4, 0.12]]
IDLE = np.array([0.0, 0.0, 0.0, 1.0])


def _finger_contact(raw) -> bool:
    """Independent of the env's own check: any contact between the cube and a finger body's geom."""
    model, data = raw.model, raw.data
    block = model.geom("block").id
    fingers = {model.body(name).id for name in FINGER_BODIES}
    for contact in data.contact[: data.ncon]:
        g1, g2 = int(contact.geom1), int(contact.geom2)
        other = g2 if g1 == block else (g1 if g2 == block else None)
        if other is not None and model.geom_bodyid[other] in fingers:
            return True
    return False


def test_two_positions_place_the_cube_only_there_and_both_occur():
    # random_block_position=True as well: the list replaces gym-hil's own sampling
    cfg = E2HiLSimEnvConfig(cube_positions=TWO, random_block_position=True, teacher=TeacherConfig(mode="off"))
    env = make_sim_env(cfg.sim_options(teacher=True))
    np.random.seed(0)
    seen = []
    try:
        for _ in range(20):
            obs, info = env.reset()
            index = info[POSITION_INFO_KEY]
            np.testing.assert_allclose(obs["environment_state"][:2], TWO[index], atol=1e-6)
            # the cube rests there: after a step it has not moved and the index is in the step info
            obs, _, _, _, info = env.step(IDLE)
            np.testing.assert_allclose(obs["environment_state"][:2], TWO[index], atol=2e-3)
            assert info[POSITION_INFO_KEY] == index
            seen.append(index)
    finally:
        env.close()
    assert set(seen) == {0, 1}, f"both positions must occur in 20 episodes, got {seen}"


def test_without_positions_there_is_no_position_index():
    env = make_sim_env(E2HiLSimEnvConfig(teacher=TeacherConfig(mode="off")).sim_options(teacher=True))
    try:
        _, info = env.reset()
        _, _, _, _, step_info = env.step(IDLE)
    finally:
        env.close()
    assert POSITION_INFO_KEY not in info and POSITION_INFO_KEY not in step_info


@pytest.mark.parametrize("reward", ["touch", "lift"])
def test_touch_reward_fires_on_finger_contact_and_not_before(reward):
    cfg = E2HiLSimEnvConfig(cube_positions=TWO, reward=reward, teacher=TeacherConfig(mode="always"))
    env = make_sim_env(cfg.sim_options(teacher=True))
    raw = env.unwrapped
    np.random.seed(1)
    rewards, contacts, distances = [], [], []
    try:
        env.reset()
        done = False
        while not done:
            _, r, terminated, truncated, info = env.step(IDLE)
            rewards.append(float(r))
            contacts.append(_finger_contact(raw))
            tcp = raw.data.sensor("2f85/pinch_pos").data
            distances.append(float(np.linalg.norm(raw.data.sensor("block_pos").data - tcp)))
            done = terminated or truncated
    finally:
        env.close()
    first = contacts.index(True)
    # before the fingers touch, the tool was already close to the cube: the reward is not a distance
    assert min(distances[:first]) < 0.03
    if reward == "touch":
        assert rewards[:first] == [0.0] * first
        assert rewards[first] == 1.0 and info["is_success"]
        assert len(rewards) == first + 1, "a touch ends the episode"
    else:
        assert rewards[first] == 0.0, "touching is not lifting"
        assert info["is_success"] and rewards[-1] == 1.0 and len(rewards) > first + 1


def test_invalid_cube_positions_and_reward_are_refused_naming_the_field():
    with pytest.raises(ConfigError, match=r"env\.cube_positions\[1\]=.*x in \[0\.3, 0\.5\]"):
        E2HiLSimEnvConfig(cube_positions=[[0.4, 0.1], [0.7, 0.0]])
    with pytest.raises(ConfigError, match=r"env\.cube_positions\[0\]"):
        E2HiLSimEnvConfig(cube_positions=[[0.4, -0.2]])
    with pytest.raises(ConfigError, match=r"env\.cube_positions\[0\]"):
        E2HiLSimEnvConfig(cube_positions=[[0.4]])
    with pytest.raises(ConfigError, match=r"env\.reward='grasp'.*'lift', 'touch'"):
        E2HiLSimEnvConfig(reward="grasp")
    # the corners of the allowed area are allowed
    corners = [[CUBE_X_RANGE[0], CUBE_Y_RANGE[0]], [CUBE_X_RANGE[1], CUBE_Y_RANGE[1]]]
    assert E2HiLSimEnvConfig(cube_positions=corners).cube_positions == corners


def test_allowed_cube_area_is_gym_hils_sampling_area():
    from gym_hil.envs.panda_pick_gym_env import _SAMPLING_BOUNDS

    assert (
        (float(_SAMPLING_BOUNDS[0][0]), float(_SAMPLING_BOUNDS[1][0])),
        (float(_SAMPLING_BOUNDS[0][1]), float(_SAMPLING_BOUNDS[1][1])),
    ) == (CUBE_X_RANGE, CUBE_Y_RANGE)


@pytest.mark.slow
def test_launcher_refuses_an_off_table_position_at_parse_time():
    command = [
        sys.executable,
        "-m",
        "lerobot_policy_e2hil.launcher.train",
        "--config_path",
        "HIL-SERL/train_gym_hil_env_SIM.json",
        "--env.cube_positions=[[0.4,0.12],[0.7,0.0]]",
        "--output_dir=outputs/never_created_by_test_sim_variants",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 2
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert "env.cube_positions[1]=[0.7, 0.0] is invalid" in lines[-1]
    assert not (ROOT / "outputs/never_created_by_test_sim_variants").exists()


def test_parsed_flags_set_the_variant():
    import draccus

    cfg = draccus.parse(
        E2HiLSimEnvConfig,
        args=["--cube_positions=[[0.35,-0.1],[0.45,0.1]]", "--reward=touch", "--teacher.profile=human_like"],
    )
    assert cfg.cube_positions == [[0.35, -0.1], [0.45, 0.1]]
    assert cfg.sim_options(teacher=True)["reward"] == "touch"
    assert cfg.sim_options(teacher=True)["teacher"]["profile"] == "human_like"
    with pytest.raises(Exception, match="teacher.profile='robot' is invalid"):
        draccus.parse(E2HiLSimEnvConfig, args=["--teacher.profile=robot"])


@pytest.mark.slow
@pytest.mark.e2e
def test_launcher_reports_success_per_position_in_metrics_summary_and_plots(tmp_path):
    pytest.importorskip("grpc")
    import json

    out = tmp_path / "run"
    command = [
        sys.executable, "-m", "lerobot_policy_e2hil.launcher.train",
        "--config_path", "HIL-SERL/train_gym_hil_env_SIM.json",
        f"--output_dir={out}",
        "--env.cube_positions=[[0.4,-0.12],[0.4,0.12]]",
        "--env.reward=touch",
        "--env.teacher.profile=human_like",
        "--env.teacher.demo_episodes=6",
        "--policy.online_steps=150",
        "--policy.online_step_before_learning=60",
        "--log_freq=10",
        "--save_freq=100000",
        "--batch_size=32",
        "--env.launch.eval_episodes=2",
        "--env.launch.summary_window=10",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=420, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    episodes = [r for r in records if r["kind"] == "episode"]
    assert {r["position"] for r in episodes} == {0, 1}
    summary = json.loads((out / "summary.json").read_text())
    by_position = summary["success_by_position"]
    assert set(by_position) == {"0", "1"}
    for index, stats in by_position.items():
        mine = [r for r in episodes if r["position"] == int(index)][-10:]
        assert stats["window"] == len(mine)
        assert stats["success_last"] == pytest.approx(sum(r["success"] for r in mine) / len(mine))
    # the demonstrations (human-like, touch) succeed, and the success reaches the records
    assert all(r["success"] for r in episodes[:6])
    assert (out / "plots" / "success_by_position.png").stat().st_size > 0


def test_position_success_is_per_position_over_its_last_episodes():
    from lerobot_policy_e2hil.launcher.report import position_success

    def episode(position, success, interventions=0):
        return {"kind": "episode", "position": position, "success": success, "length": 10,
                "intervention_steps": interventions}  # fmt: skip

    episodes = [episode(0, False), episode(1, True, 5), episode(0, True), episode(0, True), episode(1, False)]
    stats = position_success(episodes, window=2)
    assert stats["0"] == {"success_last": 1.0, "intervention_rate_last": 0.0, "window": 2, "episodes": 3}
    assert stats["1"] == {"success_last": 0.5, "intervention_rate_last": 0.25, "window": 2, "episodes": 2}
    assert position_success([{**e, "position": None} for e in episodes], window=2) is None
