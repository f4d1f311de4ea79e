"""Synchronous single-process HIL training for benchmarks, built from LeRobot's own pieces.

One loop alternates acting and learning, with the classes the distributed learner and actor use:

* acting is LeRobot's actor step through :mod:`..rollout`: ``make_robot_env`` (our ``e2hil_sim``
  env with the scripted teacher, randomised cube), ``make_processors``, the policy
  pre/post-processors, ``select_action`` and ``step_env_and_process_transition``; transitions
  are built as the actor builds them (:func:`~..rollout.learner_transition`) and handed over at the end of each episode through the actor's
  ``push_transitions_to_transport_queue`` and the learner's ``process_transitions`` (so every
  transition goes to the online ``ReplayBuffer`` and each intervention also to the offline
  buffer, exactly as in the learner);
* learning is LeRobot's ``RLTrainer`` over an ``OnlineOfflineMixer``, the algorithm built by
  ``make_algorithm`` (``sac`` or ``e2hil``) with its own ``configure_data_iterator``. The only
  change to the trainer: batches are sampled in the calling thread (``async_prefetch=False``)
  so that a seed fixes the run;
* ``updates_per_env_step`` ``update()`` calls per env step once ``learning_starts`` online
  transitions are stored (fractional ratios accumulate).

Differences from the distributed path, all about timing: the actor acts with the learner's
current weights (no push period), and no update runs while the env steps.
"""

from __future__ import annotations

import json
import math
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import rollout
from ..algorithm.fast_update import uses_fast_update
from .config import RunConfig, load_pipeline_config
from .probe import ActorStepProbe, ProbeSettings

RESULT_FILE = "result.json"
SAMPLES_FILE = "samples.npz"
EVAL_SEED_OFFSET = 100_000
PROBE_SEED_OFFSET = 7_919


class RecordingIterator:
    """Preprocesses each batch as LeRobot's trainer does and remembers the last one (``last``)."""

    def __init__(self, raw: Iterator[Any], preprocessor: Any | None):
        self.raw = raw
        self.preprocessor = preprocessor
        self.last: Any = None

    def __iter__(self) -> RecordingIterator:
        return self

    def __next__(self) -> Any:
        from lerobot.rl.trainer import preprocess_rl_batch

        batch = next(self.raw)
        if self.preprocessor is not None:
            batch = preprocess_rl_batch(self.preprocessor, batch)
        self.last = batch
        return batch


def make_bench_trainer(algorithm: Any, data_mixer: Any, batch_size: int, preprocessor: Any) -> Any:
    """LeRobot's ``RLTrainer`` whose data iterator samples in the calling thread and records batches."""
    from lerobot.rl.trainer import RLTrainer

    class BenchRLTrainer(RLTrainer):
        def _build_data_iterator(self) -> RecordingIterator:
            raw = self.algorithm.configure_data_iterator(
                data_mixer=self.data_mixer, batch_size=self.batch_size, async_prefetch=False
            )
            self.recorder = RecordingIterator(raw, self._preprocessor)
            return self.recorder

    trainer = BenchRLTrainer(algorithm, data_mixer, batch_size, preprocessor=preprocessor)
    trainer.recorder = RecordingIterator(iter(()), None)
    return trainer


class _BatchSource:
    """Gives the probe the trainer's current recorder (the trainer builds it lazily)."""

    def __init__(self, trainer: Any):
        self.trainer = trainer

    @property
    def last(self) -> Any:
        return self.trainer.recorder.last


class SyncTrainer:
    """Build the pieces of one run (:meth:`build`) and train (:meth:`run`).

    Args:
        run: What to run.
        root: Directory that a relative config path is resolved against.
        progress: Show a tqdm bar over env steps.
        log: Where progress lines go (evaluations, the end-of-run summary).
    """

    def __init__(
        self,
        run: RunConfig,
        root: Path | None = None,
        progress: bool = False,
        log: Callable[[str], None] = print,
    ):
        self.run_cfg = run
        self.root = root
        self.progress = progress
        self.log = log

    # --- construction -----------------------------------------------------------------------

    def build(self) -> None:
        """Seed everything and build env, processors, policy, algorithm, buffers and trainer."""
        from lerobot.policies import make_policy, make_pre_post_processors
        from lerobot.rl.algorithms.factory import make_algorithm
        from lerobot.rl.buffer import ReplayBuffer
        from lerobot.rl.data_sources import OnlineOfflineMixer
        from lerobot.rl.gym_manipulator import make_processors, make_robot_env
        from lerobot.rl.learner import initialize_replay_buffer
        from lerobot.utils.random_utils import set_seed

        from ..launcher.hooks import INTERVENTION_REPO_ID
        from ..sim.env import register_gym_id

        run = self.run_cfg
        torch.set_num_threads(run.threads)
        set_seed(run.seed)
        cfg = load_pipeline_config(run, self.root)
        self.cfg = cfg
        self.device = str(cfg.policy.device)
        register_gym_id(cfg.env)
        self.env, teleop = make_robot_env(cfg.env)
        self.env_processor, self.action_processor = make_processors(self.env, teleop, cfg.env, self.device)
        self.policy = make_policy(cfg=cfg.policy, env_cfg=cfg.env)
        self.policy.train()
        self.algorithm = make_algorithm(cfg=cfg.algorithm, policy=self.policy)
        self.preprocessor, self.postprocessor = make_pre_post_processors(
            policy_cfg=cfg.policy, dataset_stats=cfg.policy.dataset_stats
        )
        self.online_buffer = initialize_replay_buffer(cfg, self.device, str(cfg.policy.storage_device))
        # The sim learner's intervention buffer (launcher.hooks.use_intervention_buffer), by the same
        # rule; every intervention transition is added to it.
        self.offline_buffer = None
        if rollout.offline_buffer_wanted(cfg.env):
            self.offline_buffer = ReplayBuffer(
                capacity=cfg.policy.offline_buffer_capacity,
                device=self.device,
                state_keys=cfg.policy.input_features.keys(),
                storage_device=str(cfg.policy.storage_device),
                optimize_memory=True,
            )
        self.dataset_repo_id = INTERVENTION_REPO_ID if self.offline_buffer is not None else None
        self.mixer = OnlineOfflineMixer(
            online_buffer=self.online_buffer,
            offline_buffer=self.offline_buffer,
            online_ratio=cfg.online_ratio,
        )
        self.trainer = make_bench_trainer(self.algorithm, self.mixer, cfg.batch_size, self.preprocessor)
        self.probe = None
        if run.probe_every > 0:
            algo_cfg = cfg.algorithm
            settings = ProbeSettings(
                every=run.probe_every,
                entropy_samples=run.entropy_samples,
                num_action_samples=getattr(algo_cfg, "num_action_samples", 8),
                seed=run.seed + PROBE_SEED_OFFSET,
            )
            self.probe = ActorStepProbe(self.algorithm, _BatchSource(self.trainer), settings)
        self.learning_starts = (
            run.learning_starts if run.learning_starts is not None else cfg.policy.online_step_before_learning
        )
        self.transport: queue.Queue = queue.Queue()
        self.shutdown = threading.Event()
        self._eval_env: Any = None

    # --- acting ---------------------------------------------------------------------------

    def _select_action(self, transition: dict) -> tuple[dict, torch.Tensor]:
        from lerobot.processor import TransitionKey

        features = self.cfg.policy.input_features
        observation = rollout.policy_observation(transition[TransitionKey.OBSERVATION], features)
        self.policy.eval()
        action = rollout.select_action(
            self.policy, self.preprocessor, self.postprocessor, observation, features
        )
        return observation, action

    def _env_step(self, transition: dict) -> tuple[dict, Any, bool, bool]:
        """One actor step; returns (next transition, transition for the learner, intervened, success)."""
        observation, action = self._select_action(transition)
        new = rollout.step(self.env, transition, action, self.env_processor, self.action_processor)
        learner_transition = rollout.learner_transition(observation, new, self.cfg.policy.input_features)
        return new, learner_transition, rollout.step_intervened(new), rollout.step_succeeded(new)

    def _hand_over(self, transitions: list) -> None:
        """The actor's push at the end of an episode and the learner's ingestion of it."""
        from lerobot.rl.actor import push_transitions_to_transport_queue
        from lerobot.rl.learner import process_transitions

        if not transitions:
            return
        push_transitions_to_transport_queue(transitions=transitions, transitions_queue=self.transport)
        process_transitions(
            transition_queue=self.transport,
            replay_buffer=self.online_buffer,
            offline_replay_buffer=self.offline_buffer,
            dataset_repo_id=self.dataset_repo_id,
            shutdown_event=self.shutdown,
        )

    # --- evaluation -----------------------------------------------------------------------

    def evaluate(self, episodes: int) -> float:
        """Teacher-free success rate over ``episodes`` on a fixed set of cube positions.

        With ``env.cube_positions``, the episodes visit the listed positions in turn (balanced), and
        the success per position is kept in ``last_eval_by_position``.

        The same env stack with the teacher switched off (``teacher.mode="off"``), LeRobot's
        processors and the actor's inference path. The cube positions and the policy's action
        noise come from ``seed + 100000``; the training run's random state is restored after.
        """
        from lerobot.processor import TransitionKey
        from lerobot.utils.random_utils import seeded_context

        from ..sim.env import POSITION_INFO_KEY, find_task_variant
        from ..sim.evaluate import teacher_free_env

        if self._eval_env is None:
            self._eval_env = teacher_free_env(self.cfg.env, self.device)
        env, env_processor, action_processor = self._eval_env
        variant = find_task_variant(env)
        if variant is not None:  # listed cube positions: each evaluation visits them in turn
            variant.cycle = True
            variant.restart_cycle()
        self.last_eval_by_position: dict[str, list[int]] = {}

        def by_position(result: rollout.EpisodeResult, last: dict) -> None:
            position = last[TransitionKey.INFO].get(POSITION_INFO_KEY)
            if position is not None:
                self.last_eval_by_position.setdefault(str(position), []).append(int(result.success))

        features = self.cfg.policy.input_features
        act = rollout.make_act(self.policy, self.preprocessor, self.postprocessor, features)
        self.policy.eval()
        with seeded_context(self.run_cfg.seed + EVAL_SEED_OFFSET):
            results = rollout.evaluate(
                env, env_processor, action_processor, act, episodes, on_episode_end=by_position
            )
        return rollout.success_rate(results)

    # --- the loop -------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Train for ``env_steps`` and return the run's record (see :func:`save_result`)."""
        from lerobot.processor import TransitionKey
        from tqdm import tqdm

        from ..sim.env import POSITION_INFO_KEY

        run = self.run_cfg
        if not hasattr(self, "trainer"):
            self.build()
        cfg = self.cfg
        actor_lr = float(cfg.algorithm.actor_lr)
        teacher = cfg.env.teacher
        demo_episodes = teacher.demo_episodes if teacher.mode != "off" else 0
        timing = defaultdict(float)
        episodes: list[list] = []
        # cube position index (env.cube_positions) of each episode; empty without listed positions
        episode_positions: list[int] = []
        evals: list[dict[str, Any]] = []
        train_log: list[dict[str, float]] = []
        sums: dict[str, float] = defaultdict(float)
        counts: dict[str, int] = defaultdict(int)
        pending: list = []
        intervention_steps = 0
        ep_length = ep_interventions = 0
        ep_success = False
        update_credit = 0.0
        start = time.perf_counter()

        t0 = time.perf_counter()
        transition = rollout.reset(self.env, self.env_processor, self.action_processor)
        timing["env"] += time.perf_counter() - t0
        bar = tqdm(total=run.env_steps, disable=not self.progress, desc=run.name, mininterval=2.0)
        for step in range(1, run.env_steps + 1):
            t0 = time.perf_counter()
            transition, learner_transition, intervened, success = self._env_step(transition)
            pending.append(learner_transition)
            ep_length += 1
            ep_interventions += intervened
            intervention_steps += intervened
            ep_success = ep_success or success
            if rollout.episode_ended(transition):
                self._hand_over(pending)
                pending = []
                episodes.append(
                    [step, ep_length, ep_interventions, int(ep_success), int(len(episodes) < demo_episodes)]
                )
                position = transition[TransitionKey.INFO].get(POSITION_INFO_KEY)
                if position is not None:
                    episode_positions.append(int(position))
                ep_length = ep_interventions = 0
                ep_success = False
                transition = rollout.reset(self.env, self.env_processor, self.action_processor)
            timing["env"] += time.perf_counter() - t0

            if len(self.online_buffer) >= self.learning_starts:
                update_credit += run.updates_per_env_step
                while update_credit >= 1.0:
                    update_credit -= 1.0
                    self._update(step, actor_lr, timing, sums, counts, train_log)

            if run.eval_every > 0 and step % run.eval_every == 0 and step < run.env_steps:
                t0 = time.perf_counter()
                success_rate = self.evaluate(run.eval_episodes)
                timing["eval"] += time.perf_counter() - t0
                evals.append(
                    {
                        "env_step": step,
                        "success": success_rate,
                        "episodes": run.eval_episodes,
                        **self._by_position(),
                    }
                )
                self.log(
                    f"[{run.name}] env step {step}/{run.env_steps}: teacher-free success "
                    f"{success_rate:.2f} ({run.eval_episodes} ep.), intervention rate so far "
                    f"{intervention_steps / step:.3f}, updates {self.algorithm.optimization_step} | "
                    f"{step / max(timing['env'], 1e-9):.1f} env steps/s, "
                    f"{self.algorithm.optimization_step / max(timing['update'], 1e-9):.1f} updates/s, "
                    f"{time.perf_counter() - start:.0f} s"
                )
            if step % 100 == 0:
                bar.update(100)
                bar.set_postfix(
                    episodes=len(episodes),
                    updates=self.algorithm.optimization_step,
                    interv=f"{intervention_steps / step:.2f}",
                )
        bar.close()
        t0 = time.perf_counter()
        final_success = self.evaluate(run.final_eval_episodes)
        timing["eval"] += time.perf_counter() - t0
        evals.append(
            {
                "env_step": run.env_steps,
                "success": final_success,
                "episodes": run.final_eval_episodes,
                **self._by_position(),
            }
        )
        timing["wall"] = time.perf_counter() - start
        updates = int(self.algorithm.optimization_step)
        result = {
            "name": run.name,
            "config": run.to_dict(),
            "summary": {
                "final_success": final_success,
                "env_steps": run.env_steps,
                "updates": updates,
                "episodes": len(episodes),
                "intervention_steps": int(intervention_steps),
                "intervention_rate": intervention_steps / run.env_steps,
                "replay_size": len(self.online_buffer),
                "offline_size": len(self.offline_buffer) if self.offline_buffer is not None else 0,
            },
            "timing": {
                "wall_s": timing["wall"],
                "env_s": timing["env"],
                "update_s": timing["update"],
                "probe_s": timing["probe"],
                "eval_s": timing["eval"],
                "env_steps_per_s": run.env_steps / max(timing["env"], 1e-9),
                "updates_per_s": updates / timing["update"] if timing["update"] > 0 else float("nan"),
                # same results either way (fast_update.py); --algorithm.fast_update=false turns it off
                "fast_update": uses_fast_update(self.algorithm),
            },
            "episodes": episodes,
            "episode_positions": episode_positions,
            "evals": evals,
            "train_log": train_log,
            "probes": self.probe.records.steps if self.probe is not None else [],
        }
        self.log(summary_line(result))
        return result

    def _by_position(self) -> dict[str, Any]:
        """The last evaluation's success per cube position (``{"by_position": {index: rate}}``), if listed."""
        outcomes = getattr(self, "last_eval_by_position", {})
        if not outcomes:
            return {}
        return {"by_position": {k: sum(v) / len(v) for k, v in sorted(outcomes.items())}}

    def _update(
        self,
        step: int,
        actor_lr: float,
        timing: dict[str, float],
        sums: dict[str, float],
        counts: dict[str, int],
        train_log: list[dict[str, float]],
    ) -> None:
        self.policy.train()
        t0 = time.perf_counter()
        stats = self.trainer.training_step()
        timing["update"] += time.perf_counter() - t0
        opt_step = int(self.algorithm.optimization_step)
        if self.probe is not None:
            t0 = time.perf_counter()
            self.probe.after_update(opt_step, step, actor_lr)
            elapsed = time.perf_counter() - t0
            timing["probe"] += elapsed
        for key, value in stats.to_log_dict().items():
            value = float(value)
            if math.isfinite(value):
                sums[key] += value
                counts[key] += 1
        if opt_step % self.run_cfg.log_every == 0:
            record = {"opt_step": opt_step, "env_step": step}
            record.update({key: sums[key] / counts[key] for key in sums})
            train_log.append(record)
            sums.clear()
            counts.clear()

    def close(self) -> None:
        """Close the envs."""
        # build() may have stopped before the envs (a bad config): close what exists
        for env in (getattr(self, "env", None), (getattr(self, "_eval_env", None) or (None,))[0]):
            if env is not None:
                env.close()


def summary_line(result: dict[str, Any]) -> str:
    """One line: final success, interventions, throughput."""
    s, t = result["summary"], result["timing"]
    return (
        f"[{result['name']}] done: teacher-free success {s['final_success']:.2f}, intervention rate "
        f"{s['intervention_rate']:.3f} ({s['intervention_steps']} steps), {s['env_steps']} env steps, "
        f"{s['updates']} updates | {t['env_steps_per_s']:.1f} env steps/s, {t['updates_per_s']:.1f} updates/s, "
        f"wall {t['wall_s']:.0f} s (env {t['env_s']:.0f}, updates {t['update_s']:.0f}, "
        f"probe {t['probe_s']:.0f}, eval {t['eval_s']:.0f})"
    )


def train_run(
    run: RunConfig,
    out_dir: Path | None = None,
    root: Path | None = None,
    progress: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Build, train, save (if ``out_dir``) and return the result of one run."""
    trainer = SyncTrainer(run, root=root, progress=progress, log=log)
    try:
        trainer.build()
        result = trainer.run()
        if out_dir is not None:
            samples = trainer.probe.records.sample_arrays() if trainer.probe is not None else {}
            save_result(result, samples, Path(out_dir))
    finally:
        trainer.close()
    return result


def save_result(result: dict[str, Any], samples: dict[str, np.ndarray], out_dir: Path) -> None:
    """Write ``result.json`` and the probe's per-sample arrays (``samples.npz``) to ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if samples:
        np.savez_compressed(out_dir / SAMPLES_FILE, **samples)
    tmp = out_dir / (RESULT_FILE + ".tmp")
    tmp.write_text(json.dumps(result, indent=1, default=_json_default))
    tmp.replace(out_dir / RESULT_FILE)


def load_result(out_dir: Path) -> dict[str, Any] | None:
    """The saved result of a run directory, or None."""
    path = Path(out_dir) / RESULT_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text())


def load_samples(out_dir: Path) -> dict[str, np.ndarray]:
    """The probe's per-sample arrays of a run directory (empty if none)."""
    path = Path(out_dir) / SAMPLES_FILE
    if not path.exists():
        return {}
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)
