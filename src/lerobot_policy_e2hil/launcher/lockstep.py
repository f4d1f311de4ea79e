"""A fixed number of learner updates per env step between LeRobot's learner and actor.

LeRobot's learner updates as fast as its process runs and its actor acts as fast as its own, so
the updates per env step of a run (the replay ratio) is set by the two processes' speeds: 0.16
in the first 5k env steps of a loaded 2-core run and 0.4-0.5 over a whole one, where the
synchronous trainer, which fixes it, runs 0.6 from the first step (docs/history/sim_reliability.md). With
``env.updates_per_env_step = r`` both sides hold it at ``r``:

* the learner does at most ``floor(r * n)`` updates once it has received ``n`` transitions
  (past ``policy.online_step_before_learning``) and then waits for data; whenever it has nothing
  left to do it pushes its weights with its progress (:data:`PROGRESS_KEY`: transitions received
  and updates done, since it started), and only then: LeRobot's periodic pushes are skipped
  while it trains, so the weights an episode acts with are those its data allowed, and LeRobot's
  ``policy_parameters_push_frequency`` is only the parameter stream's latency (the sim JSON sets
  0: LeRobot's stream then sends each push at once, where a period makes it wait that long);
* the actor, at each episode end (where LeRobot loads new weights), waits until it has weights
  from a learner that has caught up with every transition sent before this episode, so the
  policy acting is at most one episode behind and the learner never falls behind the actor.

With several actors on one learner (``e2hil-sim --env.launch.num_actors=N``), the learner's
progress also carries the transitions received from each actor (``received/<actor id>``, from
the per-actor counts of :mod:`..learner.hooks`), and each actor compares what it sent with what
the learner received from it (:func:`read_progress`; the total from a learner that counts no actor);
the learner's cap stays ``r`` times all transitions received.

Learner and actor each count from their own start, so a resume restarts both counts together;
when the learner alone restarts (its count goes down), the actor aligns its count with the new
learner's. The actor's wait is bounded (``env.lockstep_timeout_s``); after a timeout (a dead or
stalled learner) it aligns the counts too and goes on.

The functions above the classes are pure; :func:`install_learner_lockstep` and
:func:`install_actor_lockstep` hook LeRobot's ``push_actor_policy_to_queue``, ``process_transitions``,
``process_interaction_messages`` (where the learner waits, taking in transitions and episode
messages), ``update_policy_parameters`` and ``bytes_to_state_dict`` (the ``launcher.lockstep`` layer of
their rows in :mod:`..lerobot_layer.patches`; all but the first call LeRobot's function).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from ..lerobot_layer import patches

# Extra entry of the weights message; LeRobot's ``load_weights`` reads only the keys it knows
PROGRESS_KEY = "e2hil_progress"
# Prefix of the per-actor received counts in the progress entry: ``received/<actor id>``
RECEIVED_FROM = "received/"
POLL_S = 0.005
# An idle learner pushes its weights again after this many seconds
HEARTBEAT_S = 1.0


def allowed_updates(start_step: int, received: int, ratio: float, warm: bool) -> int:
    """How many optimisation steps the learner may have done after receiving ``received`` transitions.

    Args:
        start_step: The learner's optimisation step when it started (non-zero after a resume).
        received: Transitions received since it started.
        ratio: Updates per env step (``env.updates_per_env_step``).
        warm: Whether the online buffer holds ``policy.online_step_before_learning`` transitions
            (LeRobot's learner does not update before; a resumed buffer may hold them already).
    """
    if not warm:
        return start_step
    return start_step + math.floor(ratio * received + 1e-9)


def learner_caught_up(step: int, allowed: int) -> bool:
    """Whether the learner has nothing left to do until more transitions arrive."""
    return step >= allowed


def actor_may_go_on(
    progress: dict[str, int] | None, sent_before: int, offset: int, ratio: float, warmup: int
) -> bool:
    """Whether the learner's last reported progress covers every transition sent before this episode.

    It does when the learner has received them and has either nothing left to do or done the
    updates they allow (a later push may report new data already being trained on).

    Args:
        progress: The latest :data:`PROGRESS_KEY` entry the actor received (None: none yet).
        sent_before: Transitions this actor sent before the episode that just ended.
        offset: Learner count minus actor count, set after a timeout (:func:`aligned_offset`).
        ratio: Updates per env step.
        warmup: ``policy.online_step_before_learning``.
    """
    if progress is None:
        return False
    needed = sent_before + offset
    if progress["received"] < needed:
        return False
    return bool(progress["caught_up"]) or progress["optimization_step"] >= allowed_updates(
        0, needed, ratio, warmup
    )


def aligned_offset(progress: dict[str, int] | None, sent_before: int) -> int:
    """The offset that makes the learner's count match the actor's (after a timeout)."""
    return 0 if progress is None else progress["received"] - sent_before


def progress_entry(
    received: int, step: int, caught_up: bool, by_actor: dict[str, int] | None = None
) -> dict[str, Any]:
    """The :data:`PROGRESS_KEY` entry of a weights message (a dict of tensors, like the state dicts).

    Args:
        received: Transitions received from all actors since the learner started.
        step: Updates done since the learner started.
        caught_up: Whether the learner has nothing left to do until more transitions arrive.
        by_actor: Transitions received from each actor (by actor id) since the learner started.
    """
    import torch

    entry = {
        "received": torch.tensor(received, dtype=torch.int64),
        "optimization_step": torch.tensor(step, dtype=torch.int64),
        "caught_up": torch.tensor(int(caught_up), dtype=torch.int64),
    }
    for actor_id, count in (by_actor or {}).items():
        entry[RECEIVED_FROM + actor_id] = torch.tensor(count, dtype=torch.int64)
    return entry


def read_progress(entry: dict[str, Any], actor_id: str | None = None) -> dict[str, int]:
    """Inverse of :func:`progress_entry` as one actor sees it.

    Args:
        entry: The :data:`PROGRESS_KEY` entry received.
        actor_id: The reading actor's id. Its own received count replaces the total; 0 when
            the entry counts other actors but not this one (nothing received from it yet); the
            total when the entry counts no actor (a learner without per-actor counts).

    Returns:
        ``{"received", "optimization_step", "caught_up"}``.
    """
    counted = any(key.startswith(RECEIVED_FROM) for key in entry)
    received = entry["received"]
    if actor_id and counted:
        received = entry.get(RECEIVED_FROM + actor_id, 0)
    return {
        "received": int(received),
        "optimization_step": int(entry["optimization_step"]),
        "caught_up": int(entry["caught_up"]),
    }


def received_since(counts: dict[str, int], start: dict[str, int]) -> dict[str, int]:
    """Per-actor counts since the learner started (``start``: the counts then, restored ones included)."""
    return {actor_id: count - start.get(actor_id, 0) for actor_id, count in counts.items()}


@dataclass
class LearnerPacer:
    """The learner's side: the cap on updates and the pushes that report progress."""

    ratio: float
    warmup: int
    algorithm: Any = None
    parameters_queue: Any = None
    start_step: int | None = None
    start_received: int = 0
    start_by_actor: dict[str, int] = field(default_factory=dict)
    last_report: tuple[int, int] | None = None
    waits: int = 0

    def start(self, accepted: int, by_actor: dict[str, int] | None = None) -> None:
        """Start the counts: at the training loop's first ``process_transitions``, before it runs.

        LeRobot has then set a resumed optimisation step and the fault handling its restored
        per-actor counts, and no transition of this process has been counted yet (some may wait
        in the queue: they count as received since the start).

        Args:
            accepted: The transition validator's count of accepted transitions.
            by_actor: Transitions accepted per actor id (run-wide, restored ones included).
        """
        self.start_step = int(self.algorithm.optimization_step)
        self.start_received = accepted
        self.start_by_actor = dict(by_actor or {})

    def progress(self, accepted: int, buffer_size: int | None) -> tuple[int, int, bool]:
        """``(received, updates since start, caught up)``; before :meth:`start`: ``(0, 0, False)``.

        Args:
            accepted: The transition validator's count of accepted transitions.
            buffer_size: The online buffer's size, None before the training loop (LeRobot's
                first push).
        """
        if buffer_size is None or self.start_step is None:
            return 0, 0, False
        step = int(self.algorithm.optimization_step)
        received = accepted - self.start_received
        allowed = allowed_updates(self.start_step, received, self.ratio, buffer_size >= self.warmup)
        return received, step - self.start_step, learner_caught_up(step, allowed)

    def by_actor(self, counts: dict[str, int]) -> dict[str, int]:
        """Transitions received per actor since the counts started (empty before the training loop)."""
        return received_since(counts, self.start_by_actor) if self.start_step is not None else {}


@dataclass
class ActorPacer:
    """The actor's side: the latest progress received and the count alignment."""

    timeout_s: float
    ratio: float
    warmup: int
    progress: dict[str, int] | None = None
    offset: int = 0
    timeouts: int = 0
    restarts: int = 0
    realign: bool = False


def install_learner_lockstep(cfg: Any) -> LearnerPacer | None:
    """Cap LeRobot's learner at ``env.updates_per_env_step`` updates per transition received.

    Install after :func:`..learner.hooks.install_learner_faults` (its transition validator counts what
    is received). Does nothing when ``env.updates_per_env_step`` is None.

    Args:
        cfg: The learner's ``TrainRLServerPipelineConfig``.
    """
    ratio = getattr(cfg.env, "updates_per_env_step", None)
    if ratio is None:
        return None
    from lerobot.rl import learner

    from ..learner.hooks import LEARNER

    pacer = LearnerPacer(ratio=float(ratio), warmup=int(cfg.policy.online_step_before_learning))
    patches.install("learner")
    buffer_size: list[int | None] = [None]
    pending: list[tuple[Any, Any] | None] = [None]
    stopping: list[Any] = [None]

    def actor_counts() -> dict[str, int]:
        return {name: int(v["transitions"]) for name, v in LEARNER.counter.state()["actors"].items()}

    def progress() -> tuple[int, int, bool]:
        return pacer.progress(LEARNER.validator.accepted, buffer_size[0])

    def push(parameters_queue: Any, algorithm: Any, received: int, updates: int, caught_up: bool) -> None:
        weights = algorithm.get_weights()
        weights[PROGRESS_KEY] = progress_entry(received, updates, caught_up, pacer.by_actor(actor_counts()))
        parameters_queue.put(learner.state_to_bytes(weights))  # the faults' safetensors encoder
        pacer.last_report = (received, updates) if caught_up else None

    def push_actor_policy_to_queue(call: patches.Call) -> None:
        # LeRobot's first push and its periodic ones; in the training loop only a caught-up
        # learner's weights go out, so each episode acts with the weights its data allowed
        parameters_queue, algorithm = call.arguments["parameters_queue"], call.arguments["algorithm"]
        pacer.algorithm, pacer.parameters_queue = algorithm, parameters_queue
        received, updates, caught_up = progress()
        if caught_up or buffer_size[0] is None:
            push(parameters_queue, algorithm, received, updates, caught_up)

    def process_transitions(call: patches.Call) -> None:
        transition_queue, replay_buffer = call.arguments["transition_queue"], call.arguments["replay_buffer"]

        def process() -> None:
            call.proceed()
            buffer_size[0] = len(replay_buffer)

        if pacer.start_step is None and pacer.algorithm is not None:
            pacer.start(LEARNER.validator.accepted, actor_counts())
        pending[0] = (transition_queue, process)
        process()

    def process_interaction_messages(call: patches.Call) -> Any:
        # LeRobot calls it right after process_transitions and then updates once; the learner
        # waits here, taking in transitions and episode messages, until it may update again
        interaction_message_queue = call.arguments["interaction_message_queue"]
        shutdown_event = call.arguments["shutdown_event"]
        stopping[0] = shutdown_event
        handle = call.proceed

        last = handle()
        while pacer.algorithm is not None and pending[0] is not None and not shutdown_event.is_set():
            transition_queue, process = pending[0]
            received, updates, caught_up = progress()
            if not caught_up:
                break
            if pacer.last_report != (received, updates):
                push(pacer.parameters_queue, pacer.algorithm, received, updates, caught_up)
            if buffer_size[0] < pacer.warmup:
                break
            pacer.waits += 1
            idle_since = time.monotonic()
            while (
                transition_queue.empty() and interaction_message_queue.empty() and not shutdown_event.is_set()
            ):
                time.sleep(POLL_S)
                if time.monotonic() - idle_since > HEARTBEAT_S:
                    # LeRobot's actor joins its parameter receiver, which only sees a stopped
                    # actor when the stream yields, so an idle learner keeps it yielding
                    push(pacer.parameters_queue, pacer.algorithm, received, updates, caught_up)
                    idle_since = time.monotonic()
            process()
            last = handle() or last
        return last

    def training_step(call: patches.Call) -> Any:
        # LeRobot updates once more after the wait above returns for a stop; past the quota that
        # update would also put the final checkpoint one step beyond the last periodic one
        event = stopping[0]
        if event is not None and event.is_set() and pacer.algorithm is not None and progress()[2]:
            from lerobot.rl.algorithms.configs import TrainingStats

            return TrainingStats()
        return call.proceed()

    patches.hook("lerobot.rl.learner.RLTrainer.training_step", "launcher.lockstep", training_step)
    for name, function in (
        ("push_actor_policy_to_queue", push_actor_policy_to_queue),
        ("process_transitions", process_transitions),
        ("process_interaction_messages", process_interaction_messages),
    ):
        patches.hook(f"lerobot.rl.learner.{name}", "launcher.lockstep", function)
    logging.info(f"[LEARNER] lockstep: {pacer.ratio} updates per env step")
    period = float(cfg.policy.actor_learner_config.policy_parameters_push_frequency)
    if period > 0:
        logging.warning(
            f"[LEARNER] lockstep with policy.actor_learner_config.policy_parameters_push_frequency={period:g}: "
            "LeRobot's parameter stream sends at most once per that many seconds, so each episode "
            "end may wait that long; 0 sends each push at once"
        )
    return pacer


def install_actor_lockstep(cfg: Any, shutdown: Any) -> ActorPacer | None:
    """Make LeRobot's actor wait at episode ends for weights that cover what it sent.

    Install after :func:`..actor.hooks.install_actor_faults` (it counts the transitions sent).

    Args:
        cfg: The actor's ``TrainRLServerPipelineConfig``.
        shutdown: A callable returning the actor's shutdown event (None until the loop starts).
    """
    if getattr(cfg.env, "updates_per_env_step", None) is None:
        return None
    from ..actor.hooks import ACTOR

    patches.install("actor")
    pacer = ActorPacer(
        timeout_s=float(cfg.env.lockstep_timeout_s),
        ratio=float(cfg.env.updates_per_env_step),
        warmup=int(cfg.policy.online_step_before_learning),
    )

    def capture_progress(call: patches.Call) -> dict[str, Any]:
        # The decoded weights: the progress entry is taken out before LeRobot loads them
        weights = call.proceed()
        if isinstance(weights, dict) and PROGRESS_KEY in weights:
            weights = dict(weights)
            progress = read_progress(weights.pop(PROGRESS_KEY), ACTOR.actor_id or None)
            if pacer.progress is not None and progress["received"] < pacer.progress["received"]:
                pacer.restarts += 1  # a new learner process counts from its start
                pacer.realign = True
            pacer.progress = progress
        return weights

    def update_policy_parameters(call: patches.Call) -> None:
        sent_before = ACTOR.queued_transitions
        deadline = time.monotonic() + pacer.timeout_s
        event = shutdown()
        while True:
            call.proceed()
            if pacer.realign:
                pacer.offset, pacer.realign = aligned_offset(pacer.progress, sent_before), False
            if actor_may_go_on(pacer.progress, sent_before, pacer.offset, pacer.ratio, pacer.warmup):
                return
            if event is not None and event.is_set():
                return
            if time.monotonic() > deadline:
                pacer.timeouts += 1
                pacer.offset = aligned_offset(pacer.progress, sent_before)
                logging.warning(
                    f"[ACTOR] lockstep: no weights covering {sent_before} transitions within "
                    f"{pacer.timeout_s:g} s (env.lockstep_timeout_s); going on ({pacer.timeouts} so far)"
                )
                return
            time.sleep(POLL_S)

    patches.hook("lerobot.rl.actor.bytes_to_state_dict", "launcher.lockstep", capture_progress)
    patches.hook("lerobot.rl.actor.update_policy_parameters", "launcher.lockstep", update_policy_parameters)
    logging.info(f"[ACTOR] lockstep: {cfg.env.updates_per_env_step} updates per env step")
    return pacer
