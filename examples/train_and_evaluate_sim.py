"""Train E2HiL briefly in the headless sim, save the checkpoint, and evaluate it teacher-free.

Training is the benchmark's synchronous trainer (one process: LeRobot's env, processors, policy,
replay buffers and ``RLTrainer``, with the scripted teacher demonstrating and taking over). The
checkpoint is saved in the learner's ``pretrained_model`` layout, then loaded back and rolled out
without the teacher through ``lerobot_policy_e2hil.rollout``, one line per episode. A few hundred
env steps take well under a minute on CPU; the policy learns the task only with many more (the
sim docs: ``e2hil-sim`` and ``e2hil-bench``).

    python examples/train_and_evaluate_sim.py --env-steps 300 --episodes 3
    python examples/train_and_evaluate_sim.py --method sac --output outputs/examples/sac_sim
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "HIL-SERL" / "train_gym_hil_env_SIM.json"


def positive(text: str) -> int:
    """An argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is invalid; allowed values: >= 1")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", default="e2hil", choices=("e2hil", "sac"), help="default e2hil")
    parser.add_argument("--env-steps", type=positive, default=300, help="env steps of training (default 300)")
    parser.add_argument(
        "--episodes", type=positive, default=3, help="teacher-free evaluation episodes (default 3)"
    )
    parser.add_argument(
        "--episode-steps", type=positive, default=40, help="env steps per episode (default 40)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="the sim's training JSON")
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("outputs/examples/train_and_evaluate_sim"),
        help="checkpoint folder",
    )
    return parser.parse_args(argv)


def train(args: argparse.Namespace) -> tuple[Path, object]:
    """Train for ``--env-steps`` and save ``<output>/pretrained_model``; return it and the env config."""
    from lerobot_policy_e2hil.bench.config import RunConfig
    from lerobot_policy_e2hil.bench.trainer import SyncTrainer

    run = RunConfig(
        method=args.method,
        seed=args.seed,
        env_steps=args.env_steps,
        updates_per_env_step=0.5,
        batch_size=64,
        learning_starts=min(100, args.env_steps),
        eval_every=0,
        final_eval_episodes=1,
        probe_every=0,
        config_path=str(args.config),
        overrides=(f"--env.max_episode_steps={args.episode_steps}", "--env.teacher.demo_episodes=3"),
    )
    trainer = SyncTrainer(run, log=print)
    try:
        trainer.build()
        trainer.run()
        pretrained = args.output / "pretrained_model"
        trainer.policy.save_pretrained(pretrained)
        trainer.preprocessor.save_pretrained(pretrained)
        trainer.postprocessor.save_pretrained(pretrained)
    finally:
        trainer.close()
    print(f"checkpoint: {pretrained}")
    return pretrained, trainer.cfg.env


def evaluate(pretrained: Path, env_cfg, episodes: int) -> float:
    """Roll the saved policy out for ``episodes`` teacher-free episodes; print one line each."""
    from lerobot_policy_e2hil import rollout
    from lerobot_policy_e2hil.sim.evaluate import load_checkpoint, teacher_free_env

    policy, preprocessor, postprocessor, policy_cfg = load_checkpoint(pretrained, env_cfg)
    act = rollout.make_act(policy, preprocessor, postprocessor, policy_cfg.input_features)
    env, env_processor, action_processor = teacher_free_env(env_cfg, str(policy_cfg.device))

    def report(result: rollout.EpisodeResult, last: dict) -> None:
        outcome = "success" if result.success else "failure"
        print(
            f"episode {result.episode}: {outcome} in {result.steps} steps, reward {result.total_reward:.2f}"
        )

    try:
        results = rollout.evaluate(env, env_processor, action_processor, act, episodes, on_episode_end=report)
    finally:
        env.close()
    rate = rollout.success_rate(results)
    print(f"teacher-free success: {rate:.2f} over {episodes} episodes")
    return rate


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("MUJOCO_GL", "egl")  # headless MuJoCo
    from lerobot_policy_e2hil.errors import ConfigError

    try:
        pretrained, env_cfg = train(args)
    except ConfigError as err:  # a bad config path or value: one line, not a traceback
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    evaluate(pretrained, env_cfg, args.episodes)


if __name__ == "__main__":
    main()
