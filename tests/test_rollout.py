"""One rollout (lerobot_policy_e2hil.rollout): the success definition, the offline-buffer rule, and
the three evaluators (sim, benchmark, SO101) acting through it; no gym registration by a config."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("gym_hil")

import gymnasium as gym  # noqa: E402
from lerobot.processor import TransitionKey  # noqa: E402

from lerobot_policy_e2hil import rollout  # noqa: E402
from lerobot_policy_e2hil.sim.config import SIM_GYM_ID, E2HiLSimEnvConfig, TeacherConfig  # noqa: E402
from lerobot_policy_e2hil.sim.env import make_sim_env, register_gym_id  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _transition(reward=0.0, **info):
    return {TransitionKey.REWARD: reward, TransitionKey.INFO: info}


def test_one_success_definition_env_flag_or_positive_reward():
    assert rollout.step_succeeded(_transition(is_success=True))
    assert rollout.step_succeeded(_transition(reward=1.0))  # the classifier or the success key
    assert rollout.step_succeeded(_transition(reward=torch.tensor(1.0)))
    assert not rollout.step_succeeded(_transition(reward=-0.02, is_success=False))  # a gripper penalty
    assert not rollout.step_succeeded(_transition())


@pytest.mark.parametrize(
    ("teacher", "wanted"),
    [
        (TeacherConfig(mode="scripted", demo_episodes=5), True),
        (TeacherConfig(mode="always", demo_episodes=1), True),
        (TeacherConfig(mode="scripted", demo_episodes=0), False),
        (TeacherConfig(mode="off", demo_episodes=5), False),
        (None, False),
    ],
)
def test_offline_buffer_only_with_demonstrations(teacher, wanted):
    assert rollout.offline_buffer_wanted(SimpleNamespace(teacher=teacher)) is wanted


def _sim(teacher_mode: str, max_episode_steps: int):
    from lerobot.rl.gym_manipulator import make_processors

    cfg = E2HiLSimEnvConfig(max_episode_steps=max_episode_steps, teacher=TeacherConfig(mode=teacher_mode))
    env = make_sim_env(cfg.sim_options(teacher=True))
    return (env, *make_processors(env, None, cfg, "cpu"))


def _evaluate(teacher_mode: str, max_episode_steps: int, gripper: float, episodes: int, **options):
    """``rollout.evaluate`` on the sim with a constant action (z up, the given gripper command)."""
    env, env_processor, action_processor = _sim(teacher_mode, max_episode_steps)
    action = torch.tensor([[0.0, 0.0, 1.0, gripper]])
    try:
        return rollout.evaluate(env, env_processor, action_processor, lambda o: action, episodes, **options)
    finally:
        env.close()


def test_teacher_episode_succeeds_and_counts_every_step_as_intervention():
    ends = []
    results = _evaluate("always", 80, 1.0, 1, on_episode_end=lambda result, last: ends.append((result, last)))
    assert len(results) == 1 and results[0].success
    assert results[0].intervention_steps == results[0].steps < 80
    assert ends[0][0] is results[0] and ends[0][1][TransitionKey.INFO]["is_success"]
    assert rollout.success_rate(results) == 1.0


def test_max_steps_ends_an_episode_as_a_failure():
    results = _evaluate("off", 50, 1.0, 2, max_steps=3)
    assert [(r.episode, r.steps, r.success, r.intervention_steps) for r in results] == [
        (0, 3, False, 0),
        (1, 3, False, 0),
    ]


def _every_step_succeeds(monkeypatch):
    monkeypatch.setattr(rollout, "step_succeeded", lambda transition: True)


def test_sim_evaluation_uses_the_rollout_success(monkeypatch, small_sim_checkpoint):
    from lerobot_policy_e2hil.sim.evaluate import evaluate_checkpoint

    cfg = E2HiLSimEnvConfig(max_episode_steps=3)
    assert evaluate_checkpoint(small_sim_checkpoint, cfg, episodes=2) == 0.0
    _every_step_succeeds(monkeypatch)
    assert evaluate_checkpoint(small_sim_checkpoint, cfg, episodes=2) == 1.0


@pytest.mark.slow
def test_bench_evaluation_uses_the_rollout_success(monkeypatch):
    from lerobot_policy_e2hil.bench.config import RunConfig
    from lerobot_policy_e2hil.bench.trainer import SyncTrainer

    run = RunConfig(method="sac", seed=3, batch_size=32, overrides=("--env.max_episode_steps=3",))
    trainer = SyncTrainer(run, root=ROOT, log=lambda line: None)
    try:
        trainer.build()
        assert trainer.evaluate(2) == 0.0
        _every_step_succeeds(monkeypatch)
        assert trainer.evaluate(2) == 1.0
    finally:
        trainer.close()


def test_so101_evaluation_uses_the_rollout_success(monkeypatch):
    from lerobot_policy_e2hil.so101.evaluate import run_episodes

    env, env_processor, action_processor = _sim("off", 3)
    try:
        act = lambda o: torch.tensor([[0.0, 0.0, 0.0, 1.0]])  # noqa: E731
        assert not any(r.success for r in run_episodes(env, env_processor, action_processor, act, 1))
        _every_step_succeeds(monkeypatch)
        assert all(r.success for r in run_episodes(env, env_processor, action_processor, act, 1))
    finally:
        env.close()


def _launcher_episode_records(episodes):
    """The ``success`` of the learner's episode records for episodes of (processed) step transitions.

    Each step goes through the sim actor's env-step hook, each episode's message through its
    interactions queue and the learner's ``process_interaction_message`` hook, as in a run.
    """
    from lerobot_policy_e2hil.launcher import hooks
    from lerobot_policy_e2hil.wire.messages import decode_message, encode_message

    tracker, sent = hooks._EpisodeTracker(), []
    queue = hooks._EpisodeTaggingQueue(SimpleNamespace(put=sent.append), tracker)
    for steps in episodes:
        for transition in steps:
            tracker.step(SimpleNamespace(proceed=lambda transition=transition: transition))
        reward = sum(float(t[TransitionKey.REWARD]) for t in steps)
        queue.put(encode_message({"Episodic reward": reward, "Interaction step": len(steps)}))
    records = []
    sink = SimpleNamespace(write=lambda kind, **fields: records.append(fields))
    learner_hook = hooks._recording_interactions(lambda: sink)
    for data in sent:
        learner_hook(SimpleNamespace(proceed=lambda data=data: decode_message(data, 1 << 20)))
    return [record["success"] for record in records]


#: A success flag without reward, a positive reward under 0.5, a gripper penalty alone
EDGE_EPISODES = [
    [_transition(), _transition(is_success=True)],
    [_transition(reward=0.3)],
    [_transition(reward=-0.02), _transition()],
]


def test_launcher_curves_count_success_as_the_rollout_does():
    expected = [any(rollout.step_succeeded(t) for t in steps) for steps in EDGE_EPISODES]
    assert expected == [True, True, False]
    assert _launcher_episode_records(EDGE_EPISODES) == expected


def test_launcher_curves_follow_the_rollout_success_function(monkeypatch):
    _every_step_succeeds(monkeypatch)
    assert _launcher_episode_records(EDGE_EPISODES) == [True, True, True]
    monkeypatch.setattr(rollout, "step_succeeded", lambda transition: False)
    assert _launcher_episode_records(EDGE_EPISODES) == [False, False, False]


def test_episode_message_without_the_sim_actors_flag_uses_the_rollout_reward_rule(monkeypatch):
    from lerobot_policy_e2hil.launcher.hooks import episode_success

    assert [episode_success({"Episodic reward": r}) for r in (0.0, 0.3, 1.0, -0.02)] == [
        False,
        True,
        True,
        False,
    ]
    assert episode_success({"Episodic reward": 0.0, "Episode success": True})
    monkeypatch.setattr(rollout, "reward_succeeded", lambda reward: True)
    assert episode_success({"Episodic reward": 0.0})


def test_building_the_config_leaves_the_gym_registry_alone():
    gym.registry.pop(SIM_GYM_ID, None)
    before = dict(gym.registry)
    E2HiLSimEnvConfig(max_episode_steps=7, random_block_position=True)
    assert dict(gym.registry) == before and SIM_GYM_ID not in gym.registry


def test_register_gym_id_is_idempotent_and_the_env_builds_by_id():
    from lerobot.envs.configs import HILSerlRobotEnvConfig
    from lerobot.rl.gym_manipulator import make_robot_env

    assert not register_gym_id(HILSerlRobotEnvConfig())  # not the sim: nothing registered
    cfg = E2HiLSimEnvConfig(max_episode_steps=7)
    assert register_gym_id(cfg)
    spec = gym.registry[SIM_GYM_ID]
    assert register_gym_id(cfg) and gym.registry[SIM_GYM_ID] is spec  # same options: kept
    assert spec.kwargs["sim_options"]["max_episode_steps"] == 7
    env, _ = make_robot_env(cfg)  # LeRobot's actor path: gym.make by the registered id
    try:
        env.reset(seed=0)
        steps = 0
        truncated = terminated = False
        while not (terminated or truncated):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample() * 0)
            steps += 1
        assert steps == 7
    finally:
        env.close()
    register_gym_id(E2HiLSimEnvConfig(max_episode_steps=9))  # other options replace the registration
    assert gym.registry[SIM_GYM_ID].kwargs["sim_options"]["max_episode_steps"] == 9
