"""Fault point 3: transitions with NaN/inf or wrong shapes are skipped, counted and warned about.

In LeRobot 0.6.1 a wrong-shaped transition makes ``ReplayBuffer.add`` raise, which ends the
learner's training loop, and inf values go into the buffer. Here a running sim learner gets
bad transitions over gRPC from a hand-made client and keeps training on the good ones.
"""

import math
import signal

import pytest
import torch

from lerobot_policy_e2hil.learner.transitions import TransitionSpec
from test_faults_helpers import Process, free_port, good_transition, port_open, records, sim_args, wait_for

SPEC = TransitionSpec({"observation.state": (18,), "observation.environment_state": (3,)}, action_shape=(4,))


def corrupt(kind: str) -> dict:
    transition = good_transition()
    if kind == "state_shape":
        transition["state"]["observation.state"] = torch.rand(1, 17)
    elif kind == "state_nan":
        transition["state"]["observation.state"][0, 3] = math.nan
    elif kind == "next_state_inf":
        transition["next_state"]["observation.environment_state"][0, 0] = math.inf
    elif kind == "missing_key":
        del transition["next_state"]["observation.environment_state"]
    elif kind == "action_inf":
        transition["action"][0, 1] = -math.inf
    elif kind == "action_shape":
        transition["action"] = torch.zeros(1, 3)
    elif kind == "reward_nan":
        transition["reward"] = math.nan
    elif kind == "reward_vector":
        transition["reward"] = torch.zeros(2)
    elif kind == "penalty_inf":
        transition["complementary_info"]["discrete_penalty"] = torch.tensor([math.inf])
    return transition


BAD_KINDS = {
    "state_shape": "state['observation.state'] shape (1, 17)",
    "state_nan": "non-finite state['observation.state']",
    "next_state_inf": "non-finite next_state['observation.environment_state']",
    "missing_key": "next_state['observation.environment_state'] missing",
    "action_inf": "non-finite action",
    "action_shape": "action shape (1, 3)",
    "reward_nan": "non-finite reward",
    "reward_vector": "reward is not a scalar",
    "penalty_inf": "non-finite complementary_info['discrete_penalty']",
}


@pytest.mark.parametrize("kind", sorted(BAD_KINDS))
def test_each_bad_transition_is_named(kind):
    assert SPEC.problem(good_transition()) is None
    assert BAD_KINDS[kind] in SPEC.problem(corrupt(kind))


def test_spec_follows_the_policy_features_and_the_discrete_action():
    from lerobot_policy_e2hil.synthetic import make_policy

    policy = make_policy(hidden_dim=8, latent_dim=8, num_discrete_actions=3)
    spec = TransitionSpec.from_policy_config(policy.config)
    assert spec.state_shapes == SPEC.state_shapes and spec.action_shape == (4,)


def send(port: int, messages: list[bytes]) -> None:
    """Stream raw transition messages to the learner as LeRobot's actor does."""
    import grpc
    from lerobot.transport import services_pb2, services_pb2_grpc
    from lerobot.transport.utils import grpc_channel_options, send_bytes_in_chunks

    with grpc.insecure_channel(f"127.0.0.1:{port}", grpc_channel_options()) as channel:
        stub = services_pb2_grpc.LearnerServiceStub(channel)

        def chunks():
            for message in messages:
                yield from send_bytes_in_chunks(message, services_pb2.Transition)

        stub.SendTransitions(chunks(), timeout=60)


class _CreatesFile:
    """Unpickled, it creates ``path``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.slow
def test_learner_skips_counts_and_warns_then_trains_on_the_good_ones(tmp_path):
    import io

    from lerobot.transport.utils import transitions_to_bytes as plain_lerobot

    from lerobot_policy_e2hil.wire.tensors import encode_transitions

    port, output_dir = free_port(), tmp_path / "run"
    args = sim_args(port, policy__online_step_before_learning=20, batch_size=8, log_freq=1)
    learner = Process(
        "learner",
        [*args, f"--output_dir={output_dir}", "--faults.warn_interval_s=3600"],
        tmp_path / "learner.out",
    )
    try:
        wait_for(lambda: port_open(port), 180, "the learner's gRPC port", (learner,))
        bad = [corrupt(kind) for kind in sorted(BAD_KINDS)]
        first = [bad[0], *(good_transition(i % 3 == 0) for i in range(10)), *bad[1:], good_transition()]
        send(port, [encode_transitions(first), b"not a transition message"])
        marker, payload = tmp_path / "created", io.BytesIO()
        torch.save([_CreatesFile(marker)], payload)
        # an actor of plain LeRobot (torch.save), and a torch.save payload that would create a file
        send(port, [plain_lerobot([good_transition()]), payload.getvalue()])
        send(port, [encode_transitions([good_transition() for _ in range(20)])])

        def trained():
            train = records(output_dir, "train")
            return train and train[-1]

        last_train = wait_for(trained, 180, "a training step after the bad transitions", (learner,))
        assert last_train["transitions_received"] == 31
        assert last_train["transitions_rejected"] == len(BAD_KINDS)
        assert last_train["transition_messages_rejected"] == 3
        assert not marker.exists()
        assert records(output_dir, "transitions")[-1]["received"] == 31
        assert learner.alive()
    finally:
        code = learner.stop(signal.SIGINT)
    assert code == 0, learner.text()[-3000:]
    warnings = [line for line in learner.text().splitlines() if "Skipped bad transitions" in line]
    assert len(warnings) == 1, warnings  # rate-limited: one per warn_interval_s
    for reason in BAD_KINDS.values():
        assert reason in warnings[0]
    checkpoint = records(output_dir, "checkpoint")[-1]
    assert checkpoint["online_buffer"] == 31  # only the good transitions reached the replay buffer
    assert checkpoint["offline_buffer"] == 4  # the good interventions


def test_a_stream_waiting_on_a_queue_closed_at_shutdown_gets_empty_not_a_traceback():
    import multiprocessing
    import threading
    from queue import Empty

    from lerobot_policy_e2hil.actor.hooks import AttemptQueue, Backlog

    queue = multiprocessing.Queue()
    view = AttemptQueue(queue, Backlog(), threading.Event())
    queue.close()  # what LeRobot's actor_cli does once its policy loop returns
    with pytest.raises(Empty):
        view.get(block=True, timeout=0.01)
