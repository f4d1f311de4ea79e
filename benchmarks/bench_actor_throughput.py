"""Actor-side env steps per second in sim, learner out of the loop.

Runs LeRobot's actor inner loop pieces (``make_robot_env``, ``make_processors``, policy
``select_action``, ``step_env_and_process_transition``) on the ``e2hil_sim`` env with the
scripted teacher, without gRPC and without a learner, so the figure is the actor's ceiling.

Usage: ``MUJOCO_GL=egl python benchmarks/bench_actor_throughput.py [--steps 2000] [--config PATH]``
"""

import argparse
import time

import draccus
import torch

import lerobot_policy_e2hil  # noqa: F401  (registers e2hil_sim)


def main() -> None:
    """Measure and print env steps per second."""
    from lerobot.policies import make_policy, make_pre_post_processors
    from lerobot.processor import TransitionKey
    from lerobot.rl.gym_manipulator import (
        make_processors,
        make_robot_env,
        reset_and_build_transition,
        step_env_and_process_transition,
    )
    from lerobot.rl.train_rl import TrainRLServerPipelineConfig

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--config", default="HIL-SERL/train_gym_hil_env_SIM.json")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the sim actor uses 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    cfg = draccus.parse(TrainRLServerPipelineConfig, config_path=args.config, args=[])
    env, teleop = make_robot_env(cfg.env)
    env_processor, action_processor = make_processors(env, teleop, cfg.env, "cpu")
    policy = make_policy(cfg=cfg.policy, env_cfg=cfg.env).eval()
    preprocessor, _ = make_pre_post_processors(policy_cfg=cfg.policy, dataset_stats=cfg.policy.dataset_stats)
    transition = reset_and_build_transition(env, env_processor, action_processor)
    episodes = 0
    start = time.perf_counter()
    for _ in range(args.steps):
        obs = {
            k: v for k, v in transition[TransitionKey.OBSERVATION].items() if k in cfg.policy.input_features
        }
        with torch.inference_mode():
            action = policy.select_action(preprocessor.process_observation(obs))
        transition = step_env_and_process_transition(env, transition, action, env_processor, action_processor)
        if transition.get(TransitionKey.DONE) or transition.get(TransitionKey.TRUNCATED):
            episodes += 1
            transition = reset_and_build_transition(env, env_processor, action_processor)
    elapsed = time.perf_counter() - start
    env.close()
    print(
        f"{args.steps} env steps, {episodes} episodes in {elapsed:.1f} s: "
        f"{args.steps / elapsed:.1f} env steps/s (torch threads {torch.get_num_threads()})"
    )


if __name__ == "__main__":
    main()
