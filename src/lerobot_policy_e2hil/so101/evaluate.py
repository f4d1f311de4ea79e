"""Evaluate a trained policy checkpoint on the SO101 for N episodes and write a summary.

Usage::

    python -m lerobot_policy_e2hil.so101.evaluate \\
        --train_config=HIL-SERL/train_config_e2hil_so101.json \\
        --policy_path=outputs/train/<run>/checkpoints/last/pretrained_model \\
        --n_episodes=20 --success_source=classifier --output=outputs/eval/e2hil_so101.json

``--env.*`` / ``--policy.*`` arguments override the train config as on the learner's command line
(e.g. ``--env.robot.type=so101_follower_sim --env.teleop.type=so101_leader_hil_sim`` for a dry run).

The env, processors and policy inference are the actor's (LeRobot's ``make_robot_env``,
``make_processors``, ``make_policy``, ``make_pre_post_processors``), the episodes those of
:func:`..rollout.evaluate`, with no learner: the checkpoint's weights are loaded and not updated.
An episode succeeds as :func:`..rollout.step_succeeded` says; on the SO101 that is when the
env's reward turns positive: from the reward classifier (``success_source=classifier``, needs
``env.processor.reward_classifier.pretrained_path``) or from the operator's success key
(``success_source=keys``; the failure key ends an episode as a failure). Interventions stay
available for safety and are counted. Prints the success rate and writes a JSON summary.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .. import rollout
from ..errors import ConfigError, exit_on_setup_error
from ..rollout import EpisodeResult

SUCCESS_SOURCES = ("classifier", "keys")
logger = logging.getLogger(__name__)


@dataclass
class SO101EvalConfig:
    """Command-line config of the evaluation.

    Attributes:
        train_config: The learner/actor JSON the checkpoint was trained with (its env and policy blocks).
        policy_path: The checkpoint's ``pretrained_model`` folder.
        n_episodes: Number of evaluation episodes.
        success_source: ``"classifier"`` or ``"keys"`` (see the module docstring).
        output: Where the JSON summary goes.
        max_episode_steps: Override of the episode length (default: the env's ``control_time_s * fps``).
        device: Torch device for the policy (default: the train config's ``policy.device``).
    """

    train_config: str = ""
    policy_path: str = ""
    n_episodes: int = 10
    success_source: str = "classifier"
    output: str = "outputs/eval/so101_eval_summary.json"
    max_episode_steps: int | None = None
    device: str | None = None

    def __post_init__(self) -> None:
        if not self.train_config:
            raise ConfigError(
                "train_config='' is invalid; allowed values: path of a HIL-SERL train config JSON"
            )
        if not self.policy_path:
            raise ConfigError(
                "policy_path='' is invalid; allowed values: a checkpoint's pretrained_model folder"
            )
        if self.n_episodes < 1:
            raise ConfigError(f"n_episodes={self.n_episodes} is invalid; allowed values: >= 1")
        if self.success_source not in SUCCESS_SOURCES:
            raise ConfigError(
                f"success_source={self.success_source!r} is invalid; allowed values: {SUCCESS_SOURCES}"
            )


@dataclass
class EvalSummary:
    """What the evaluation writes to disk."""

    n_episodes: int
    successes: int
    success_rate: float
    intervention_rate: float
    success_source: str
    policy_path: str
    episodes: list[EpisodeResult] = field(default_factory=list)


def run_episodes(
    env,
    env_processor,
    action_processor,
    select_action: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    n_episodes: int,
    fps: float | None = None,
    max_episode_steps: int | None = None,
) -> list[EpisodeResult]:
    """Roll out ``select_action`` in the HIL-SERL env for ``n_episodes`` episodes (:func:`..rollout.evaluate`).

    Args:
        env: The env from ``make_robot_env``.
        env_processor: Its env processor pipeline.
        action_processor: Its action processor pipeline (teleop events, interventions, IK).
        select_action: Maps the processed observation (batched tensors) to the env action.
        n_episodes: How many episodes.
        fps: Pace the loop at this rate (``None``: as fast as possible).
        max_episode_steps: Stop an episode after this many steps (counted as a failure).

    Returns:
        One :class:`~..rollout.EpisodeResult` per episode.
    """
    return rollout.evaluate(
        env, env_processor, action_processor, select_action, n_episodes, fps=fps, max_steps=max_episode_steps
    )


def summarize(results: list[EpisodeResult], success_source: str, policy_path: str) -> EvalSummary:
    """Aggregate episode results into an :class:`EvalSummary`."""
    successes = sum(r.success for r in results)
    total_steps = sum(r.steps for r in results)
    return EvalSummary(
        n_episodes=len(results),
        successes=successes,
        success_rate=rollout.success_rate(results),
        intervention_rate=sum(r.intervention_steps for r in results) / total_steps if total_steps else 0.0,
        success_source=success_source,
        policy_path=policy_path,
        episodes=results,
    )


def write_summary(summary: EvalSummary, output: str | Path) -> Path:
    """Write the summary as JSON (parents created) and return its path."""
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(summary), indent=2) + "\n")
    return path


def policy_action_fn(train_cfg, policy_path: str, device: str) -> Callable[[dict], torch.Tensor]:
    """Load a checkpoint like the actor builds its policy; return an observation -> env action function.

    The weights come from ``<policy_path>/model.safetensors`` and the normalisation from the
    checkpoint's own pre/post-processor files (``policy_preprocessor.json`` /
    ``policy_postprocessor.json`` and their state files, as the learner's ``save_checkpoint``
    writes them), with their device step moved to ``device``.

    Args:
        train_cfg: The parsed learner/actor config (its ``policy`` and ``env`` blocks).
        policy_path: The checkpoint's ``pretrained_model`` folder.
        device: Torch device for inference.

    Returns:
        A function mapping the env's processed observation to the env action: the unnormalised
        continuous action, followed by the discrete gripper command when the policy has one.

    Raises:
        ConfigError: If ``policy_path`` is not a folder with a saved policy and its processors.
    """
    from lerobot.policies.factory import make_policy, make_pre_post_processors
    from lerobot.utils.constants import POLICY_POSTPROCESSOR_DEFAULT_NAME, POLICY_PREPROCESSOR_DEFAULT_NAME

    folder = Path(policy_path)
    expected = [
        "model.safetensors",
        f"{POLICY_PREPROCESSOR_DEFAULT_NAME}.json",
        f"{POLICY_POSTPROCESSOR_DEFAULT_NAME}.json",
    ]
    missing = [name for name in expected if not (folder / name).is_file()]
    if missing:
        raise ConfigError(
            f"policy_path={policy_path!r} is invalid (missing {missing}); allowed values: a checkpoint's "
            "pretrained_model folder, e.g. outputs/train/<run>/checkpoints/last/pretrained_model"
        )
    train_cfg.policy.pretrained_path = folder
    train_cfg.policy.device = device
    policy = make_policy(cfg=train_cfg.policy, env_cfg=train_cfg.env).to(device).eval()
    preprocessor, postprocessor = make_pre_post_processors(
        policy_cfg=train_cfg.policy,
        pretrained_path=str(folder),
        preprocessor_overrides={"device_processor": {"device": device}},
        postprocessor_overrides={"device_processor": {"device": "cpu"}},
    )
    return rollout.make_act(policy, preprocessor, postprocessor, train_cfg.policy.input_features)


def evaluate(cfg: SO101EvalConfig, train_overrides: list[str] | None = None) -> EvalSummary:
    """Run the evaluation described by ``cfg`` on the configured robot.

    Args:
        cfg: The evaluation config.
        train_overrides: Dotted overrides applied to the train config, as on the learner's command
            line (e.g. ``["--env.robot.type=so101_follower_sim"]``).

    Returns:
        The summary that was printed and written to ``cfg.output``.
    """
    import draccus
    from lerobot.rl import gym_manipulator

    from ..train_config import E2HiLTrainConfig

    train_cfg = draccus.parse(
        E2HiLTrainConfig, config_path=cfg.train_config, args=list(train_overrides or [])
    )
    processor = train_cfg.env.processor
    if cfg.success_source == "classifier" and (
        processor.reward_classifier is None or not processor.reward_classifier.pretrained_path
    ):
        raise ConfigError(
            "success_source='classifier' needs env.processor.reward_classifier.pretrained_path in "
            f"{cfg.train_config}; allowed values: set it, or use success_source='keys'"
        )
    if cfg.success_source == "keys" and processor.reward_classifier is not None:
        processor.reward_classifier.pretrained_path = None
    device = cfg.device or train_cfg.policy.device
    if hasattr(train_cfg.env, "require_robot"):
        train_cfg.env.require_robot()
    select_action = policy_action_fn(train_cfg, cfg.policy_path, device)
    env, teleop = gym_manipulator.make_robot_env(train_cfg.env)
    try:
        env_processor, action_processor = gym_manipulator.make_processors(env, teleop, train_cfg.env, device)
        results = run_episodes(
            env,
            env_processor,
            action_processor,
            select_action,
            cfg.n_episodes,
            fps=train_cfg.env.fps,
            max_episode_steps=cfg.max_episode_steps,
        )
    finally:
        if teleop is not None and teleop.is_connected:
            teleop.disconnect()
        env.close()
    summary = summarize(results, cfg.success_source, cfg.policy_path)
    path = write_summary(summary, cfg.output)
    print(
        f"Success rate: {summary.success_rate:.1%} ({summary.successes}/{summary.n_episodes}), "
        f"intervention rate {summary.intervention_rate:.1%}. Summary: {path}"
    )
    return summary


#: Command-line prefixes forwarded to the train config rather than to :class:`SO101EvalConfig`.
TRAIN_OVERRIDE_PREFIXES = ("--env.", "--policy.")


def split_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split command-line arguments into the evaluation's own and the train config overrides.

    Args:
        argv: Arguments without the program name.

    Returns:
        ``(eval_args, train_overrides)``: ``--env.*`` / ``--policy.*`` arguments go to the train config.
    """
    own = [a for a in argv if not a.startswith(TRAIN_OVERRIDE_PREFIXES)]
    overrides = [a for a in argv if a.startswith(TRAIN_OVERRIDE_PREFIXES)]
    return own, overrides


def main(argv: list[str] | None = None) -> None:
    """CLI entry point.

    ``--env.*`` and ``--policy.*`` arguments override the train config (e.g. the simulated device
    types for a dry run); the others fill :class:`SO101EvalConfig`.

    Returns nothing (a console script's return value becomes its exit status): the summary is
    printed and written to ``--output``. A bad argument ends the process with one
    ``error: <field and allowed values>`` line and exit status 2.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).
    """
    import sys

    import draccus

    logging.basicConfig(level=logging.INFO)
    own, overrides = split_args(sys.argv[1:] if argv is None else list(argv))
    try:
        evaluate(draccus.parse(SO101EvalConfig, args=own, exit_on_error=False), overrides)
    except Exception as err:
        exit_on_setup_error(err, None, SO101EvalConfig, own)


if __name__ == "__main__":
    main()
