"""Setup checks that turn LeRobot's late tracebacks into one-paragraph errors at start-up."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lerobot.utils.constants import ACTION

from .errors import ConfigError, SetupError

PORT_FIELD = "policy.actor_learner_config.learner_port"

# (field, test, allowed values) of every budget and size the learner or actor loops on; a value
# outside them hangs a loop (batch_size <= 0, online_steps <= 0) or crashes it late (save_freq 0).
_LIMITS: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("policy.online_steps", lambda v: v >= 1, ">= 1"),
    ("policy.online_step_before_learning", lambda v: v >= 0, ">= 0"),
    ("batch_size", lambda v: v >= 1, ">= 1"),
    ("log_freq", lambda v: v >= 1, ">= 1"),
    ("save_freq", lambda v: v >= 1, ">= 1"),
    ("online_ratio", lambda v: 0.0 <= v <= 1.0, "[0, 1]"),
    ("policy.online_buffer_capacity", lambda v: v >= 1, ">= 1"),
    ("policy.offline_buffer_capacity", lambda v: v >= 1, ">= 1"),
    ("policy.actor_learner_config.learner_port", lambda v: 1 <= v <= 65535, "1 to 65535"),
    ("policy.actor_learner_config.queue_get_timeout", lambda v: v > 0, "> 0"),
    ("policy.actor_learner_config.policy_parameters_push_frequency", lambda v: v >= 0, ">= 0"),
    ("algorithm.utd_ratio", lambda v: v >= 1, ">= 1"),
    ("env.fps", lambda v: v >= 1, ">= 1"),
    ("env.launch.eval_episodes", lambda v: v >= 0, ">= 0"),
    ("env.launch.summary_window", lambda v: v >= 1, ">= 1"),
    ("env.launch.progress_interval_s", lambda v: v > 0, "> 0"),
    ("env.launch.stop_timeout_s", lambda v: v > 0, "> 0"),
)
ROLES = ("learner", "actor")


def _field(cfg: Any, path: str) -> Any:
    for name in path.split("."):
        cfg = getattr(cfg, name, None)
    return cfg


def check_budgets(cfg: Any, role: str = "learner") -> None:
    """Fail at parse time on a budget or size the learner or actor cannot run with.

    The one place every entry point (``e2hil-learner``, ``e2hil-actor``, ``e2hil-sim`` and the
    sim's learner/actor) validates them, through :func:`check_config`. Without it a zero or
    negative ``policy.online_steps`` or ``batch_size`` hangs a loop silently.

    Args:
        cfg: A parsed ``TrainRLServerPipelineConfig``; fields it lacks (no ``env.launch``...) are skipped.
        role: ``"learner"`` (also the launcher) or ``"actor"``. The actor alone does not need
            ``online_steps > online_step_before_learning``: a resumed actor runs only the steps left.

    Raises:
        ConfigError: Naming the first invalid field, its value, the allowed values and the flag to set.
    """
    for path, valid, allowed in _LIMITS:
        value = _field(cfg, path)
        if value is not None and not isinstance(value, bool) and not valid(value):
            raise ConfigError(
                f"{path}={value!r} is invalid; allowed values: {allowed}. Set --{path}=<value>."
            )
    steps, before = _field(cfg, "policy.online_steps"), _field(cfg, "policy.online_step_before_learning")
    if role == "learner" and steps is not None and before is not None and steps <= before:
        raise ConfigError(
            f"policy.online_steps={steps} is invalid; allowed values: > policy.online_step_before_learning "
            f"(={before}), or the learner never trains. Raise --policy.online_steps or lower "
            "--policy.online_step_before_learning."
        )


def check_config(cfg: Any, role: str = "learner") -> None:
    """Every parse-time check of a learner's or actor's config: budgets and sizes, then features.

    Args:
        cfg: A parsed ``TrainRLServerPipelineConfig``.
        role: One of :data:`ROLES` (see :func:`check_budgets`).

    Raises:
        ConfigError: The first problem, naming the field and the allowed values.
    """
    check_budgets(cfg, role)
    check_features(cfg)


#: Environment variables that once changed what was computed, and the config field that does it now.
RETIRED_SWITCHES = {"LEROBOT_E2HIL_FAST_UPDATE": "algorithm.fast_update"}


def check_retired_switches(environ: dict[str, str] | None = None) -> None:
    """Refuse an environment variable that no longer switches anything, naming the field that does.

    Args:
        environ: The environment to check (None: this process's).

    Raises:
        ConfigError: When one of :data:`RETIRED_SWITCHES` is set.
    """
    environ = os.environ if environ is None else environ
    for name, field in RETIRED_SWITCHES.items():
        if name in environ:
            raise ConfigError(
                f"{name}={environ[name]} is no longer read; the switch is the config field {field} "
                f"(allowed values: true, false), saved with the run. Unset {name} and set --{field}"
            )


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


def check_output_dir(cfg: Any, role: str) -> None:
    """Refuse, in one line, an output folder that LeRobot's ``validate`` would refuse with a traceback.

    Args:
        cfg: The learner's or actor's ``TrainRLServerPipelineConfig``.
        role: ``"learner"`` or ``"actor"``, for the fix.

    Raises:
        SetupError: ``output_dir`` exists and ``resume`` is false.
    """
    from pathlib import Path

    if cfg.resume or not cfg.output_dir or not Path(cfg.output_dir).is_dir():
        return
    resume = (
        " or, to continue the learner's run from its checkpoints, add --resume=true"
        if role == "learner"
        else ""
    )
    raise SetupError(
        f"output_dir={str(cfg.output_dir)!r} already exists (an earlier run left it) and resume=false. "
        f"Give a new --output_dir, remove that folder{resume}"
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


def _listening_inodes(port: int) -> set[str] | None:
    """Socket inodes listening on TCP ``port`` (Linux ``/proc/net``); None where that is unavailable."""
    inodes, readable = set(), False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        readable = True
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes if readable else None


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux ``/proc/<pid>/task/*/children``)."""
    tree, index = [pid], 0
    while index < len(tree):
        for task in Path(f"/proc/{tree[index]}/task").glob("*/children"):
            try:
                tree.extend(int(child) for child in task.read_text().split())
            except (OSError, ValueError):
                continue
        index += 1
    return tree


def listens_on(pid: int, port: int) -> bool | None:
    """Whether process ``pid`` (or one of its children) holds a socket listening on TCP ``port``.

    Tells our learner from another program on the same port, which a connection test cannot.

    Returns:
        True or False; None where the operating system does not say (no ``/proc``).
    """
    inodes = _listening_inodes(port)
    if inodes is None:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for process in _process_tree(pid):
        try:
            descriptors = os.listdir(f"/proc/{process}/fd")
        except OSError:
            continue
        for descriptor in descriptors:
            try:
                if os.readlink(f"/proc/{process}/fd/{descriptor}") in wanted:
                    return True
            except OSError:
                continue
    return False
