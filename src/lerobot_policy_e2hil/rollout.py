"""One rollout: how a policy acts in a HIL-SERL env, what counts as a success, N evaluation episodes.

The sim evaluation (:mod:`.sim.evaluate`), the benchmark trainer (:mod:`.bench.trainer`) and the
SO101 evaluation (:mod:`.so101.evaluate`) act through these functions, on the env stack of
LeRobot's actor: an env from ``make_robot_env`` (or the sim's own, teacher-free) with the
processors of ``gym_manipulator.make_processors``, stepped by LeRobot's
``step_env_and_process_transition``. The policy acts as in LeRobot's actor (``select_action`` on
the preprocessed observation, the continuous part unnormalised by the postprocessor, the discrete
gripper choice kept as it is) or with the mode of its distribution (:func:`mean_action`).

The module also holds the one rule for when a run keeps an offline (intervention) buffer,
:func:`offline_buffer_wanted`, shared by the distributed sim learner and the benchmark trainer.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

#: The ``info`` key of an env's own success flag (LeRobot's ``lerobot-eval`` reads it; the sim sets it)
SUCCESS_INFO_KEY = "is_success"

logger = logging.getLogger(__name__)

#: Maps a batch of processed observations to the env action (a tensor)
ActFn = Callable[[dict[str, torch.Tensor]], torch.Tensor]


@dataclass
class EpisodeResult:
    """Outcome of one evaluation episode."""

    episode: int
    success: bool
    steps: int
    intervention_steps: int
    total_reward: float
    duration_s: float


def offline_buffer_wanted(env_cfg: Any) -> bool:
    """Whether a dataset-free run keeps an offline (intervention) buffer next to the online one.

    The rule: only when the scripted teacher gives demonstrations (``teacher.mode != "off"`` and
    ``teacher.demo_episodes > 0``). Every intervention transition goes to the offline buffer, and
    the replay mixer samples half of each batch from it from the first update on, so the buffer
    must hold transitions by then: the demonstrations come first and reach both buffers in the
    same hand-over, whereas without them the first take-over may come after learning has started
    and LeRobot's ``ReplayBuffer.sample`` refuses an empty buffer. Without demonstrations the run
    trains online-only (take-overs still reach the online buffer). Envs without a teacher (a real
    robot with a dataset) do not use this rule: their offline buffer comes from the dataset.

    Args:
        env_cfg: The run's env config (an ``e2hil_sim`` config has a ``teacher``).
    """
    teacher = getattr(env_cfg, "teacher", None)
    return teacher is not None and teacher.mode != "off" and teacher.demo_episodes > 0


def policy_observation(observation: Mapping[str, Any], features: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of a processed observation that the policy takes (its ``input_features``)."""
    return {key: value for key, value in observation.items() if key in features}


def select_action(
    policy: Any,
    preprocessor: Any,
    postprocessor: Any,
    observation: Mapping[str, Any],
    features: Mapping[str, Any],
    deterministic: bool = False,
) -> torch.Tensor:
    """The env action for one processed observation, as LeRobot's actor computes it (no gradients).

    Args:
        policy: The policy (its ``select_action`` samples from the tanh-Gaussian).
        preprocessor: The policy preprocessor (normalises the observation).
        postprocessor: The policy postprocessor (unnormalises the continuous action).
        observation: The env processor's observation (batched tensors).
        features: The policy's ``input_features``; other observation entries are dropped.
        deterministic: Act with the mode (:func:`mean_action`) instead of a sample.

    Returns:
        The continuous action, followed by the discrete gripper choice when the policy has one.
    """
    with torch.no_grad():
        batch = preprocessor.process_observation(policy_observation(observation, features))
        action = mean_action(policy, batch) if deterministic else policy.select_action(batch=batch)
        if policy.config.num_discrete_actions is None:
            return postprocessor.process_action(action)
        continuous = postprocessor.process_action(action[..., :-1])
        discrete = action[..., -1:].to(device=continuous.device, dtype=continuous.dtype)
        return torch.cat([continuous, discrete], dim=-1)


def make_act(
    policy: Any,
    preprocessor: Any,
    postprocessor: Any,
    features: Mapping[str, Any],
    deterministic: bool = False,
) -> ActFn:
    """:func:`select_action` bound to one policy: a processed observation -> env action function."""
    return functools.partial(
        select_action, policy, preprocessor, postprocessor, features=features, deterministic=deterministic
    )


def mean_action(policy: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The policy's deterministic action: ``tanh`` of the Gaussian mean, argmax of the gripper critic.

    ``select_action`` samples from the tanh-Gaussian, as the actor does while training; SAC-style
    evaluations (HIL-SERL's included) usually act with the mode instead.
    """
    _, _, means = policy.actor(batch, None)
    action = torch.tanh(means)
    if policy.config.num_discrete_actions is not None and policy.discrete_critic is not None:
        gripper = torch.argmax(policy.discrete_critic(batch, None), dim=-1, keepdim=True)
        action = torch.cat([action, gripper.to(action.dtype)], dim=-1)
    return action


def reset(env: Any, env_processor: Any, action_processor: Any) -> dict:
    """LeRobot's ``reset_and_build_transition``: the first processed transition of an episode."""
    from lerobot.rl import gym_manipulator

    return gym_manipulator.reset_and_build_transition(env, env_processor, action_processor)


def step(env: Any, transition: dict, action: torch.Tensor, env_processor: Any, action_processor: Any) -> dict:
    """LeRobot's ``step_env_and_process_transition``: act, step the env, process the result."""
    from lerobot.rl import gym_manipulator

    return gym_manipulator.step_env_and_process_transition(
        env=env,
        transition=transition,
        action=action,
        env_processor=env_processor,
        action_processor=action_processor,
    )


def step_succeeded(transition: Mapping[Any, Any]) -> bool:
    """The one success definition: the env's ``info["is_success"]`` or a positive reward.

    The sim sets ``is_success`` (and gives its sparse reward 1) when the cube is lifted or
    touched; on a robot, HIL-SERL's reward is the success signal (the reward classifier, or the
    operator's success key). An episode succeeds when any of its steps does.
    """
    from lerobot.processor import TransitionKey

    info = transition.get(TransitionKey.INFO) or {}
    return bool(info.get(SUCCESS_INFO_KEY, False)) or reward_succeeded(transition.get(TransitionKey.REWARD))


def reward_succeeded(reward: Any) -> bool:
    """The reward half of :func:`step_succeeded`: a positive reward (``None`` is no reward).

    Applied to an episode's summed reward it gives the episode's success when the env gives no
    ``is_success`` flag and no negative rewards (the sim's rewards are 0 or 1; the gripper penalty
    is not part of the reward).
    """
    return reward is not None and float(reward) > 0


def step_intervened(transition: Mapping[Any, Any]) -> bool:
    """Whether the teleoperator (a person or the scripted teacher) acted at this step."""
    from lerobot.processor import TransitionKey
    from lerobot.teleoperators.utils import TeleopEvents

    info = transition.get(TransitionKey.INFO) or {}
    return bool(info.get(TeleopEvents.IS_INTERVENTION, False))


def episode_ended(transition: Mapping[Any, Any]) -> bool:
    """Whether the env (or a processor: time limit, failure key) ended the episode."""
    from lerobot.processor import TransitionKey

    return bool(transition.get(TransitionKey.DONE)) or bool(transition.get(TransitionKey.TRUNCATED))


def learner_transition(
    observation: dict[str, Any], new: Mapping[Any, Any], features: Mapping[str, Any]
) -> Any:
    """The transition that LeRobot's actor sends to the learner for one step.

    Args:
        observation: The policy's observation before the step (:func:`policy_observation`).
        new: The processed transition after the step (:func:`step`).
        features: The policy's ``input_features``.

    Returns:
        A ``lerobot.utils.transition.Transition``: the executed action (the teleoperator's during an
        intervention, else the policy's), reward, done and truncated flags, the next observation,
        the gripper's ``discrete_penalty`` and the intervention flag.
    """
    from lerobot.processor import TransitionKey
    from lerobot.teleoperators.utils import TeleopEvents
    from lerobot.utils.transition import Transition

    complementary = new[TransitionKey.COMPLEMENTARY_DATA]
    return Transition(
        state=observation,
        action=complementary["teleop_action"],
        reward=new[TransitionKey.REWARD],
        next_state=policy_observation(new[TransitionKey.OBSERVATION], features),
        done=new.get(TransitionKey.DONE, False),
        truncated=new.get(TransitionKey.TRUNCATED, False),
        complementary_info={
            "discrete_penalty": torch.tensor([complementary.get("discrete_penalty", 0.0)]),
            TeleopEvents.IS_INTERVENTION.value: step_intervened(new),
        },
    )


def run_episode(
    env: Any,
    env_processor: Any,
    action_processor: Any,
    act: ActFn,
    index: int = 0,
    fps: float | None = None,
    max_steps: int | None = None,
) -> tuple[EpisodeResult, dict]:
    """Roll out ``act`` for one episode.

    Args:
        env: The env (``make_robot_env``'s, or the sim's).
        env_processor: Its env processor pipeline.
        action_processor: Its action processor pipeline (teleop events, interventions).
        act: Maps the processed observation (batched tensors) to the env action.
        index: The episode's number in the result.
        fps: Pace the loop at this rate (``None``: as fast as possible).
        max_steps: End the episode after this many steps (a failure unless it succeeded).

    Returns:
        The episode's result and its last transition (its ``info`` describes the episode's end).
    """
    from lerobot.processor import TransitionKey

    transition = reset(env, env_processor, action_processor)
    start = time.perf_counter()
    steps = interventions = 0
    total_reward = 0.0
    success = False
    while True:
        step_start = time.perf_counter()
        with torch.inference_mode():
            action = act(transition[TransitionKey.OBSERVATION])
        transition = step(env, transition, action, env_processor, action_processor)
        steps += 1
        total_reward += float(transition[TransitionKey.REWARD])
        success = success or step_succeeded(transition)
        interventions += step_intervened(transition)
        if episode_ended(transition) or (max_steps is not None and steps >= max_steps):
            break
        if fps:
            time.sleep(max(0.0, 1.0 / fps - (time.perf_counter() - step_start)))
    result = EpisodeResult(index, success, steps, interventions, total_reward, time.perf_counter() - start)
    logger.info("Episode %d: %s in %d steps", index, "success" if success else "failure", steps)
    return result, transition


def evaluate(
    env: Any,
    env_processor: Any,
    action_processor: Any,
    act: ActFn,
    episodes: int,
    fps: float | None = None,
    max_steps: int | None = None,
    on_episode_end: Callable[[EpisodeResult, dict], None] | None = None,
) -> list[EpisodeResult]:
    """Roll out ``act`` for ``episodes`` episodes (see :func:`run_episode` for the arguments).

    Args:
        on_episode_end: Called with each episode's result and last transition.

    Returns:
        One :class:`EpisodeResult` per episode.
    """
    results = []
    for index in range(episodes):
        result, last = run_episode(env, env_processor, action_processor, act, index, fps, max_steps)
        if on_episode_end is not None:
            on_episode_end(result, last)
        results.append(result)
    return results


def success_rate(results: list[EpisodeResult]) -> float:
    """Successful episodes / episodes (0 without episodes)."""
    return sum(r.success for r in results) / len(results) if results else 0.0
