"""Actor-side env steps per second in sim, learner out of the loop.

Runs LeRobot's actor inner loop pieces (``make_robot_env``, ``make_processors``, policy
``select_action``, ``step_env_and_process_transition``) on the ``e2hil_sim`` env with the
scripted teacher, without gRPC and without a learner, so the figure is the actor's ceiling.
It measures gym-hil's own controller and our :mod:`lerobot_policy_e2hil.sim.opspace` side by
side, in alternating rounds, and prints the median of each and their ratio.

Usage: ``MUJOCO_GL=egl python benchmarks/bench_actor_throughput.py [--steps 1000] [--rounds 3]``
"""

import argparse
import statistics
import time

import draccus
import torch

import lerobot_policy_e2hil  # noqa: F401  (registers the e2hil_sim config type)
from bench_fast_update import positive_int


def steps_per_second(config: str, fast_controller: bool, steps: int) -> float:
    """Env steps per second of the actor loop over ``steps`` steps (set-up not timed)."""
    from lerobot.policies import make_policy, make_pre_post_processors
    from lerobot.processor import TransitionKey
    from lerobot.rl.gym_manipulator import (
        make_processors,
        make_robot_env,
        reset_and_build_transition,
        step_env_and_process_transition,
    )
    from lerobot.rl.train_rl import TrainRLServerPipelineConfig

    from lerobot_policy_e2hil.sim.env import register_gym_id

    args = [f"--env.fast_controller={str(fast_controller).lower()}"]
    cfg = draccus.parse(TrainRLServerPipelineConfig, config_path=config, args=args)
    register_gym_id(cfg.env)  # make_robot_env builds the sim by its gym id
    env, teleop = make_robot_env(cfg.env)
    env_processor, action_processor = make_processors(env, teleop, cfg.env, "cpu")
    policy = make_policy(cfg=cfg.policy, env_cfg=cfg.env).eval()
    preprocessor, _ = make_pre_post_processors(policy_cfg=cfg.policy, dataset_stats=cfg.policy.dataset_stats)
    transition = reset_and_build_transition(env, env_processor, action_processor)
    start = time.perf_counter()
    for _ in range(steps):
        obs = {
            k: v for k, v in transition[TransitionKey.OBSERVATION].items() if k in cfg.policy.input_features
        }
        with torch.inference_mode():
            action = policy.select_action(preprocessor.process_observation(obs))
        transition = step_env_and_process_transition(env, transition, action, env_processor, action_processor)
        if transition.get(TransitionKey.DONE) or transition.get(TransitionKey.TRUNCATED):
            transition = reset_and_build_transition(env, env_processor, action_processor)
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def main() -> None:
    """Measure and print env steps per second for both controllers."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=positive_int, default=1000, help="env steps per round")
    parser.add_argument("--rounds", type=positive_int, default=3)
    parser.add_argument("--config", default="HIL-SERL/train_gym_hil_env_SIM.json")
    parser.add_argument(
        "--threads", type=positive_int, default=1, help="torch threads (the sim actor uses 1)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    results: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.rounds):
        for fast in (False, True):
            results[fast].append(steps_per_second(args.config, fast, args.steps))
    gym_hil, ours = statistics.median(results[False]), statistics.median(results[True])
    print(f"torch threads {torch.get_num_threads()}, {args.rounds} rounds of {args.steps} env steps (median)")
    print(f"gym-hil opspace controller : {gym_hil:6.1f} env steps/s  {[round(v, 1) for v in results[False]]}")
    print(f"fast_controller (default)  : {ours:6.1f} env steps/s  {[round(v, 1) for v in results[True]]}")
    print(f"ratio fast / gym-hil       : {ours / gym_hil:.2f}")


if __name__ == "__main__":
    main()
