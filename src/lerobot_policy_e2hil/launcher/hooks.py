"""Narrow hooks into LeRobot's learner and actor modules for headless sim runs.

LeRobot's learner logs only to wandb and its actor paces itself to ``env.fps``. Rather than
copy either script, the sim entries (:mod:`.learner`, :mod:`.actor`) hook a few functions that
the scripts look up at call time (rows of :mod:`..lerobot_layer.patches`, the ``launcher.*`` layers):

* ``lerobot.rl.learner.RLTrainer.training_step`` -> averages every
  ``TrainingStats.to_log_dict()``, ``e2hil/*`` diagnostics included, over ``log_freq`` steps and
  appends them to ``metrics.jsonl``;
* ``lerobot.rl.learner.process_interaction_message`` -> also appends one record per finished episode;
* ``lerobot.rl.actor.precise_sleep`` -> no pacing (or ``env.actor_max_hz``) unless ``env.realtime``;
* ``lerobot.rl.actor.act_with_policy`` -> once the step budget is spent, lets the transition
  queues drain and then sets the shutdown event, so the actor exits by itself; it also adds the
  episode's cube position index (``env.cube_positions``, from the env's ``info``) and its success
  (:func:`..rollout.step_succeeded` on any of its steps, the rollout's one success definition),
  both seen through ``lerobot.rl.actor.step_env_and_process_transition``, to each interaction
  message, so the episode record has a ``position`` and a ``success``;
* with ``env.updates_per_env_step`` set, :mod:`.lockstep` hooks the learner's
  ``push_actor_policy_to_queue`` and ``process_transitions`` and the actor's
  ``update_policy_parameters`` to hold that many updates per env step.

They build on the fault handling of :mod:`..faults` (its hooks are the inner layers of the same
rows): the stats already carry its counters, episode lengths and env steps come from its run
counter (right across learner restarts and replacement actors), and its events (transitions
received and rejected, checkpoints, resumes) are written to ``metrics.jsonl`` too.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..lerobot_layer import patches
from .lockstep import install_actor_lockstep, install_learner_lockstep

_ACTOR = "lerobot.rl.actor"
METRICS_FILE = "metrics.jsonl"
# Key of the cube position index in the actor's interaction message (absent without env.cube_positions)
POSITION_MESSAGE_KEY = "Cube position index"
# Key of the episode's success in the actor's interaction message (rollout.step_succeeded on any step)
SUCCESS_MESSAGE_KEY = "Episode success"
RUN_START_ENV = "E2HIL_RUN_START"
# What the sim learner logs once its final checkpoint is written (the launcher looks for it)
FINAL_CHECKPOINT = "[LEARNER] final checkpoint: "


class MetricsSink:
    """Append-only JSONL file of metric records, safe to call from several threads.

    Args:
        path: The file; its parent is created on the first write.
        start_time: Wall-clock origin of the ``wall_s`` field.
    """

    def __init__(self, path: Path, start_time: float | None = None):
        self.path = Path(path)
        self.start_time = time.time() if start_time is None else start_time
        self._lock = threading.Lock()

    def write(self, kind: str, **fields: Any) -> None:
        """Append one record ``{"kind": kind, "wall_s": ..., **fields}``."""
        record = {"kind": kind, "wall_s": round(time.time() - self.start_time, 3), **fields}
        line = json.dumps(record, default=_to_builtin)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(line + "\n")


def _to_builtin(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


class _LearnerState:
    """What the learner hooks share: the sink and the logging period."""

    def __init__(self) -> None:
        self.sink: MetricsSink | None = None
        self.log_freq = 100


LEARNER_STATE = _LearnerState()


def install_learner_hooks(cfg: Any) -> None:
    """Make LeRobot's learner write ``<output_dir>/metrics.jsonl``.

    The path is resolved at the first record, after ``train()`` has validated ``cfg`` (which
    fills in ``output_dir``).

    Args:
        cfg: The learner's ``TrainRLServerPipelineConfig`` (the object ``train()`` receives).
    """
    from ..learner.hooks import LEARNER

    patches.install("learner")
    LEARNER_STATE.log_freq = max(1, int(cfg.log_freq))
    start = float(os.environ.get(RUN_START_ENV, time.time()))

    def sink() -> MetricsSink:
        if LEARNER_STATE.sink is None:
            output_dir = LEARNER.cfg.output_dir if LEARNER.cfg is not None else cfg.output_dir
            LEARNER_STATE.sink = MetricsSink(Path(output_dir) / METRICS_FILE, start_time=start)
        return LEARNER_STATE.sink

    def record_transitions(accepted: int, rejected: int) -> None:
        validator = LEARNER.validator
        sink().write("transitions", batch=accepted, received=validator.accepted, rejected=rejected)

    LEARNER.validator.listeners.append(record_transitions)
    LEARNER.listeners.append(lambda kind, fields: sink().write(kind, **fields))
    patches.hook("lerobot.rl.learner.RLTrainer.training_step", "launcher.metrics", _recording_trainer(sink))
    patches.hook(
        "lerobot.rl.learner.process_interaction_message", "launcher.metrics", _recording_interactions(sink)
    )
    install_learner_lockstep(cfg)


def _recording_trainer(sink: Any) -> Any:
    """The hook of ``RLTrainer.training_step``: every ``log_freq`` optimisation steps, the mean stats."""
    from ..learner.hooks import LEARNER

    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)

    def training_step(call: patches.Call) -> Any:
        stats = call.proceed()
        trainer = call.arguments["self"]
        for key, value in stats.to_log_dict().items():
            value = float(value)
            if math.isfinite(value) and not key.startswith("faults/"):
                sums[key] += value
                counts[key] += 1
        step = int(trainer.algorithm.optimization_step)
        if step % LEARNER_STATE.log_freq == 0:
            means = {key: sums[key] / counts[key] for key in sums}
            mixer = trainer.data_mixer
            replay = len(mixer.online_buffer) if hasattr(mixer, "online_buffer") else None
            sink().write(
                "train",
                opt_step=step,
                env_step=LEARNER.counter.steps,
                replay_size=replay,
                transitions_received=LEARNER.validator.accepted,
                transitions_rejected=LEARNER.validator.rejected,
                transition_messages_rejected=LEARNER.validator.rejected_messages,
                **means,
            )
            sums.clear()
            counts.clear()
        return stats

    return training_step


def _recording_interactions(sink: Any) -> Any:
    """The hook of ``process_interaction_message``: one ``episode`` record per message."""
    from ..learner.hooks import LEARNER

    def process_interaction_message(call: patches.Call) -> Any:
        steps_before = LEARNER.counter.steps
        message = call.proceed()
        if message is None:  # did not decode; the fault handling counted it
            return None
        length = LEARNER.counter.steps - steps_before
        rate = float(message.get("Intervention rate", 0.0))
        reward = float(message.get("Episodic reward", 0.0))
        sink().write(
            "episode",
            episode=LEARNER.counter.episodes,
            env_step=LEARNER.counter.steps,
            length=length,
            reward=reward,
            success=episode_success(message),
            intervened=bool(message.get("Episode intervention", 0)),
            intervention_steps=int(round(rate * length)),
            intervention_rate=rate,
            policy_hz=message.get("Policy frequency [Hz]"),
            actor=message.get("Actor id"),
            actor_episode=message.get("Actor episodes"),
            actor_env_step=message.get("Actor env steps"),
            actor_transitions=message.get("Actor transitions"),
            **(
                {"position": message[POSITION_MESSAGE_KEY]}
                if isinstance(message.get(POSITION_MESSAGE_KEY), int)
                else {}
            ),
        )
        return message

    return process_interaction_message


def install_actor_hooks(cfg: Any) -> None:
    """No real-time pacing unless ``env.realtime``; exit by itself once the step budget is spent.

    Args:
        cfg: The actor's ``TrainRLServerPipelineConfig``.
    """
    patches.install("actor")
    if not getattr(cfg.env, "realtime", True):
        rate = _RateCap(getattr(cfg.env, "actor_max_hz", None))
        patches.hook(
            f"{_ACTOR}.precise_sleep", "launcher.pacing", lambda call: rate(call.arguments["seconds"])
        )
    else:
        patches.unhook(f"{_ACTOR}.precise_sleep", "launcher.pacing")

    episode = _EpisodeTracker()
    patches.hook(f"{_ACTOR}.step_env_and_process_transition", "launcher.position", episode.step)
    shutdown_events: list[Any] = [None]
    install_actor_lockstep(cfg, lambda: shutdown_events[0])

    def act_with_policy(call: patches.Call) -> None:
        shutdown_event = call.arguments["shutdown_event"]
        transitions_queue = call.arguments["transitions_queue"]
        interactions_queue = call.arguments["interactions_queue"]
        shutdown_events[0] = shutdown_event
        try:
            call.proceed(interactions_queue=_EpisodeTaggingQueue(interactions_queue, episode))
        finally:
            if not shutdown_event.is_set():
                logging.info("[ACTOR] Step budget spent; flushing queues before shutdown")
                _wait_until_empty((transitions_queue, interactions_queue, _Backlog()), timeout_s=30.0)
                time.sleep(1.0)
                shutdown_event.set()

    patches.hook(f"{_ACTOR}.act_with_policy", "launcher.budget", act_with_policy)


def episode_success(message: dict[str, Any]) -> bool:
    """Whether the episode of an interaction message succeeded, by the rollout's success definition.

    The sim actor puts :func:`..rollout.step_succeeded` over the episode's steps in the message
    (:data:`SUCCESS_MESSAGE_KEY`); from an actor without the sim hooks, the episodic reward's
    :func:`..rollout.reward_succeeded` stands in (the same for envs whose rewards are not negative).
    """
    from .. import rollout

    flag = message.get(SUCCESS_MESSAGE_KEY)
    if isinstance(flag, bool):
        return flag
    return rollout.reward_succeeded(message.get("Episodic reward", 0.0))


class _EpisodeTracker:
    """Hooks the actor's env step: the cube position index of the latest step, and the episode's success.

    ``success`` is :func:`..rollout.step_succeeded` on any step since the last :meth:`end_episode`.
    """

    def __init__(self) -> None:
        self.index: int | None = None
        self.success = False

    def step(self, call: patches.Call) -> Any:
        from lerobot.processor import TransitionKey

        from .. import rollout
        from ..sim.env import POSITION_INFO_KEY

        transition = call.proceed()
        index = (transition.get(TransitionKey.INFO) or {}).get(POSITION_INFO_KEY)
        self.index = None if index is None else int(index)
        self.success = rollout.step_succeeded(transition) or self.success
        return transition

    def end_episode(self) -> None:
        """Start counting the next episode's success."""
        self.success = False


class _EpisodeTaggingQueue:
    """The actor's interactions queue; ``put`` adds the episode's cube position and success to the message.

    The actor puts an episode's message after its last step and before the reset, so the
    tracker still holds that episode's index and success. Everything else goes to the wrapped queue.
    """

    def __init__(self, queue: Any, tracker: _EpisodeTracker):
        self._queue = queue
        self._tracker = tracker

    def put(self, data: Any, *args: Any, **kwargs: Any) -> None:
        from ..wire.messages import encode_message

        message = json.loads(data)  # the actor's own message, JSON (wire.messages)
        if self._tracker.index is not None:
            message[POSITION_MESSAGE_KEY] = self._tracker.index
        message[SUCCESS_MESSAGE_KEY] = self._tracker.success
        self._tracker.end_episode()
        self._queue.put(encode_message(message), *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queue, name)


class _RateCap:
    """What the actor's ``precise_sleep`` does in the sim: no real-time pacing, optionally a rate cap.

    The actor calls it once per env step with the time left to its ``env.fps`` period; that value
    is ignored. With ``max_hz`` set, it sleeps so that calls are at least ``1 / max_hz`` apart.
    """

    def __init__(self, max_hz: float | None):
        self.period = 1.0 / max_hz if max_hz else 0.0
        self.last = time.perf_counter()

    def __call__(self, seconds: float) -> None:
        if self.period > 0:
            remaining = self.period - (time.perf_counter() - self.last)
            if remaining > 0:
                time.sleep(remaining)
        self.last = time.perf_counter()


class _Backlog:
    """The messages the fault handling took back from broken streams, as a queue-like ``empty()``."""

    def empty(self) -> bool:
        from ..actor.hooks import ACTOR

        return ACTOR.backlog() == 0


def _wait_until_empty(queues: tuple, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if all(q.empty() for q in queues):
                return
        except (OSError, ValueError):
            return
        time.sleep(0.2)


INTERVENTION_REPO_ID = "local/e2hil_sim_interventions"


def use_intervention_buffer(cfg: Any) -> None:
    """Give a dataset-free sim run an empty intervention (offline) buffer, as HIL-SERL's RLPD mix.

    LeRobot 0.6.1's ``TrainPipelineConfig.validate`` dereferences ``cfg.dataset`` although the RL
    config declares it optional, and with a dataset the learner loads the offline buffer from it
    and adds every intervention transition to it. When ``cfg.dataset`` is None this puts a
    placeholder dataset config in (``repo_id`` :data:`INTERVENTION_REPO_ID`) and, in the learner,
    hooks ``initialize_offline_replay_buffer`` to start from an empty buffer instead of loading a
    dataset. The buffer is only created when the teacher gives demonstrations
    (:func:`..rollout.offline_buffer_wanted`, the benchmark trainer's rule too; every intervention
    transition is added to it); otherwise training is online-only.

    Call it before LeRobot validates ``cfg`` (in both the learner and the actor).

    Args:
        cfg: The ``TrainRLServerPipelineConfig`` about to be run.
    """
    point = "lerobot.rl.learner.initialize_offline_replay_buffer"
    if cfg.dataset is not None:
        patches.unhook(point, "launcher.intervention_buffer")
        return
    from lerobot.configs.default import DatasetConfig
    from lerobot.rl.buffer import ReplayBuffer

    cfg.dataset = DatasetConfig(repo_id=INTERVENTION_REPO_ID)
    from ..rollout import offline_buffer_wanted

    intervenes = offline_buffer_wanted(cfg.env)

    def initialize_offline_replay_buffer(call: patches.Call) -> Any:
        cfg = call.arguments["cfg"]
        if cfg.resume:
            return call.proceed()
        if not intervenes:
            return None
        return ReplayBuffer(
            capacity=cfg.policy.offline_buffer_capacity,
            device=call.arguments["device"],
            state_keys=cfg.policy.input_features.keys(),
            storage_device=call.arguments["storage_device"],
            optimize_memory=True,
        )

    patches.hook(point, "launcher.intervention_buffer", initialize_offline_replay_buffer)


def prepare_process(cfg: Any) -> None:
    """Set-up shared by the sim learner and actor processes, before LeRobot's CLI runs.

    One torch thread: the two processes share the cores, and with two OpenMP threads each,
    spin-waiting made a learner update ~20x slower on 2 cores (one thread runs it about as
    fast alone; the actor infers one observation at a time). Then the intervention buffer.
    Started by ``e2hil-sim``, the process stops once when the launcher is gone (:mod:`.parent`).
    """
    import torch

    from .parent import stop_once_with_launcher

    stop_once_with_launcher()
    torch.set_num_threads(1)
    use_intervention_buffer(cfg)
