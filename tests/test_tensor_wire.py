"""Transitions and parameters on the wire as safetensors: round trips, and what is refused.

LeRobot 0.6.1 sends both with ``torch.save`` and reads them with ``torch.load``: network input
goes through an unpickler. The codec of :mod:`lerobot_policy_e2hil.wire.tensors` never
unpickles; these tests check that every field survives it and that a pickle (plain or inside a
``torch.save`` zip) is refused, counted and never executed.
"""

import io
import logging
import math
import pickle
import queue
import types

import pytest
import torch

from lerobot_policy_e2hil.actor.hooks import ACTOR
from lerobot_policy_e2hil.learner.actors import tag
from lerobot_policy_e2hil.learner.hooks import LEARNER
from lerobot_policy_e2hil.wire.tensors import (
    DecodeError,
    decode_parameters,
    decode_transitions,
    encode,
    encode_parameters,
    encode_transitions,
)

LIMIT = 64 * 2**20


class _CreatesFile:
    """Unpickled, it opens (creates) ``path``: the payload an attacker would send."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _torch_save(value) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def _lerobot_transition(step: int) -> dict:
    """A transition as LeRobot's actor builds it and ``move_transition_to_device`` hands it over."""
    from lerobot.utils.transition import Transition, move_transition_to_device

    generator = torch.Generator().manual_seed(step)
    state = {
        "observation.state": torch.rand(1, 18, generator=generator),
        "observation.images.front": torch.randint(
            0, 256, (1, 3, 32, 32), dtype=torch.uint8, generator=generator
        ),
        "observation.images.wrist": torch.rand(1, 3, 32, 32, generator=generator),
    }
    next_state = {key: value + 1 for key, value in state.items()}
    transition = Transition(
        state=state,
        action=torch.tensor([[0.1, -0.2, 0.3, 2.0]]),
        reward=0.5 * step,
        next_state=next_state,
        done=step == 2,
        truncated=False,
        complementary_info={
            "discrete_penalty": torch.tensor([-0.1]),
            "is_intervention": step % 2 == 0,
            "index": step,
        },
    )
    return move_transition_to_device(transition, device="cpu")


def _assert_same(a, b):
    assert type(a) is type(b), (a, b)
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            _assert_same(a[key], b[key])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same(x, y)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    else:
        assert a == b


def test_every_field_of_lerobot_transitions_survives():
    transitions = [_lerobot_transition(step) for step in range(3)]
    transitions[1]["complementary_info"] = None
    transitions[2]["reward"] = torch.tensor(1.0)
    transitions[2]["complementary_info"]["raw_flag"] = True  # Python scalars stay Python scalars
    # LeRobot's actor hands the next observation on as the next state: the same tensor objects
    transitions[1]["state"] = transitions[0]["next_state"]
    back = decode_transitions(encode_transitions(transitions), LIMIT)
    _assert_same(transitions, back)
    assert back[0]["state"]["observation.images.front"].dtype == torch.uint8
    assert back[0]["complementary_info"]["is_intervention"].dtype == torch.bool
    assert back[2]["complementary_info"]["raw_flag"] is True and back[2]["done"] is True


def test_non_finite_values_reach_the_transition_checks():
    transition = _lerobot_transition(0)
    transition["reward"] = math.nan
    transition["state"]["observation.state"][0, 0] = math.inf
    back = decode_transitions(encode_transitions([transition]), LIMIT)[0]
    assert math.isnan(back["reward"]) and math.isinf(back["state"]["observation.state"][0, 0])


def test_weights_of_a_real_sac_policy_survive():
    from lerobot_policy_e2hil.synthetic import make_policy, make_rl_algorithm

    policy = make_policy(hidden_dim=16, latent_dim=16, num_discrete_actions=3)
    weights = make_rl_algorithm("sac", policy).get_weights()
    assert set(weights) == {"policy", "discrete_critic"}
    back = decode_parameters(encode_parameters(weights), LIMIT)
    _assert_same(weights, back)
    policy.actor.load_state_dict(back["policy"])


def test_tensors_sharing_memory_are_sent_apart():
    whole = torch.arange(10.0)
    weights = {"policy": {"a": whole[:5], "b": whole[5:], "c": whole}}
    back = decode_parameters(encode_parameters(weights), LIMIT)
    _assert_same(weights, back)


@pytest.mark.parametrize("make", [pickle.dumps, _torch_save], ids=["pickle", "torch.save"])
def test_pickles_are_refused_and_not_executed(tmp_path, make):
    marker = tmp_path / "created"
    payload = make([_CreatesFile(marker)])
    for decoder in (decode_transitions, decode_parameters):
        with pytest.raises(
            DecodeError, match="torch.save/pickle payload, not safetensors: a peer running plain LeRobot"
        ):
            decoder(payload, LIMIT)
    assert not marker.exists()


def test_plain_lerobot_messages_are_refused():
    from lerobot.transport.utils import state_to_bytes, transitions_to_bytes

    with pytest.raises(DecodeError, match="plain LeRobot"):
        decode_transitions(transitions_to_bytes([_lerobot_transition(0)]), LIMIT)
    with pytest.raises(DecodeError, match="plain LeRobot"):
        decode_parameters(state_to_bytes({"policy": {"w": torch.zeros(2)}}), LIMIT)


def _tampered(layout: str, tensors: dict | None = None, kind: str = "transitions") -> bytes:
    from safetensors.torch import save

    metadata = {"format": "e2hil-wire/1", "kind": kind, "layout": layout}
    return save(tensors if tensors is not None else {"0": torch.zeros(1)}, metadata=metadata)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not a safetensors message"),
        (b"\xff" * 64, "not a safetensors message"),
        (encode_transitions([]), None),
        (encode_parameters({}), "a 'parameters' message where transitions were expected"),
        (_tampered('{"t": "1"}'), "names a tensor '1' the message does not hold"),
        (_tampered('{"l": []}'), "1 tensors the layout does not use"),
        (_tampered('{"l": [{"t": "0"}]}'), "transition 0: a Tensor, not a dict"),
        (_tampered('{"l": [{"d": {"os.system": {"t": "0"}}}]}'), "unknown key 'os.system'"),
        (_tampered('{"l": [{"d": {"state": {"d": {"x": 1}}}}]}', {}), "state is not a dict of tensors"),
        (_tampered('{"l": [{"d": {"reward": {"l": []}}}]}', {}), "reward is a container"),
        (_tampered('"text"', {}), "a layout node of type str"),
        (_tampered('{"x": 1}', {}), "a layout node tagged 'x'"),
        (_tampered("[" * 10000, {}), "a layout that is not JSON"),
        (_tampered("not json", {}), "a layout that is not JSON"),
        (_tampered('{"l": [' * 8 + "]}" * 8, {}), "nested deeper than 6"),
    ],
    ids=lambda value: (
        "message" if isinstance(value, bytes) else None
    ),  # safetensors orders metadata at random
)
def test_what_does_not_fit_the_schema_is_refused(data, reason):
    if reason is None:
        assert decode_transitions(data, LIMIT) == []
        return
    with pytest.raises(DecodeError, match=reason):
        decode_transitions(data, LIMIT)


def test_messages_over_the_limit_are_refused_before_parsing():
    data = encode_transitions([_lerobot_transition(0)])
    with pytest.raises(DecodeError, match=f"{len(data)} bytes, more than the limit of 100"):
        decode_transitions(data, 100)
    with pytest.raises(DecodeError, match="safetensors refused the tensors"):
        decode_transitions(data[:-10], LIMIT)  # a truncated buffer


def test_parameters_must_be_state_dicts():
    with pytest.raises(DecodeError, match="'policy' is not a dict of tensors"):
        decode_parameters(encode({"policy": {"w": 1.0}}, "parameters"), LIMIT)
    with pytest.raises(DecodeError, match="parameters: a list, not a dict"):
        decode_parameters(encode([], "parameters"), LIMIT)


def test_the_learner_counts_and_names_a_plain_lerobot_actor(tmp_path, caplog, monkeypatch):
    from lerobot.transport.utils import transitions_to_bytes

    from lerobot_policy_e2hil.learner.hooks import transitions_from_bytes
    from lerobot_policy_e2hil.learner.transitions import TransitionValidator

    validator = TransitionValidator(lambda: None, warn_interval_s=0.0)
    monkeypatch.setattr(LEARNER, "validator", validator)
    marker = tmp_path / "created"
    with caplog.at_level(logging.WARNING):  # what the learner's bytes_to_transitions hook does
        assert transitions_from_bytes(tag("robot_b", transitions_to_bytes([_lerobot_transition(0)]))) == []
        assert transitions_from_bytes(tag("robot_c", _torch_save([_CreatesFile(marker)]))) == []
    assert validator.rejected_messages == 2 and validator.accepted == 0
    assert not marker.exists()
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0] == (
        "[LEARNER] Skipped bad transitions from the actor (undecodable message (a torch.save/pickle payload, "
        "not safetensors: a peer running plain LeRobot?) from robot_b: 1); totals: 0 transitions and 1 "
        "messages skipped, 0 accepted. Training goes on."
    )


def test_the_actor_skips_and_counts_parameters_that_do_not_decode(tmp_path, caplog, monkeypatch):
    from lerobot.rl import actor

    from lerobot_policy_e2hil.actor.hooks import _decode_parameters, _skipping_bad_parameters
    from lerobot_policy_e2hil.wire.messages import RejectCounter

    monkeypatch.setattr(actor, "bytes_to_state_dict", _decode_parameters)
    counter = RejectCounter("Skipped parameters from the learner that do not decode", 0.0, "ACTOR")
    monkeypatch.setattr(ACTOR, "parameters", counter)
    update = _skipping_bad_parameters(actor.update_policy_parameters)
    loaded = []
    algorithm = types.SimpleNamespace(load_weights=lambda weights, device: loaded.append(weights))
    marker, parameters = tmp_path / "created", queue.Queue()
    parameters.put(_torch_save({"policy": _CreatesFile(marker)}))
    with caplog.at_level(logging.WARNING):
        update(algorithm=algorithm, parameters_queue=parameters, device="cpu")
    assert loaded == [] and counter.rejected == 1 and not marker.exists()
    assert any(
        "[ACTOR] Skipped parameters from the learner that do not decode (a torch.save/pickle payload"
        in r.getMessage()
        for r in caplog.records
    )
    weights = {"policy": {"w": torch.ones(3)}}
    parameters.put(encode_parameters(weights))
    update(algorithm=algorithm, parameters_queue=parameters, device="cpu")
    _assert_same(loaded, [weights])
