"""The SO101 train config through learner-side training, checkpointing and the evaluation command.

Everything runs against the simulated SO101 arms (``so101_follower_sim`` / ``so101_leader_hil_sim``,
synthetic cameras) with ``HIL-SERL/train_config_e2hil_so101.json`` and dotted overrides only:

1. the env is built as the actor builds it (LeRobot's ``make_robot_env`` / ``make_processors``), the
   policy with ``make_policy`` from the config's features, the algorithm with LeRobot's
   ``make_algorithm`` (``e2hil``); real transitions (policy steps and a leader intervention) go into
   LeRobot's replay buffers and one ``RLTrainer`` step updates the networks;
2. the learner's own ``save_training_checkpoint`` writes the checkpoint;
3. ``lerobot_policy_e2hil.so101.evaluate.main`` loads ``checkpoints/last/pretrained_model`` and runs
   episodes whose outcome a scripted operator decides; the printed success rate and the JSON
   summary are checked against that script.

Test-only overrides: the toy 6-joint URDF from ``test_so101_pipeline`` replaces the SO101 URDF (not
in this repository), ``policy.vision_encoder_name=null`` replaces ``helper2424/resnet10`` (needs the
Hugging Face Hub), the device is the CPU and the reward classifier is off.
"""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import draccus
import numpy as np
import pytest
import torch
from lerobot.processor import TransitionKey
from lerobot.rl import gym_manipulator
from lerobot.teleoperators.utils import TeleopEvents

import lerobot_policy_e2hil  # noqa: F401  (registers e2hil and the so101 types)
from lerobot_policy_e2hil.so101 import evaluate as so101_evaluate
from test_so101_pipeline import JOINTS, toy_arm_urdf

TRAIN_CONFIG = Path(__file__).resolve().parents[1] / "HIL-SERL" / "train_config_e2hil_so101.json"
#: A pose of the toy arm whose end effector is inside the test's end-effector bounds.
HOME = [0.0, 0.0, 30.0, -30.0, 0.0, 50.0]
#: Continuous action the checkpoint's actor is built to output (tanh of its mean), in [-1, 1].
POLICY_MEAN = torch.tensor([-0.4, 0.0, 0.4])
#: Action range in the checkpoint's saved postprocessor (the train config says [-1, 1]).
CHECKPOINT_ACTION_RANGE = 0.5
#: Discrete gripper command the checkpoint's discrete critic prefers (2 = open).
POLICY_GRIPPER = 2


def sim_overrides(tmp_path: Path, fps: int = 10, control_time_s: float = 0.8) -> list[str]:
    """Dotted overrides that run the SO101 train config on the simulated arms.

    Args:
        tmp_path: Folder for the toy URDF and the calibration files.
        fps: Control rate.
        control_time_s: Episode length in seconds (``control_time_s * fps`` steps).

    Returns:
        Command-line overrides, as the learner, the actor and the evaluator take them.
    """
    urdf = toy_arm_urdf(tmp_path / "toy_arm.urdf")
    return [
        "--env.robot.type=so101_follower_sim",
        "--env.teleop.type=so101_leader_hil_sim",
        "--env.teleop.use_keyboard=false",
        f"--env.robot.calibration_dir={tmp_path / 'calibration' / 'robot'}",
        f"--env.teleop.calibration_dir={tmp_path / 'calibration' / 'teleop'}",
        f"--env.processor.inverse_kinematics.urdf_path={urdf}",
        f"--env.teleop.urdf_path={urdf}",
        "--env.processor.inverse_kinematics.end_effector_bounds="
        "{'min': [0.0, -0.3, -0.05], 'max': [0.45, 0.3, 0.4]}",
        f"--env.processor.reset.fixed_reset_joint_positions={HOME}",
        "--env.processor.reset.reset_time_s=0",
        f"--env.processor.reset.control_time_s={control_time_s}",
        f"--env.fps={fps}",
        "--env.processor.reward_classifier.pretrained_path=null",
        "--policy.device=cpu",
        "--policy.vision_encoder_name=null",
    ]


def parse_train_config(args: list[str]):
    """Parse and validate the train config as ``e2hil-learner`` / ``e2hil-actor`` do."""
    from lerobot.rl.train_rl import TrainRLServerPipelineConfig

    cfg = draccus.parse(TrainRLServerPipelineConfig, config_path=str(TRAIN_CONFIG), args=args)
    cfg.validate()
    return cfg


def make_deterministic(policy) -> None:
    """Make the actor output ``tanh(mean) = POLICY_MEAN`` with a negligible spread, gripper ``POLICY_GRIPPER``."""
    with torch.no_grad():
        actor = policy.actor
        actor.mean_layer.weight.zero_()
        actor.mean_layer.bias.copy_(torch.atanh(POLICY_MEAN))
        actor.std_layer.weight.zero_()
        actor.std_layer.bias.fill_(-30.0)  # exp(-30) is clamped to policy_kwargs.std_min (1e-5)
        head = policy.discrete_critic.output_layer
        head.weight.zero_()
        head.bias.zero_()
        head.bias[POLICY_GRIPPER] = 5.0


def train_so101_checkpoint(tmp_path_factory):
    """Run the learner-side path once: env, policy, algorithm, real transitions, one update, checkpoint.

    The session fixture ``trained`` (conftest.py) calls it once for every test that reads it.
    """
    from lerobot.policies.factory import make_policy, make_pre_post_processors
    from lerobot.rl.algorithms.factory import make_algorithm
    from lerobot.rl.buffer import ReplayBuffer
    from lerobot.rl.data_sources.data_mixer import OnlineOfflineMixer
    from lerobot.rl.learner import save_training_checkpoint
    from lerobot.rl.trainer import RLTrainer

    tmp_path = tmp_path_factory.mktemp("so101_train")
    cfg = parse_train_config(
        [*sim_overrides(tmp_path, control_time_s=2.0), f"--output_dir={tmp_path / 'run'}"]
    )
    torch.manual_seed(0)

    env, teleop = gym_manipulator.make_robot_env(cfg.env)
    try:
        env_processor, action_processor = gym_manipulator.make_processors(
            env, teleop, cfg.env, cfg.policy.device
        )
        policy = make_policy(cfg=cfg.policy, env_cfg=cfg.env)
        algorithm = make_algorithm(cfg=cfg.algorithm, policy=policy)
        preprocessor, postprocessor = make_pre_post_processors(
            policy_cfg=cfg.policy, dataset_stats=cfg.policy.dataset_stats
        )

        # The actor's loop (lerobot.rl.actor.act_with_policy), with the operator taking over at steps 2-3.
        transitions, policy_actions, flags = [], [], []
        transition = gym_manipulator.reset_and_build_transition(env, env_processor, action_processor)
        teleop.set_joint_positions(
            dict(zip(JOINTS, HOME, strict=True))
        )  # the leader rests where the follower is
        for step in range(6):
            if step == 2:
                teleop.events.set_intervention(True)
                teleop.set_joint_positions({"wrist_flex": -45.0})  # lifts the leader's end effector
            if step == 4:
                teleop.events.set_intervention(False)
            observation = {
                k: v
                for k, v in transition[TransitionKey.OBSERVATION].items()
                if k in cfg.policy.input_features
            }
            with torch.no_grad():
                action = policy.select_action(batch=preprocessor.process_observation(observation))
            continuous = postprocessor.process_action(action[..., :-1])
            action = torch.cat([continuous, action[..., -1:].to(continuous)], dim=-1)
            policy_actions.append(action)
            new_transition = gym_manipulator.step_env_and_process_transition(
                env=env,
                transition=transition,
                action=action,
                env_processor=env_processor,
                action_processor=action_processor,
            )
            is_intervention = bool(
                new_transition[TransitionKey.INFO].get(TeleopEvents.IS_INTERVENTION, False)
            )
            flags.append(is_intervention)
            transitions.append(
                {
                    "state": observation,
                    "action": new_transition[TransitionKey.COMPLEMENTARY_DATA]["teleop_action"],
                    "reward": float(new_transition[TransitionKey.REWARD]),
                    "next_state": {
                        k: v
                        for k, v in new_transition[TransitionKey.OBSERVATION].items()
                        if k in cfg.policy.input_features
                    },
                    "done": bool(new_transition[TransitionKey.DONE]),
                    "truncated": bool(new_transition[TransitionKey.TRUNCATED]),
                    "complementary_info": {
                        "discrete_penalty": torch.tensor(
                            [new_transition[TransitionKey.COMPLEMENTARY_DATA].get("discrete_penalty", 0.0)]
                        ),
                        TeleopEvents.IS_INTERVENTION.value: is_intervention,
                    },
                }
            )
            transition = new_transition
    finally:
        teleop.disconnect()
        env.close()

    # The learner's buffers (learner.initialize_replay_buffer / process_transitions).
    buffers = [
        ReplayBuffer(
            capacity=64,
            device="cpu",
            state_keys=cfg.policy.input_features.keys(),
            storage_device="cpu",
            optimize_memory=True,
        )
        for _ in range(2)
    ]
    online, offline = buffers
    for t in transitions:
        online.add(**t)
        if t["complementary_info"][TeleopEvents.IS_INTERVENTION.value]:
            offline.add(**t)
    mixer = OnlineOfflineMixer(online_buffer=online, offline_buffer=offline, online_ratio=cfg.online_ratio)
    trainer = RLTrainer(algorithm=algorithm, data_mixer=mixer, batch_size=4, preprocessor=preprocessor)
    before = {k: v.detach().clone() for k, v in policy.state_dict().items()}
    stats = trainer.training_step()
    after = policy.state_dict()

    # The checkpoint the evaluation loads: the trained networks with a known actor and discrete
    # head, and a postprocessor whose action range differs from the train config's.
    make_deterministic(policy)
    stats_override = copy.deepcopy(cfg.policy.dataset_stats)
    stats_override["action"] = {
        "min": [-CHECKPOINT_ACTION_RANGE] * 3,
        "max": [CHECKPOINT_ACTION_RANGE] * 3,
    }
    checkpoint_pre, checkpoint_post = make_pre_post_processors(
        policy_cfg=cfg.policy, dataset_stats=stats_override
    )
    save_training_checkpoint(
        cfg=cfg,
        optimization_step=1,
        online_steps=cfg.policy.online_steps,
        interaction_message={"Interaction step": len(transitions)},
        policy=policy,
        optimizers=algorithm.get_optimizers(),
        replay_buffer=online,
        algorithm=algorithm,
        offline_replay_buffer=offline,
        dataset_repo_id=cfg.dataset.repo_id,
        fps=cfg.env.fps,
        preprocessor=checkpoint_pre,
        postprocessor=checkpoint_post,
    )
    return {
        "cfg": cfg,
        "tmp_path": tmp_path,
        "transitions": transitions,
        "policy_actions": policy_actions,
        "flags": flags,
        "stats": stats,
        "changed": [k for k in before if not torch.equal(before[k], after[k])],
        "algorithm": algorithm,
        "pretrained_model": Path(cfg.output_dir) / "checkpoints" / "last" / "pretrained_model",
    }


def test_train_config_declares_env_features_that_match_the_policy():
    from lerobot.envs.utils import env_to_policy_features

    cfg = parse_train_config([])
    env_features = env_to_policy_features(cfg.env)
    assert env_features["action"].shape == cfg.policy.output_features["action"].shape == (3,)
    for key, feature in cfg.policy.input_features.items():
        assert env_features[key].shape == feature.shape, key
    cameras = sorted(f"observation.images.{name}" for name in cfg.env.robot.cameras)
    assert sorted(k for k in cfg.policy.input_features if k.startswith("observation.images.")) == cameras
    assert cfg.policy.num_discrete_actions == 3
    assert cfg.env.processor.gripper.use_gripper and cfg.env.teleop.use_gripper


@pytest.mark.slow
def test_policy_observations_and_actions_fit_the_simulated_so101(trained):
    cfg = trained["cfg"]
    observation = trained["transitions"][0]["state"]
    assert {k: tuple(v.shape[1:]) for k, v in observation.items()} == {
        k: tuple(f.shape) for k, f in cfg.policy.input_features.items()
    }
    for key, stats in cfg.policy.dataset_stats.items():
        if key in observation and "min" in stats:
            state = observation[key].squeeze(0)
            assert state.shape == (len(stats["min"]),)
            assert torch.all(state >= torch.tensor(stats["min"])) and torch.all(
                state <= torch.tensor(stats["max"])
            )
    # Policy action: 3 continuous deltas + 1 discrete gripper command (num_discrete_actions=3).
    for action in trained["policy_actions"]:
        assert action.shape == (1, 4)
        assert torch.all(action[0, :3].abs() <= 1.0)
        assert action[0, 3].item() in (0.0, 1.0, 2.0)
    # Executed (stored) action: the same 4 values, from the policy or, while intervening, the leader
    # (LeRobot gives the policy's as (1, 4) and the leader's as (4,); the replay buffer squeezes both).
    assert trained["flags"] == [False, False, True, True, False, False]
    for t, action in zip(trained["transitions"], trained["policy_actions"], strict=True):
        stored = t["action"].reshape(-1)
        assert stored.shape == (4,)
        if not t["complementary_info"][TeleopEvents.IS_INTERVENTION.value]:
            assert torch.allclose(stored, action.squeeze(0), atol=1e-5)
    lift = trained["transitions"][2]["action"].reshape(-1)
    assert lift[2] > 0.5, "the leader's lift is the stored action"


@pytest.mark.slow
def test_one_e2hil_update_on_real_so101_transitions(trained):
    from lerobot_policy_e2hil.algorithm.e2hil_algorithm import E2HiLAlgorithm

    algorithm = trained["algorithm"]
    assert isinstance(algorithm, E2HiLAlgorithm)
    stats = trained["stats"]
    for name in ("loss_critic", "loss_discrete_critic", "loss_actor", "loss_temperature"):
        assert math.isfinite(stats.losses[name]), name
    assert algorithm.last_influence is not None and algorithm.last_influence.shape == (4,)
    changed = trained["changed"]
    assert any(k.startswith("actor.") for k in changed), "the actor was updated"
    assert any(k.startswith("discrete_critic.") for k in changed), "the discrete critic was updated"


@pytest.mark.slow
def test_learner_checkpoint_has_policy_and_processors(trained):
    folder = trained["pretrained_model"]
    names = {p.name for p in folder.iterdir()}
    assert {"model.safetensors", "config.json", "train_config.json"} <= names
    assert {"policy_preprocessor.json", "policy_postprocessor.json"} <= names


@pytest.mark.e2e
def test_evaluate_command_loads_the_checkpoint_and_reports_success_rate(trained, monkeypatch, capsys):
    from lerobot.model import RobotKinematics

    tmp_path = trained["tmp_path"]
    output = tmp_path / "eval" / "summary.json"
    devices, executed = {}, []
    episode = {"index": -1, "step": 0}

    original_teleop = gym_manipulator.make_teleoperator_from_config
    original_robot = gym_manipulator.make_robot_from_config
    original_reset = gym_manipulator.reset_and_build_transition
    original_policy_fn = so101_evaluate.policy_action_fn

    def make_teleop(config):
        devices["leader"] = original_teleop(config)
        return devices["leader"]

    def make_robot(config):
        devices["follower"] = original_robot(config)
        return devices["follower"]

    def reset(*args, **kwargs):
        episode["index"] += 1
        episode["step"] = 0
        return original_reset(*args, **kwargs)

    def policy_fn(*args, **kwargs):
        select_action = original_policy_fn(*args, **kwargs)

        def operated(observation):
            # The operator's script, acted out before the env executes step `step`:
            # episode 0: success key at step 3; episode 1: intervention at steps 3-4, then the
            # time limit (8 steps); episode 2: failure key at step 2.
            episode["step"] += 1
            index, step = episode["index"], episode["step"]
            events = devices["leader"].events
            if (index, step) == (0, 3):
                events.mark_success()
            if (index, step) == (1, 3):
                events.set_intervention(True)
            if (index, step) == (1, 5):
                events.set_intervention(False)
            if (index, step) == (2, 2):
                events.mark_failure()
            action = select_action(observation)
            joints = devices["follower"].joint_positions()
            executed.append((index, step, action.clone(), np.array([joints[j] for j in JOINTS])))
            return action

        return operated

    monkeypatch.setattr(gym_manipulator, "make_teleoperator_from_config", make_teleop)
    monkeypatch.setattr(gym_manipulator, "make_robot_from_config", make_robot)
    monkeypatch.setattr(gym_manipulator, "reset_and_build_transition", reset)
    monkeypatch.setattr(so101_evaluate, "policy_action_fn", policy_fn)
    so101_evaluate.main(
        [
            f"--train_config={TRAIN_CONFIG}",
            f"--policy_path={trained['pretrained_model']}",
            "--n_episodes=3",
            "--success_source=keys",
            f"--output={output}",
            # 9 control steps per episode, of which LeRobot's TimeLimitProcessorStep spends one on
            # the reset observation: episodes that nobody ends last 8 steps.
            *sim_overrides(tmp_path, control_time_s=0.9),
        ]
    )

    printed = capsys.readouterr().out
    match = re.search(r"Success rate: ([\d.]+)% \((\d+)/(\d+)\), intervention rate ([\d.]+)%", printed)
    assert match, printed
    summary = json.loads(output.read_text())
    assert (int(match[2]), int(match[3])) == (summary["successes"], summary["n_episodes"]) == (1, 3)
    assert float(match[1]) == pytest.approx(100 * summary["success_rate"], abs=0.05)
    assert float(match[4]) == pytest.approx(100 * summary["intervention_rate"], abs=0.05)
    assert summary["success_rate"] == pytest.approx(1 / 3)
    episodes = summary["episodes"]
    assert [e["success"] for e in episodes] == [True, False, False]
    assert [e["steps"] for e in episodes] == [3, 8, 2]
    assert [e["intervention_steps"] for e in episodes] == [0, 2, 0]
    assert summary["intervention_rate"] == pytest.approx(2 / 13)
    assert summary["policy_path"] == str(trained["pretrained_model"])

    # The actions are the checkpoint's: its actor and discrete head, unnormalised with the
    # checkpoint's saved action range (not the train config's).
    expected = torch.cat([POLICY_MEAN * CHECKPOINT_ACTION_RANGE, torch.tensor([float(POLICY_GRIPPER)])])
    for _, _, action, _ in executed:
        assert torch.allclose(action.squeeze(0), expected, atol=0.01), action  # spread: std_min
    # ... and they drove the simulated follower: in episode 0 its end effector rose by about the
    # commanded 2 x 0.2 x 2 cm (x is not checked: the toy arm's IK trades it against orientation).
    kinematics = RobotKinematics(
        urdf_path=str(tmp_path / "toy_arm.urdf"), target_frame_name="gripper_frame_link", joint_names=JOINTS
    )
    poses = [kinematics.forward_kinematics(j.astype(float))[:3, 3] for i, _, _, j in executed if i == 0]
    assert 0.005 < poses[-1][2] - poses[0][2] < 0.012, poses
