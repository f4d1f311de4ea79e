"""The learner/actor lockstep (``env.updates_per_env_step``): its rules, and both sides together.

The threaded test runs the real wrappers around LeRobot's real ``update_policy_parameters`` and
this package's weights serialisation (safetensors, :mod:`lerobot_policy_e2hil.wire.tensors`), with a learner loop shaped like LeRobot's (process transitions, skip
below the warm-up, one update, a periodic push) and an actor that sends one episode at a time.
"""

import queue
import threading
import time
import types

import pytest
import torch

from lerobot_policy_e2hil.launcher import lockstep
from lerobot_policy_e2hil.launcher.lockstep import (
    PROGRESS_KEY,
    actor_may_go_on,
    aligned_offset,
    allowed_updates,
    progress_entry,
    read_progress,
)
from lerobot_policy_e2hil.lerobot_layer import patches
from lerobot_policy_e2hil.wire.tensors import decode_parameters, encode_parameters


def test_allowed_updates_start_at_warmup_and_follow_the_ratio():
    assert allowed_updates(0, 199, 0.6, warm=False) == 0
    assert allowed_updates(0, 200, 0.6, warm=True) == 120
    assert allowed_updates(0, 1001, 0.6, warm=True) == 600
    assert allowed_updates(5000, 1000, 0.5, warm=True) == 5500  # resumed learner: counts from its start
    assert allowed_updates(0, 3, 1 / 3, warm=True) == 1  # no float shortfall below an exact product


def test_actor_goes_on_only_once_the_learner_covers_what_was_sent():
    def progress(received, step, caught_up):
        return read_progress(progress_entry(received, step, caught_up))

    assert not actor_may_go_on(None, 0, 0, 0.6, 200)
    assert not actor_may_go_on(progress(90, 0, True), 100, 0, 0.6, 200)  # not all received yet
    assert actor_may_go_on(progress(100, 0, True), 100, 0, 0.6, 200)  # below warm-up, nothing to do
    assert actor_may_go_on(progress(300, 179, True), 300, 0, 0.6, 200)
    # Training on newer data: not caught up, but done with what this actor needs
    assert actor_may_go_on(progress(330, 181, False), 300, 0, 0.6, 200)
    assert not actor_may_go_on(progress(330, 179, False), 300, 0, 0.6, 200)
    # After a learner restart its count is 250 lower than the actor's
    offset = aligned_offset(progress(50, 0, True), 300)
    assert offset == -250
    assert actor_may_go_on(progress(80, 0, True), 330, offset, 0.6, 200)


def _decode(data: bytes) -> dict:
    return decode_parameters(data, 2**20)


def test_progress_entry_survives_the_weights_serialisation():
    weights = {"policy": {"w": torch.ones(2)}, PROGRESS_KEY: progress_entry(12, 7, True)}
    back = _decode(encode_parameters(weights))
    assert read_progress(back[PROGRESS_KEY]) == {"received": 12, "optimization_step": 7, "caught_up": 1}


class _Algorithm:
    def __init__(self):
        self.optimization_step = 0
        self.loaded = []

    def get_weights(self):
        return {"policy": {"w": torch.tensor([float(self.optimization_step)])}}

    def load_weights(self, weights, device="cpu"):
        assert PROGRESS_KEY not in weights, "the progress entry reached LeRobot's load_weights"
        self.loaded.append(float(weights["policy"]["w"][0]))


def _config(ratio, warmup, timeout_s=10.0):
    return types.SimpleNamespace(
        env=types.SimpleNamespace(updates_per_env_step=ratio, lockstep_timeout_s=timeout_s),
        policy=types.SimpleNamespace(
            online_step_before_learning=warmup,
            actor_learner_config=types.SimpleNamespace(policy_parameters_push_frequency=0),
        ),
    )


def _take_transitions(learner, transitions, buffer, stop) -> None:
    """LeRobot's ``process_transitions`` as the learner loop calls it (no offline buffer, no dataset)."""
    learner.process_transitions(
        transition_queue=transitions,
        replay_buffer=buffer,
        offline_replay_buffer=None,
        dataset_repo_id=None,
        shutdown_event=stop,
    )


def _take_in(learner, transitions, interactions, buffer, stop) -> None:
    """The head of LeRobot's learner loop: transitions, then episode messages (where it may wait)."""
    _take_transitions(learner, transitions, buffer, stop)
    learner.process_interaction_messages(
        interaction_message_queue=interactions,
        interaction_step_shift=0,
        wandb_logger=None,
        shutdown_event=stop,
    )


@pytest.fixture
def lerobot_sides(monkeypatch):
    """LeRobot's learner and actor modules with a fake ``process_transitions`` and fresh counters."""
    from lerobot.rl import actor, learner

    from lerobot_policy_e2hil.actor.hooks import ACTOR
    from lerobot_policy_e2hil.learner.hooks import LEARNER

    counters = types.SimpleNamespace(accepted=0, episodes=[])
    monkeypatch.setattr(LEARNER, "validator", counters)
    monkeypatch.setattr(ACTOR, "queued_transitions", 0)

    def process_transitions(
        transition_queue, replay_buffer, offline_replay_buffer, dataset_repo_id, shutdown_event
    ):
        while not transition_queue.empty():
            batch = transition_queue.get()
            replay_buffer.extend(batch)
            counters.accepted += len(batch)

    def process_interaction_messages(
        interaction_message_queue, interaction_step_shift, wandb_logger, shutdown_event
    ):
        last = None
        while not interaction_message_queue.empty():
            last = interaction_message_queue.get()
            counters.episodes.append(last)
        return last

    for module, name in (
        (learner, "process_transitions"),
        (learner, "push_actor_policy_to_queue"),
        (learner, "process_interaction_messages"),
        (actor, "update_policy_parameters"),
    ):
        monkeypatch.setattr(module, name, getattr(module, name))
    monkeypatch.setattr(learner, "process_transitions", process_transitions)
    monkeypatch.setattr(learner, "process_interaction_messages", process_interaction_messages)
    with patches.isolated_hooks():
        # The weights serialisation as the wire hooks do it
        patches.hook(
            "lerobot.rl.learner.state_to_bytes",
            "wire",
            lambda call: encode_parameters(call.arguments["state_dict"]),
        )
        patches.hook(
            "lerobot.rl.actor.bytes_to_state_dict",
            "wire",
            lambda call: _decode(call.arguments["buffer"]),
        )
        yield learner, actor, types.SimpleNamespace(LEARNER=LEARNER, ACTOR=ACTOR)


@pytest.mark.parametrize("start_step", [0, 400])
def test_learner_and_actor_hold_the_ratio_together(lerobot_sides, start_step):
    learner, actor, runtime = lerobot_sides
    ratio, warmup, episode = 0.5, 40, 17
    cfg = _config(ratio, warmup)
    learner_pacer = lockstep.install_learner_lockstep(cfg)
    stop = threading.Event()
    actor_pacer = lockstep.install_actor_lockstep(cfg, lambda: stop)

    transitions, parameters, interactions = queue.Queue(), queue.Queue(), queue.Queue()
    buffer: list[int] = []
    learner_alg, actor_alg = _Algorithm(), _Algorithm()
    violations: list[str] = []

    def learner_loop():
        learner.push_actor_policy_to_queue(parameters_queue=parameters, algorithm=learner_alg)
        learner_alg.optimization_step = start_step  # LeRobot sets a resumed step after the first push
        pushes = 0
        while not stop.is_set():
            _take_in(learner, transitions, interactions, buffer, stop)
            if len(buffer) < warmup or stop.is_set():
                continue
            learner_alg.optimization_step += 1
            cap = start_step + allowed_updates(
                0, runtime.LEARNER.validator.accepted, ratio, len(buffer) >= warmup
            )
            if learner_alg.optimization_step > cap:
                violations.append(f"{learner_alg.optimization_step} updates for cap {cap}")
            pushes += 1
            if pushes % 7 == 0:  # LeRobot's time-based push, here every 7 updates
                learner.push_actor_policy_to_queue(parameters_queue=parameters, algorithm=learner_alg)

    thread = threading.Thread(target=learner_loop, daemon=True)
    thread.start()
    sent = 0
    try:
        for episode_index in range(30):
            actor.update_policy_parameters(algorithm=actor_alg, parameters_queue=parameters, device="cpu")
            done = learner_alg.optimization_step - start_step
            needed = allowed_updates(0, sent, ratio, sent >= warmup)
            if done < needed:
                violations.append(f"actor went on after {done} updates, {needed} needed for {sent} sent")
            transitions.put(list(range(episode)))
            interactions.put({"episode": episode_index})
            sent += episode
            runtime.ACTOR.queued_transitions = sent
        # A caught-up learner waiting for data still takes in episode messages
        deadline = time.monotonic() + 10
        while learner_alg.optimization_step - start_step < allowed_updates(0, sent, ratio, True):
            assert time.monotonic() < deadline, "the learner did not catch up"
            time.sleep(0.01)
        time.sleep(0.05)
        interactions.put({"episode": 30})
        while len(runtime.LEARNER.validator.episodes) < 31 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert [e["episode"] for e in runtime.LEARNER.validator.episodes] == list(range(31))
    assert not violations, violations[:3]
    assert actor_pacer.timeouts == 0
    assert learner_pacer.waits > 0
    assert actor_alg.loaded, "the actor never loaded weights"


def test_actor_wait_is_bounded_without_a_learner(lerobot_sides):
    _, actor, runtime = lerobot_sides
    cfg = _config(1.0, 0, timeout_s=0.2)
    pacer = lockstep.install_actor_lockstep(cfg, lambda: None)
    runtime.ACTOR.queued_transitions = 50
    actor.update_policy_parameters(algorithm=_Algorithm(), parameters_queue=queue.Queue(), device="cpu")
    assert pacer.timeouts == 1


def test_nothing_is_installed_without_a_ratio(lerobot_sides):
    learner, actor, _ = lerobot_sides
    before = (learner.process_transitions, actor.update_policy_parameters)
    cfg = _config(None, 0)
    assert lockstep.install_learner_lockstep(cfg) is None
    assert lockstep.install_actor_lockstep(cfg, lambda: None) is None
    assert (learner.process_transitions, actor.update_policy_parameters) == before


def test_config_rejects_a_non_positive_ratio():
    from lerobot_policy_e2hil.errors import ConfigError
    from lerobot_policy_e2hil.sim.config import E2HiLSimEnvConfig

    with pytest.raises(
        ConfigError, match=r"env.updates_per_env_step=0 is invalid; allowed values: > 0 or null"
    ):
        E2HiLSimEnvConfig(updates_per_env_step=0)
    with pytest.raises(ConfigError, match="env.lockstep_timeout_s"):
        E2HiLSimEnvConfig(lockstep_timeout_s=0)


def test_actor_realigns_at_once_with_a_restarted_learner(lerobot_sides):
    _, actor, runtime = lerobot_sides
    pacer = lockstep.install_actor_lockstep(_config(1.0, 0, timeout_s=30.0), lambda: None)
    parameters = queue.Queue()

    def push(received, step, caught_up):
        weights = {"policy": {"w": torch.zeros(1)}, PROGRESS_KEY: progress_entry(received, step, caught_up)}
        parameters.put(encode_parameters(weights))

    runtime.ACTOR.queued_transitions = 500
    push(500, 500, True)
    actor.update_policy_parameters(algorithm=_Algorithm(), parameters_queue=parameters, device="cpu")
    runtime.ACTOR.queued_transitions = 520
    push(0, 0, True)  # the restarted learner has received nothing yet
    actor.update_policy_parameters(algorithm=_Algorithm(), parameters_queue=parameters, device="cpu")
    assert (pacer.restarts, pacer.timeouts, pacer.offset) == (1, 0, -520)


def test_each_actor_reads_its_own_received_count():
    entry = progress_entry(300, 150, True, {"actor_0": 200, "actor_1": 100})
    back = _decode(encode_parameters({PROGRESS_KEY: entry}))[PROGRESS_KEY]
    assert read_progress(back, "actor_0")["received"] == 200
    assert read_progress(back, "actor_1")["received"] == 100
    assert read_progress(back, "actor_2")["received"] == 0  # nothing received from it yet
    assert read_progress(back)["received"] == 300
    assert read_progress(progress_entry(300, 150, True), "actor_1")["received"] == 300  # no per-actor counts
    # actor_1 sent 150: the total (300) covered it, its own count (100) does not
    assert not actor_may_go_on(read_progress(back, "actor_1"), 150, 0, 0.5, 0)
    assert actor_may_go_on(read_progress(back, "actor_0"), 200, 0, 0.5, 0)


def test_learner_reports_what_it_received_from_each_actor_since_it_started(lerobot_sides, monkeypatch):
    from lerobot_policy_e2hil.learner.hooks import RunCounter

    learner, _, runtime = lerobot_sides
    counter = RunCounter()
    counter.add_transitions("actor_0", 500, 0)  # restored from a checkpoint: before this learner started
    monkeypatch.setattr(runtime.LEARNER, "counter", counter)
    lockstep.install_learner_lockstep(_config(1.0, 0))
    parameters, transitions, buffer, alg = queue.Queue(), queue.Queue(), [], _Algorithm()
    stop = threading.Event()

    def step():
        _take_transitions(learner, transitions, buffer, stop)
        learner.push_actor_policy_to_queue(parameters_queue=parameters, algorithm=alg)

    learner.push_actor_policy_to_queue(parameters_queue=parameters, algorithm=alg)  # before the loop
    step()  # the counts start here
    for actor_id, count in (("actor_0", 30), ("actor_1", 12)):
        transitions.put(list(range(count)))
        counter.add_transitions(actor_id, count, 0)
    step()
    alg.optimization_step = 42
    step()
    pushed = None
    while not parameters.empty():
        pushed = _decode(parameters.get())[PROGRESS_KEY]
    assert read_progress(pushed) == {"received": 42, "optimization_step": 42, "caught_up": 1}
    assert read_progress(pushed, "actor_0")["received"] == 30
    assert read_progress(pushed, "actor_1")["received"] == 12


def test_transitions_queued_before_the_training_loop_count_as_received(lerobot_sides):
    learner, _, runtime = lerobot_sides
    lockstep.install_learner_lockstep(_config(0.6, 20))
    transitions, parameters, interactions = queue.Queue(), queue.Queue(), queue.Queue()
    algorithm, buffer, stop = _Algorithm(), [], threading.Event()
    learner.push_actor_policy_to_queue(parameters_queue=parameters, algorithm=algorithm)
    transitions.put(list(range(31)))  # arrived while the learner was still setting up

    def first_iteration():
        _take_in(learner, transitions, interactions, buffer, stop)

    thread = threading.Thread(target=first_iteration, daemon=True)
    thread.start()
    thread.join(timeout=5)
    blocked = thread.is_alive()
    stop.set()
    thread.join(timeout=5)
    assert not blocked, "the learner waits for data although 31 transitions allow 18 updates"
    assert runtime.LEARNER.validator.accepted == 31


class _UpdatingAlgorithm(_Algorithm):
    """What ``RLTrainer`` needs of an algorithm: each update moves the optimisation step."""

    def make_optimizers_and_scheduler(self):
        pass

    def configure_data_iterator(self, data_mixer, batch_size):
        return iter(())

    def update(self, iterator):
        from lerobot.rl.algorithms.configs import TrainingStats

        self.optimization_step += 1
        return TrainingStats(losses={"loss_critic": 1.0})


def test_a_stopping_learner_does_no_update_past_what_its_data_allow(lerobot_sides):
    """LeRobot's loop updates once more after a stop; past the quota the lockstep holds it.

    Without the hold the last periodic checkpoint (at the quota) and the final one (one step
    later) are both written, each with the whole replay buffer.
    """
    learner, _, _ = lerobot_sides
    lockstep.install_learner_lockstep(_config(0.5, 4))
    algorithm, stop = _UpdatingAlgorithm(), threading.Event()
    trainer = learner.RLTrainer(algorithm, None, 1)
    transitions, interactions, parameters = queue.Queue(), queue.Queue(), queue.Queue()
    buffer: list[int] = []
    learner.push_actor_policy_to_queue(parameters_queue=parameters, algorithm=algorithm)
    transitions.put(list(range(10)))
    _take_in(learner, transitions, interactions, buffer, stop)
    for _ in range(3):
        assert trainer.training_step().losses
    stop.set()  # a stop before the quota (5 updates for 10 transitions): the update still runs
    _take_in(learner, transitions, interactions, buffer, stop)
    assert trainer.training_step().losses and algorithm.optimization_step == 4
    assert trainer.training_step().losses and algorithm.optimization_step == 5
    _take_in(learner, transitions, interactions, buffer, stop)
    stats = trainer.training_step()  # at the quota and stopping: held
    assert algorithm.optimization_step == 5 and stats.to_log_dict() == {}
    stop.clear()  # not stopping: LeRobot's update runs as before (the wait only skips it while stopping)
    assert trainer.training_step().losses and algorithm.optimization_step == 6
