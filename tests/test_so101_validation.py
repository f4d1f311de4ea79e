"""Bad SO101 configs fail at parse time with a message naming the field; unit checks of the devices."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import draccus
import numpy as np
import pytest
from lerobot.teleoperators.utils import TeleopEvents

import lerobot_policy_e2hil  # noqa: F401
from lerobot_policy_e2hil.errors import ConfigError
from lerobot_policy_e2hil.so101.config_leader import SO101LeaderHILConfig
from lerobot_policy_e2hil.so101.evaluate import EpisodeResult, run_episodes, summarize, write_summary
from lerobot_policy_e2hil.so101.events import TeleopEventState
from lerobot_policy_e2hil.so101.record import SO101RecordConfig

HIL_SERL = Path(__file__).resolve().parents[1] / "HIL-SERL"


def parse_env_config(tmp_path: Path, edit) -> None:
    raw = json.loads((HIL_SERL / "env_config_so101.json").read_text())
    edit(raw["env"])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(raw))
    draccus.parse(SO101RecordConfig, config_path=str(path), args=[])


def _del(d, key):
    del d[key]


BAD_CONFIGS = {
    "missing follower port": (lambda e: _del(e["robot"], "port"), "port"),
    "empty follower port": (lambda e: e["robot"].update(port=""), "env.robot.port"),
    "empty leader port": (lambda e: e["teleop"].update(port=" "), "teleop.port"),
    "same port twice": (lambda e: e["teleop"].update(port=e["robot"]["port"]), "env.teleop.port"),
    "leader without events": (
        lambda e: e.update(teleop={"type": "so101_leader", "port": "/dev/ttyACM1"}),
        "so101_leader_hil",
    ),
    "unknown camera type": (lambda e: e["robot"]["cameras"]["front"].update(type="webcam"), "webcam"),
    "crop for an unknown camera": (
        lambda e: e["processor"]["image_preprocessing"]["crop_params_dict"].update(
            {"observation.images.side": [0, 0, 10, 10]}
        ),
        "observation.images.side",
    ),
    "crop outside the frame": (
        lambda e: e["processor"]["image_preprocessing"]["crop_params_dict"].update(
            {"observation.images.front": [100, 0, 480, 480]}
        ),
        "camera's height 480",
    ),
    "bounds min > max": (
        lambda e: e["processor"]["inverse_kinematics"]["end_effector_bounds"].update(min=[0.5, -0.2, 0.0]),
        "end_effector_bounds (x)",
    ),
    "bounds out of reach": (
        lambda e: e["processor"]["inverse_kinematics"]["end_effector_bounds"].update(max=[0.4, 0.2, 2.0]),
        "reach",
    ),
    "bounds with 2 axes": (
        lambda e: e["processor"]["inverse_kinematics"]["end_effector_bounds"].update(min=[0.1, 0.1]),
        "end_effector_bounds",
    ),
    "reset pose of 5 joints": (
        lambda e: e["processor"]["reset"].update(fixed_reset_joint_positions=[0, 0, 0, 0, 0]),
        "fixed_reset_joint_positions",
    ),
    "gripper reset beyond 100": (
        lambda e: e["processor"]["reset"].update(fixed_reset_joint_positions=[0, 0, 0, 0, 0, 150]),
        "(gripper)",
    ),
    "joint teleop with IK env": (lambda e: e["teleop"].update(control_space="joint"), "control_space"),
    "unknown control space": (lambda e: e["teleop"].update(control_space="cartesian"), "('joint', 'ee')"),
    "duplicate keys": (lambda e: e["teleop"].update(success_key="space"), "success_key"),
    "zero fps": (lambda e: e.update(fps=0), "env.fps"),
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_bad_hardware_config_fails_at_parse_time(tmp_path, name):
    edit, expected = BAD_CONFIGS[name]
    with pytest.raises(Exception) as info:
        parse_env_config(tmp_path, edit)
    assert expected in str(info.value)  # the message the user sees, not only its cause chain


def test_shipped_env_config_passes_the_checks(tmp_path):
    parse_env_config(tmp_path, lambda env: None)


def test_train_config_is_checked_too(tmp_path):
    from lerobot.rl.train_rl import TrainRLServerPipelineConfig

    raw = json.loads((HIL_SERL / "train_config_e2hil_so101.json").read_text())
    raw["env"]["processor"]["image_preprocessing"]["crop_params_dict"]["observation.images.top"] = [
        0,
        0,
        8,
        8,
    ]
    path = tmp_path / "train.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(Exception) as info:
        draccus.parse(TrainRLServerPipelineConfig, config_path=str(path), args=[])
    assert "observation.images.top" in str(info.value)


def test_leader_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="action_format"):
        SO101LeaderHILConfig(port="/dev/ttyACM1", action_format="dict")
    with pytest.raises(ConfigError, match="auto_intervention_threshold"):
        SO101LeaderHILConfig(port="/dev/ttyACM1", auto_intervention_threshold=-1.0)
    with pytest.raises(ConfigError, match="urdf_path"):
        SO101LeaderHILConfig(port="/dev/ttyACM1", control_space="ee")
    with pytest.raises(ConfigError, match="intervention_key"):
        SO101LeaderHILConfig(port="/dev/ttyACM1", intervention_key="shift-space")


def test_event_state_is_one_shot_for_episode_events_and_a_level_for_intervention():
    state = TeleopEventState()
    state.trigger("intervention")
    state.trigger("success")
    first, second = state.snapshot(), state.snapshot()
    assert first[TeleopEvents.IS_INTERVENTION] and second[TeleopEvents.IS_INTERVENTION]
    assert first[TeleopEvents.SUCCESS] and not second[TeleopEvents.SUCCESS]
    state.trigger("rerecord")
    events = state.snapshot()
    assert events[TeleopEvents.TERMINATE_EPISODE] and events[TeleopEvents.RERECORD_EPISODE]
    state.trigger("intervention")
    assert not state.snapshot()[TeleopEvents.IS_INTERVENTION]
    with pytest.raises(ValueError, match="allowed values"):
        state.trigger("pause")


def make_leader(tmp_path, **kwargs):
    from lerobot_policy_e2hil.so101.config_simulated import SO101LeaderHILSimConfig
    from lerobot_policy_e2hil.so101.simulated import SO101LeaderHILSim

    cfg = SO101LeaderHILSimConfig(port="sim-leader", calibration_dir=tmp_path, **kwargs)
    leader = SO101LeaderHILSim(cfg)
    leader.connect()
    return leader


def test_leader_reads_through_the_feetech_protocol_and_formats_actions(tmp_path):
    leader = make_leader(tmp_path)
    try:
        leader.set_joint_positions({"shoulder_pan": 12.5, "gripper": 40.0})
        joint_action = leader.get_action()
        assert isinstance(joint_action, np.ndarray) and joint_action.shape == (6,)
        assert joint_action[0] == pytest.approx(12.5, abs=0.1) and joint_action[5] == pytest.approx(
            40.0, abs=0.2
        )
        assert leader.bus.chain.packets_received > 0, "the SDK's packets went through the simulated line"
        assert leader.action_features["shape"] == (6,)
        assert leader.is_calibrated
        leader.config.action_format = "robot"
        robot_action = leader.get_action()
        assert robot_action["shoulder_pan.pos"] == pytest.approx(12.5, abs=0.1)
    finally:
        leader.disconnect()


def test_keyboard_unavailable_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynput", None)  # import fails as on a headless robot PC
    from lerobot_policy_e2hil.so101.config_simulated import SO101LeaderHILSimConfig
    from lerobot_policy_e2hil.so101.simulated import SO101LeaderHILSim

    leader = SO101LeaderHILSim(
        SO101LeaderHILSimConfig(port="sim", calibration_dir=tmp_path, use_keyboard=True)
    )
    with pytest.raises(RuntimeError, match="use_keyboard=false"):
        leader.connect()
    assert not leader.is_connected


class FakeKinematics:
    """Forward kinematics where x = shoulder_pan / 100 m (enough to check the delta logic)."""

    def forward_kinematics(self, joints):
        pose = np.eye(4)
        pose[0, 3] = joints[0] / 100.0
        return pose


def test_ee_delta_follows_leader_motion_with_carry_over(tmp_path, monkeypatch):
    from lerobot_policy_e2hil.so101.simulated import SO101LeaderHILSim

    monkeypatch.setattr(SO101LeaderHILSim, "_make_kinematics", lambda self: FakeKinematics())
    leader = make_leader(tmp_path, control_space="ee", urdf_path="unused.urdf")
    try:
        assert leader.get_action()["delta_x"] == 0.0
        leader.set_joint_positions({"shoulder_pan": 5.0})  # +5 cm while not intervening: ignored
        assert leader.get_action()["delta_x"] == 0.0
        leader.events.set_intervention(True)
        leader.get_action()
        leader.set_joint_positions({"shoulder_pan": 9.0})  # +4 cm = 1.6 steps of 2.5 cm
        deltas = [leader.get_action()["delta_x"] for _ in range(3)]
        assert deltas[0] == pytest.approx(1.0) and deltas[1] == pytest.approx(0.6, abs=0.02)
        assert deltas[2] == pytest.approx(0.0, abs=1e-6)
        leader.set_joint_positions({"gripper": 80.0})
        assert leader.get_action()["gripper"] == 0.0
        leader.set_joint_positions({"gripper": 10.0})
        assert leader.get_action()["gripper"] == 2.0
    finally:
        leader.disconnect()


@pytest.mark.slow
def test_evaluation_counts_key_successes_and_writes_the_summary(tmp_path):
    from lerobot.rl import gym_manipulator

    from test_so101_pipeline import sim_config

    cfg = sim_config(tmp_path)
    env, teleop = gym_manipulator.make_robot_env(cfg.env)
    try:
        env_processor, action_processor = gym_manipulator.make_processors(env, teleop, cfg.env, "cpu")
        calls = {"n": 0}

        def select_action(observation):
            assert observation["observation.images.front"].shape == (1, 3, 128, 128)
            calls["n"] += 1
            if calls["n"] == 3:  # the operator presses the success key in episode 0
                teleop.events.mark_success()
            return observation["observation.state"].squeeze(0)

        results = run_episodes(env, env_processor, action_processor, select_action, n_episodes=2)
    finally:
        teleop.disconnect()
        env.close()
    assert [r.success for r in results] == [True, False]
    # 0.5 s at 10 fps = 5 steps; LeRobot's TimeLimitProcessorStep also counts the reset transition.
    assert results[0].steps == 3 and results[1].steps == 4
    summary = summarize(results, "keys", "ckpt")
    assert summary.success_rate == 0.5
    path = write_summary(summary, tmp_path / "eval" / "summary.json")
    saved = json.loads(path.read_text())
    assert saved["success_rate"] == 0.5 and len(saved["episodes"]) == 2
    assert isinstance(results[0], EpisodeResult) and saved["successes"] == 1
