"""Setup checks that turn LeRobot's late tracebacks into one-paragraph errors at start-up."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from lerobot.utils.constants import ACTION

from ..errors import ConfigError
from .entry import SetupError

PORT_FIELD = "policy.actor_learner_config.learner_port"


def check_algorithm_type(args: list[str]) -> None:
    """Fail early, listing the allowed values, when the config file names an unknown algorithm.

    An unknown ``--algorithm.type`` flag already gets argparse's "invalid choice" message; an
    unknown ``"algorithm": {"type": ...}`` in the JSON file gets only draccus' "could not decode".

    Args:
        args: The command line without the program name.

    Raises:
        ConfigError: Naming the value, the file and the registered algorithm types.
    """
    from lerobot.configs import parser
    from lerobot.rl.algorithms.configs import RLAlgorithmConfig

    path = parser.parse_arg("config_path", args)
    if path is None or parser.parse_arg("algorithm.type", args) is not None:
        return
    try:
        block = json.loads(Path(path).read_text()).get("algorithm")
    except (OSError, ValueError, AttributeError):
        return  # not a readable JSON file: LeRobot's parser reports it
    name = block.get("type") if isinstance(block, dict) else None
    known = sorted(RLAlgorithmConfig.get_known_choices())
    if name is not None and name not in known:
        raise ConfigError(
            f"algorithm.type={name!r} in {path} is not a known RL algorithm; allowed values: "
            f"{', '.join(map(repr, known))}"
        )


def check_features(cfg: Any) -> None:
    """Fail when the policy's declared features do not match what the env produces.

    A config may list ``policy.input_features`` / ``output_features`` explicitly (the SO101
    configs do); LeRobot then uses them as written, and a mismatch with the env shows up only
    later, as a shape or key error deep inside the policy or the replay buffer. Features that
    the config leaves empty are derived from the env and always match.

    Args:
        cfg: A ``TrainRLServerPipelineConfig`` with ``env`` and ``policy`` set.

    Raises:
        ConfigError: Naming the first mismatching feature, its shape and the env's.
    """
    from lerobot.envs import env_to_policy_features

    if cfg.env is None or cfg.policy is None or not getattr(cfg.env, "features", None):
        return
    env = env_to_policy_features(cfg.env)
    declared = {**(cfg.policy.input_features or {}), **(cfg.policy.output_features or {})}
    for key, feature in declared.items():
        field = "output_features" if key == ACTION else "input_features"
        if key not in env:
            raise ConfigError(
                f"policy.{field}[{key!r}] is not produced by the env (env.type={cfg.env.type!r}); "
                f"the env gives {sorted(env)}. Remove policy.input_features/output_features from the "
                "config to derive them from the env, or rename the feature."
            )
        if tuple(feature.shape) != tuple(env[key].shape):
            raise ConfigError(
                f"policy.{field}[{key!r}] has shape {tuple(feature.shape)} but the env "
                f"(env.type={cfg.env.type!r}) gives {tuple(env[key].shape)}. Make the policy's "
                "shape match the env (or remove policy.input_features/output_features to derive them)."
            )


def check_observation(observation: dict[str, Any], policy_cfg: Any) -> None:
    """Fail when a live observation lacks a policy input or has another shape.

    Args:
        observation: The processed observation of the env's first reset (key -> tensor).
        policy_cfg: The policy config, features set.

    Raises:
        SetupError: Naming the feature, the expected and the actual shape.
    """
    for key, feature in policy_cfg.input_features.items():
        value = observation.get(key)
        if value is None:
            raise SetupError(
                f"the env's observation has no {key!r}, which policy.input_features needs; it has "
                f"{sorted(observation)}. Fix the env's features/processor or the policy's input_features."
            )
        shape = tuple(feature.shape)
        actual = tuple(value.shape)
        if actual not in (shape, (1, *shape)):
            raise SetupError(
                f"the env's observation {key!r} has shape {actual} but policy.input_features says "
                f"{shape}. Fix the env (cameras, crop/resize, robot) or the policy's input_features."
            )


def check_port_free(host: str, port: int) -> None:
    """Fail when the learner's gRPC port cannot be bound (another learner still listening...).

    gRPC binds with ``SO_REUSEPORT``, so a second learner on the same port would share the
    actors' connections with the first instead of failing; this plain bind refuses that.

    Raises:
        SetupError: Naming the port, the reason and the flag to change it.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as err:
        raise SetupError(
            f"the learner cannot listen on {host}:{port} ({err.strerror or err}): another learner or "
            f"program is using that port, or the host is not an address of this machine. Stop the other "
            f"process, or choose another port with --{PORT_FIELD}=<port> and give the actor the same value."
        ) from None
