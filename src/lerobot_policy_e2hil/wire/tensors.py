"""Transitions and parameters on the wire as safetensors, decoded without unpickling.

LeRobot 0.6.1 sends transitions (actor -> learner) and parameters (learner -> actor) with
``torch.save`` and reads them with ``torch.load(weights_only=True)``: a restricted unpickler, but
still an unpickler of network input. Here both travel as one safetensors buffer each: the
tensors as safetensors tensors, and everything else (the nesting of lists and dicts, rewards,
done flags, scalar complementary info) as a JSON layout in the safetensors metadata, where each
tensor is named by reference (``{"t": "<name>"}``), a dict is ``{"d": {...}}``, a list
``{"l": [...]}`` and a number, boolean or null is itself.

The functions are pure: bytes in, objects out. Every way a message can be wrong (too large, not
safetensors, e.g. a ``torch.save`` payload of plain LeRobot, another kind, a layout that does not
match the schema) raises :class:`DecodeError`, whose message says which.
"""

from __future__ import annotations

import json
import numbers
from typing import Any

import torch

FORMAT = "e2hil-wire/1"
TRANSITIONS = "transitions"
PARAMETERS = "parameters"
# Keys of a LeRobot ``Transition`` (what ``ReplayBuffer.add`` takes)
TRANSITION_KEYS = frozenset(
    ("state", "action", "reward", "next_state", "done", "truncated", "complementary_info")
)
MAX_DEPTH = 6
_HEADER_LENGTH_BYTES = 8
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTOCOL = b"\x80"


class DecodeError(ValueError):
    """A transitions or parameters message that does not decode; the message says why."""


def _layout(value: Any, tensors: dict[str, torch.Tensor], names: dict[int, str], depth: int = 0) -> Any:
    """The JSON layout node of ``value``; its tensors are added to ``tensors`` (each object once)."""
    if depth > MAX_DEPTH:
        raise TypeError(f"nested deeper than {MAX_DEPTH}")
    if isinstance(value, torch.Tensor):
        if id(value) not in names:
            names[id(value)] = str(len(tensors))
            tensors[names[id(value)]] = value
        return {"t": names[id(value)]}
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise TypeError("dict keys must be text")
        return {"d": {key: _layout(item, tensors, names, depth + 1) for key, item in value.items()}}
    if isinstance(value, list | tuple):
        return {"l": [_layout(item, tensors, names, depth + 1) for item in value]}
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, numbers.Number) and hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"cannot send a {type(value).__name__}")


def _sendable(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous tensors of which no two share memory (safetensors refuses shared memory)."""
    seen: set[int] = set()
    out = {}
    for name, tensor in tensors.items():
        tensor = tensor.detach().to("cpu").contiguous()
        pointer = tensor.untyped_storage().data_ptr()
        if tensor.numel() and pointer in seen:
            tensor = tensor.clone()
        seen.add(pointer)
        out[name] = tensor
    return out


def encode(value: Any, kind: str) -> bytes:
    """The wire bytes of ``value``: its tensors in safetensors, the rest as JSON in the metadata.

    Args:
        value: Nested dicts (text keys), lists, tensors, numbers, booleans and None.
        kind: :data:`TRANSITIONS` or :data:`PARAMETERS`; the decoder refuses the other kind.

    Raises:
        TypeError: ``value`` holds something else (an actor-side bug, not network input).
    """
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    layout = _layout(value, tensors, {})
    metadata = {"format": FORMAT, "kind": kind, "layout": json.dumps(layout)}
    return save(_sendable(tensors), metadata=metadata)


def encode_transitions(transitions: list) -> bytes:
    """Replacement of LeRobot's ``transitions_to_bytes``."""
    return encode(list(transitions), TRANSITIONS)


def encode_parameters(state_dicts: dict) -> bytes:
    """Replacement of LeRobot's ``state_to_bytes``."""
    return encode(state_dicts, PARAMETERS)


def _what_it_is(data: bytes) -> str:
    if data.startswith(_ZIP_MAGIC) or data.startswith(_PICKLE_PROTOCOL):
        return "a torch.save/pickle payload, not safetensors: a peer running plain LeRobot?"
    return "not a safetensors message"


def read_metadata(data: bytes, max_bytes: int) -> dict[str, str]:
    """The safetensors metadata of ``data``, read from its header without touching the tensors.

    Raises:
        DecodeError: Not bytes, larger than ``max_bytes``, or no valid safetensors header.
    """
    if not isinstance(data, bytes | bytearray):
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise DecodeError(f"{len(data)} bytes, more than the limit of {max_bytes}")
    length = int.from_bytes(data[:_HEADER_LENGTH_BYTES], "little") if len(data) >= 8 else -1
    if not 0 < length <= len(data) - _HEADER_LENGTH_BYTES:
        raise DecodeError(_what_it_is(bytes(data[:8])))
    try:
        header = json.loads(bytes(data[_HEADER_LENGTH_BYTES : _HEADER_LENGTH_BYTES + length]))
    except (ValueError, RecursionError):
        raise DecodeError(_what_it_is(bytes(data[:8]))) from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise DecodeError(f"a safetensors buffer without the {FORMAT} metadata")
    return metadata


def _build(node: Any, tensors: dict[str, torch.Tensor], used: set[str], depth: int = 0) -> Any:
    """The value of a layout node; ``used`` collects the tensor names it refers to."""
    if depth > MAX_DEPTH:
        raise DecodeError(f"a layout nested deeper than {MAX_DEPTH}")
    if node is None or isinstance(node, bool | int | float):
        return node
    if not isinstance(node, dict) or len(node) != 1:
        raise DecodeError(f"a layout node of type {type(node).__name__}")
    ((tag, body),) = node.items()
    if tag == "t" and isinstance(body, str):
        if body not in tensors:
            raise DecodeError(f"the layout names a tensor {body[:32]!r} the message does not hold")
        used.add(body)
        return tensors[body]
    if tag == "d" and isinstance(body, dict):
        return {key: _build(item, tensors, used, depth + 1) for key, item in body.items()}
    if tag == "l" and isinstance(body, list):
        return [_build(item, tensors, used, depth + 1) for item in body]
    raise DecodeError(f"a layout node tagged {tag[:16]!r}")


def decode(data: bytes, kind: str, max_bytes: int) -> Any:
    """The value :func:`encode` was given, from bytes received from the network.

    Args:
        data: The bytes as received.
        kind: The kind expected (:data:`TRANSITIONS` or :data:`PARAMETERS`).
        max_bytes: Larger messages are refused before anything is parsed.

    Raises:
        DecodeError: Too large, not this format (a ``torch.save`` payload, say), another kind, a
            layout that does not parse or names missing tensors, or tensors the layout leaves out.
    """
    from safetensors.torch import load

    metadata = read_metadata(data, max_bytes)
    if metadata.get("kind") != kind:
        raise DecodeError(f"a {str(metadata.get('kind'))[:32]!r} message where {kind} were expected")
    try:
        layout = json.loads(metadata.get("layout", ""))
    except (TypeError, ValueError, RecursionError):
        raise DecodeError("a layout that is not JSON") from None
    try:
        tensors = load(bytes(data))
    except Exception as err:  # safetensors' own checks: offsets, sizes, dtypes
        raise DecodeError(
            f"safetensors refused the tensors ({type(err).__name__}: {str(err)[:120]})"
        ) from None
    used: set[str] = set()
    value = _build(layout, tensors, used)
    if used != set(tensors):
        raise DecodeError(f"{len(set(tensors) - used)} tensors the layout does not use")
    return value


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | torch.Tensor)


def check_transitions(value: Any) -> list[dict[str, Any]]:
    """``value`` if it is shaped like a list of LeRobot transitions (types only; the values are
    checked by :class:`~..learner.transitions.TransitionValidator`).

    Raises:
        DecodeError: Not a list of dicts; a key that is not a transition's; an observation that is
            not a dict of tensors; a nested container where a tensor or number belongs.
    """
    if not isinstance(value, list):
        raise DecodeError(f"transitions: a {type(value).__name__}, not a list")
    for index, transition in enumerate(value):
        if not isinstance(transition, dict):
            raise DecodeError(f"transition {index}: a {type(transition).__name__}, not a dict")
        unknown = set(transition) - TRANSITION_KEYS
        if unknown:
            raise DecodeError(f"transition {index}: unknown key {sorted(unknown)[0][:32]!r}")
        for part in ("state", "next_state"):
            observation = transition.get(part, {})
            if not isinstance(observation, dict) or not all(
                isinstance(item, torch.Tensor) for item in observation.values()
            ):
                raise DecodeError(f"transition {index}: {part} is not a dict of tensors")
        info = transition.get("complementary_info")
        if info is not None and (
            not isinstance(info, dict) or not all(_is_scalar(item) for item in info.values())
        ):
            raise DecodeError(f"transition {index}: complementary_info is not a dict of tensors and numbers")
        for name in ("action", "reward", "done", "truncated"):
            if not _is_scalar(transition.get(name)):
                raise DecodeError(f"transition {index}: {name} is a container")
    return value


def check_parameters(value: Any) -> dict[str, dict[str, torch.Tensor]]:
    """``value`` if it is shaped like LeRobot's weights message: names to state dicts of tensors.

    Raises:
        DecodeError: Anything else.
    """
    if not isinstance(value, dict):
        raise DecodeError(f"parameters: a {type(value).__name__}, not a dict")
    for name, state_dict in value.items():
        if not isinstance(state_dict, dict) or not all(
            isinstance(item, torch.Tensor) for item in state_dict.values()
        ):
            raise DecodeError(f"parameters: {name[:64]!r} is not a dict of tensors")
    return value


def decode_transitions(data: bytes, max_bytes: int) -> list[dict[str, Any]]:
    """Transitions from the network (:func:`decode` and :func:`check_transitions`)."""
    return check_transitions(decode(data, TRANSITIONS, max_bytes))


def decode_parameters(data: bytes, max_bytes: int) -> dict[str, dict[str, torch.Tensor]]:
    """Parameters from the network (:func:`decode` and :func:`check_parameters`)."""
    return check_parameters(decode(data, PARAMETERS, max_bytes))
