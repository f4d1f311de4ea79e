"""Settings of one benchmark run and how they become LeRobot's training config."""

from __future__ import annotations

import copy
import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

METHODS = ("sac", "e2hil")
DEFAULT_CONFIG = "HIL-SERL/train_gym_hil_env_SIM.json"
# Always applied on top of the JSON: the randomised pick-cube task.
TASK_OVERRIDES = ("--env.random_block_position=true", "--env.realtime=false")


@dataclass
class RunConfig:
    """One synchronous training run of one method with one seed.

    Every SAC hyperparameter (learning rates, discount, temperature, critics, ``utd_ratio``)
    comes from the JSON at ``config_path`` and is the same for both methods; ``e2hil`` adds
    its own fields (K, quantile bounds, form) from the same JSON, optionally overridden here.
    """

    # "sac" (LeRobot's SACAlgorithm, the HIL-SERL baseline) or "e2hil" (E2HiLAlgorithm)
    method: str = "e2hil"
    # Seeds python/numpy/torch, the MuJoCo env, the cube positions and the scripted teacher
    seed: int = 0
    # Env steps of training (the budget)
    env_steps: int = 4000
    # Learner updates (``algorithm.update()`` calls) per env step once learning has started
    updates_per_env_step: float = 0.5
    # Replay batch (online + offline halves)
    batch_size: int = 256
    # Online transitions before the first update; None: the JSON's policy.online_step_before_learning
    learning_starts: int | None = None
    # Teacher-free evaluation every this many env steps (0: only the final one)
    eval_every: int = 400
    # Episodes of each periodic evaluation
    eval_episodes: int = 10
    # Episodes of the final evaluation
    final_eval_episodes: int = 30
    # Probe the entropy change and influence of every n-th actor step (0: never)
    probe_every: int = 5
    # Monte Carlo actions per state of each entropy estimate of the probe
    entropy_samples: int = 32
    # Average the training statistics over this many updates per log record
    log_every: int = 50
    # E2HiL overrides of the JSON (None: the JSON's value)
    num_action_samples: int | None = None
    influence_lower_quantile: float | None = None
    influence_upper_quantile: float | None = None
    # E2HiL override of the JSON's influence_form (None: the JSON's; left out of the fingerprint when None)
    influence_form: str | None = None
    # Base training config and extra draccus flags (``--a.b=c``) applied to it
    config_path: str = DEFAULT_CONFIG
    overrides: tuple[str, ...] = field(default_factory=tuple)
    # torch intra-op threads (1: no OpenMP oversubscription when runs share the cores)
    threads: int = 1

    def __post_init__(self) -> None:
        self.overrides = tuple(self.overrides)
        if self.method not in METHODS:
            _invalid("method", self.method, ", ".join(map(repr, METHODS)))
        for name in (
            "env_steps",
            "batch_size",
            "final_eval_episodes",
            "entropy_samples",
            "log_every",
            "threads",
        ):
            if getattr(self, name) < 1:
                _invalid(name, getattr(self, name), ">= 1")
        for name in ("eval_every", "eval_episodes", "probe_every", "seed"):
            if getattr(self, name) < 0:
                _invalid(name, getattr(self, name), ">= 0")
        if self.eval_every > 0 and self.eval_episodes < 1:
            _invalid("eval_episodes", self.eval_episodes, ">= 1 when eval_every > 0")
        if not self.updates_per_env_step > 0:
            _invalid("updates_per_env_step", self.updates_per_env_step, "> 0")
        if self.learning_starts is not None and self.learning_starts < 1:
            _invalid("learning_starts", self.learning_starts, ">= 1 or None")
        if self.num_action_samples is not None and self.num_action_samples < 2:
            _invalid("num_action_samples", self.num_action_samples, ">= 2 or None")
        if self.influence_form is not None:
            from ..configuration_e2hil import INFLUENCE_FORMS

            if self.influence_form not in INFLUENCE_FORMS:
                _invalid(
                    "influence_form", self.influence_form, ", ".join(map(repr, INFLUENCE_FORMS)) + " or None"
                )
        for name in ("influence_lower_quantile", "influence_upper_quantile"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                _invalid(name, value, "[0, 1] or None")
        if self.method == "sac" and any(
            v is not None
            for v in (
                self.num_action_samples,
                self.influence_lower_quantile,
                self.influence_upper_quantile,
                self.influence_form,
            )
        ):
            _invalid("method", self.method, "'e2hil' when an E2HiL field is overridden")

    @property
    def name(self) -> str:
        """Directory name of the run, e.g. ``e2hil_seed3`` or ``e2hil_K16_seed0``."""
        parts = [self.method]
        if self.num_action_samples is not None:
            parts.append(f"K{self.num_action_samples}")
        if self.influence_lower_quantile is not None:
            parts.append(f"lo{self.influence_lower_quantile:g}")
        if self.influence_upper_quantile is not None:
            parts.append(f"up{self.influence_upper_quantile:g}")
        if self.influence_form is not None:
            parts.append(self.influence_form)
        return "_".join(parts) + f"_seed{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields (the run's fingerprint: a cached result is reused only if they match)."""
        data = dataclasses.asdict(self)
        data["overrides"] = list(self.overrides)
        if data["influence_form"] is None:
            del data["influence_form"]  # runs cached before the field existed keep their fingerprint
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Inverse of :meth:`to_dict`."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _invalid(name: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"bench.{name}={value!r} is invalid; allowed values: {allowed}")


def pipeline_args(run: RunConfig) -> list[str]:
    """The draccus flags that turn the JSON into this run's config, except the seeds."""
    return [*TASK_OVERRIDES, f"--batch_size={run.batch_size}", *run.overrides]


@functools.lru_cache(maxsize=8)
def _parse(path: str, args: tuple[str, ...]) -> Any:
    """draccus' parse (seconds: it reads every field's docstring), cached per process."""
    import draccus
    from lerobot.rl.train_rl import TrainRLServerPipelineConfig

    return draccus.parse(TrainRLServerPipelineConfig, config_path=path, args=list(args))


def load_pipeline_config(run: RunConfig, root: Path | None = None) -> Any:
    """LeRobot's ``TrainRLServerPipelineConfig`` for ``run``, with its method's algorithm config.

    The JSON plus :func:`pipeline_args` is parsed once per process; each run gets a copy with
    its seed in ``seed``, ``env.env_seed`` and ``env.teacher.seed``, and the ``e2hil_sim`` gym id
    is registered again with the copy's env options (what parsing does), so the env must be
    built after this call.

    Args:
        run: The run.
        root: Directory that a relative ``config_path`` is resolved against (default: cwd).
    """
    from ..sim.env import register_sim_env

    path = Path(run.config_path)
    if not path.is_absolute() and root is not None:
        path = root / path
    if not path.exists():
        raise ConfigError(
            f"bench.config_path={str(path)!r} is invalid; allowed values: an existing JSON file"
        )
    cfg = copy.deepcopy(_parse(str(path.resolve()), tuple(pipeline_args(run))))
    cfg.seed = run.seed
    if not hasattr(cfg.env, "teacher"):
        raise ConfigError(
            f"bench.config_path={str(path)!r} is invalid; allowed values: a config with env.type 'e2hil_sim'"
        )
    cfg.env.env_seed = run.seed
    cfg.env.teacher.seed = run.seed
    register_sim_env(cfg.env.sim_options(teacher=True))
    cfg.algorithm = method_algorithm_config(cfg.algorithm, run)
    cfg.algorithm.policy_config = cfg.policy
    return cfg


def method_algorithm_config(base: Any, run: RunConfig) -> Any:
    """The algorithm config of ``run.method`` with every SAC field taken from ``base``.

    Args:
        base: The JSON's algorithm config (``sac`` or ``e2hil``), or None for SAC defaults.
        run: Gives the method and the E2HiL overrides.
    """
    from lerobot.rl.algorithms.sac import SACAlgorithmConfig

    from ..configuration_e2hil import E2HiLAlgorithmConfig

    sac_names = [
        f.name for f in dataclasses.fields(SACAlgorithmConfig) if f.init and f.name != "policy_config"
    ]
    common = {name: getattr(base, name) for name in sac_names} if base is not None else {}
    if run.method == "sac":
        return SACAlgorithmConfig(**common)
    e2hil_names = [
        f.name
        for f in dataclasses.fields(E2HiLAlgorithmConfig)
        if f.init and f.name not in sac_names and f.name != "policy_config"
    ]
    extra = {name: getattr(base, name) for name in e2hil_names if hasattr(base, name)}
    for name in (
        "num_action_samples",
        "influence_lower_quantile",
        "influence_upper_quantile",
        "influence_form",
    ):
        if getattr(run, name) is not None:
            extra[name] = getattr(run, name)
    return E2HiLAlgorithmConfig(**common, **extra)
