"""How a sim checkpoint fails without its teacher: sampled against mode success, and how it fails.

    python benchmarks/experiments/teacher_free_failures.py --checkpoint <run>/checkpoints/last/pretrained_model

Rolls the checkpoint out teacher-free on the launcher's evaluation env (``sim/evaluate.py``), once
with sampled actions (LeRobot's actor and the launcher's teacher-free success) and once with the
mode (``tanh`` of the mean, argmax gripper). For each failed sampled episode it records how far
the pinch point was from the cube centre when the gripper first closed, and whether the pinch
point went further from the cube than the teacher's ``drift_distance``, where the teacher would
have taken over during training. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from lerobot_policy_e2hil.launcher.train import load_config
from lerobot_policy_e2hil.rollout import evaluate, make_act
from lerobot_policy_e2hil.sim.evaluate import load_checkpoint, teacher_free_env
from lerobot_policy_e2hil.sim.teacher import gripper_closed, pinch_and_cube


def _rollouts(env, env_processor, action_processor, act, episodes: int, seed: int) -> list[dict]:
    """Per-episode success, length, distance at the first close and the largest distance."""
    scene = env.unwrapped
    steps: list[tuple[float, bool]] = []
    episodes_seen: list[dict] = []

    def observed_act(observation):
        tcp, cube = pinch_and_cube(scene)
        steps.append((float(np.linalg.norm(cube - tcp)), gripper_closed(scene)))
        return act(observation)

    def end(result, _last) -> None:
        closes = [distance for distance, closed in steps if closed]
        episodes_seen.append(
            {
                "success": bool(result.success),
                "steps": len(steps),
                "distance_at_first_close": round(closes[0], 4) if closes else None,
                "max_distance": round(max(distance for distance, _ in steps), 4),
            }
        )
        steps.clear()

    np.random.seed(seed)
    torch.manual_seed(seed)
    evaluate(env, env_processor, action_processor, observed_act, episodes, on_episode_end=end)
    return episodes_seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--checkpoint", type=Path, required=True, help="a checkpoint's pretrained_model folder"
    )
    parser.add_argument("--config_path", default="HIL-SERL/train_gym_hil_env_SIM.json", help="the run's JSON")
    parser.add_argument("--episodes", type=int, default=20, help="teacher-free episodes per action mode")
    parser.add_argument("--seed", type=int, default=10_000, help="seed of the env, numpy and torch")
    args = parser.parse_args()
    if args.episodes < 1:
        parser.error(f"--episodes={args.episodes} is invalid; allowed values: >= 1")

    cfg = load_config(["--config_path", args.config_path])
    policy, preprocessor, postprocessor, policy_cfg = load_checkpoint(args.checkpoint, cfg.env)
    env, env_processor, action_processor = teacher_free_env(cfg.env, str(policy_cfg.device), args.seed)
    drift = cfg.env.teacher.drift_distance
    report: dict = {"checkpoint": str(args.checkpoint), "episodes": args.episodes}
    try:
        for mode, deterministic in (("sampled", False), ("mode", True)):
            act = make_act(policy, preprocessor, postprocessor, policy_cfg.input_features, deterministic)
            rollouts = _rollouts(env, env_processor, action_processor, act, args.episodes, args.seed)
            failed = [r for r in rollouts if not r["success"]]
            report[mode] = {
                "success": sum(r["success"] for r in rollouts) / len(rollouts),
                "failed": len(failed),
                "failed_closed_the_gripper": sum(r["distance_at_first_close"] is not None for r in failed),
                "failed_beyond_drift_distance": sum(r["max_distance"] > drift for r in failed),
                "failed_distance_at_first_close": [r["distance_at_first_close"] for r in failed],
                "successful_episode_steps": [r["steps"] for r in rollouts if r["success"]],
                "successful_distance_at_first_close": [
                    r["distance_at_first_close"] for r in rollouts if r["success"]
                ],
            }
    finally:
        env.close()
    report["drift_distance"] = drift
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
