"""Settings of one benchmark run and how they become LeRobot's training config."""

from __future__ import annotations

import copy
import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..errors import ConfigError

METHODS = ("sac", "e2hil")
DEFAULT_CONFIG = "HIL-SERL/train_gym_hil_env_SIM.json"
# Always applied on top of the JSON: the randomised pick-cube task, and the teacher every
# benchmark figure was measured with (it watches every episode). ``make sim``'s JSON lets its
# teacher step back over training; pinning the benchmark's here keeps cached runs, whose
# fingerprint names the JSON's path and not its content, true to what they ran.
TASK_OVERRIDES = (
    "--env.random_block_position=true",
    "--env.realtime=false",
    "--env.teacher.decay_episodes=0",
    "--env.teacher.min_takeover_probability=0.0",
)


@dataclass
class Budget:
    """The per-run budget: what every run of a suite or sweep shares (``--budget.<field>`` flags).

    :class:`RunConfig` inherits these fields, so they are declared once; the presets below
    (:data:`BUDGETS`) are the defaults of each ``e2hil-bench`` command.
    """

    # Env steps of training per run
    env_steps: int = 4000
    # Learner updates (``algorithm.update()`` calls) per env step once learning has started
    updates_per_env_step: float = 0.5
    # Replay batch (online + offline halves)
    batch_size: int = 256
    # Teacher-free evaluation every this many env steps (0: only the final one)
    eval_every: int = 400
    # Episodes of each periodic evaluation
    eval_episodes: int = 10
    # Episodes of the final evaluation
    final_eval_episodes: int = 30
    # Probe the entropy change and influence of every n-th actor step (0: never)
    probe_every: int = 5
    # Online transitions before the first update; None: the JSON's policy.online_step_before_learning
    learning_starts: int | None = None
    # Extra draccus flags (``--a.b=c``) applied to the training JSON
    overrides: tuple[str, ...] = field(default_factory=tuple)

    # What an error message puts before a field's name (the flag's prefix)
    FIELD_PREFIX: ClassVar[str] = "budget"

    def __post_init__(self) -> None:
        self.overrides = tuple(self.overrides)
        for name in ("env_steps", "batch_size", "final_eval_episodes"):
            if getattr(self, name) < 1:
                _invalid(name, getattr(self, name), ">= 1", self.FIELD_PREFIX)
        for name in ("eval_every", "eval_episodes", "probe_every"):
            if getattr(self, name) < 0:
                _invalid(name, getattr(self, name), ">= 0", self.FIELD_PREFIX)
        if self.eval_every > 0 and self.eval_episodes < 1:
            _invalid("eval_episodes", self.eval_episodes, ">= 1 when eval_every > 0", self.FIELD_PREFIX)
        if not self.updates_per_env_step > 0:
            _invalid("updates_per_env_step", self.updates_per_env_step, "> 0", self.FIELD_PREFIX)
        if self.learning_starts is not None and self.learning_starts < 1:
            _invalid("learning_starts", self.learning_starts, ">= 1 or None", self.FIELD_PREFIX)

    def run(self, method: str, seed: int, config_path: str = DEFAULT_CONFIG, **e2hil: Any) -> RunConfig:
        """The :class:`RunConfig` of ``method`` and ``seed`` under this budget."""
        own = {f.name: getattr(self, f.name) for f in dataclasses.fields(Budget)}
        return RunConfig(method=method, seed=seed, config_path=config_path, **own, **e2hil)


@dataclass
class RunConfig(Budget):
    """One synchronous training run of one method with one seed: a :class:`Budget` and what varies.

    Every SAC hyperparameter (learning rates, discount, temperature, critics, ``utd_ratio``)
    comes from the JSON at ``config_path`` and is the same for both methods; ``e2hil`` adds
    its own fields (K, quantile bounds, form) from the same JSON, optionally overridden here.
    """

    # "sac" (LeRobot's SAC, the HIL-SERL baseline, built as "sac_fast") or "e2hil" (E2HiLAlgorithm)
    method: str = "e2hil"
    # Seeds python/numpy/torch, the MuJoCo env, the cube positions and the scripted teacher
    seed: int = 0
    # Monte Carlo actions per state of each entropy estimate of the probe
    entropy_samples: int = 32
    # Average the training statistics over this many updates per log record
    log_every: int = 50
    # E2HiL override of the JSON's num_action_samples (None: the JSON's value)
    num_action_samples: int | None = None
    # E2HiL override of the JSON's influence_lower_quantile (None: the JSON's value)
    influence_lower_quantile: float | None = None
    # E2HiL override of the JSON's influence_upper_quantile (None: the JSON's value)
    influence_upper_quantile: float | None = None
    # E2HiL override of the JSON's influence_form (None: the JSON's; left out of the fingerprint when None)
    influence_form: str | None = None
    # E2HiL control rule: drop a random subset of the band's size (left out of the fingerprint when False)
    random_mask: bool = False
    # Base training config (JSON)
    config_path: str = DEFAULT_CONFIG
    # torch intra-op threads (1: no OpenMP oversubscription when runs share the cores)
    threads: int = 1

    # Error messages name these fields bench.<field>
    FIELD_PREFIX: ClassVar[str] = "bench"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.method not in METHODS:
            _invalid("method", self.method, ", ".join(map(repr, METHODS)))
        for name in ("entropy_samples", "log_every", "threads"):
            if getattr(self, name) < 1:
                _invalid(name, getattr(self, name), ">= 1")
        if self.seed < 0:
            _invalid("seed", self.seed, ">= 0")
        if self.num_action_samples is not None and self.num_action_samples < 2:
            _invalid("num_action_samples", self.num_action_samples, ">= 2 or None")
        if self.influence_form is not None:
            from ..algorithm.configuration_e2hil import INFLUENCE_FORMS

            if self.influence_form not in INFLUENCE_FORMS:
                _invalid(
                    "influence_form", self.influence_form, ", ".join(map(repr, INFLUENCE_FORMS)) + " or None"
                )
        for name in ("influence_lower_quantile", "influence_upper_quantile"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                _invalid(name, value, "[0, 1] or None")
        if not isinstance(self.random_mask, bool):
            _invalid("random_mask", self.random_mask, "true, false")
        if self.method == "sac" and (
            self.random_mask
            or any(
                v is not None
                for v in (
                    self.num_action_samples,
                    self.influence_lower_quantile,
                    self.influence_upper_quantile,
                    self.influence_form,
                )
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
        if self.random_mask:
            parts.append("random_mask")
        return "_".join(parts) + f"_seed{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields (the run's fingerprint: a cached result is reused only if they match)."""
        data = dataclasses.asdict(self)
        data["overrides"] = list(self.overrides)
        if data["influence_form"] is None:
            del data["influence_form"]  # runs cached before the field existed keep their fingerprint
        if not data["random_mask"]:
            del data["random_mask"]  # likewise
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Inverse of :meth:`to_dict`."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# --- the budget of each command (one place; ``--budget.<field>`` flags override a field) ---------

# The suite's (and ``run``'s): 20k env steps at the sim default's batch (128) and one update per
# env step, about where the distributed default learns the fixed cube; 10 runs, 2 workers, under
# 2 hours on the 2-core machine (measured in docs/benchmarks.md).
DEFAULT_BUDGET = Budget(
    env_steps=20000,
    updates_per_env_step=1.0,
    batch_size=128,
    eval_every=2500,
    eval_episodes=10,
    final_eval_episodes=30,
    probe_every=5,
)
# The sweep's shorter budget: (7 variants + SAC) x 2 seeds took about 35 minutes.
SWEEP_BUDGET = Budget(
    env_steps=6000,
    updates_per_env_step=0.5,
    batch_size=256,
    eval_every=600,
    eval_episodes=5,
    final_eval_episodes=20,
    probe_every=5,
)
# The influence check's short run: fixed cube, where a few thousand env steps give a policy that
# has learned something.
INFLUENCE_BUDGET = Budget(
    env_steps=4000,
    updates_per_env_step=0.5,
    batch_size=256,
    eval_every=1000,
    eval_episodes=5,
    final_eval_episodes=10,
    probe_every=5,
    overrides=("--env.random_block_position=false",),
)
# Smoke check (``--quick=true``, tests): short episodes, tiny batches, a couple of evaluation episodes.
QUICK_BUDGET = Budget(
    env_steps=120,
    updates_per_env_step=0.25,
    batch_size=32,
    eval_every=60,
    eval_episodes=1,
    final_eval_episodes=2,
    probe_every=2,
    learning_starts=40,
    overrides=("--env.max_episode_steps=30", "--env.teacher.demo_episodes=2"),
)
# Command -> its default budget (``--quick=true``: :data:`QUICK_BUDGET` for every command)
BUDGETS: dict[str, Budget] = {
    "run": DEFAULT_BUDGET,
    "suite": DEFAULT_BUDGET,
    "sweep": SWEEP_BUDGET,
    "influence-check": INFLUENCE_BUDGET,
}


def _invalid(name: str, value: Any, allowed: str, prefix: str = "bench") -> None:
    raise ConfigError(f"{prefix}.{name}={value!r} is invalid; allowed values: {allowed}")


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

    from ..algorithm.configuration_e2hil import E2HiLAlgorithmConfig
    from ..algorithm.sac_fast import SACFastAlgorithmConfig

    sac_names = [
        f.name for f in dataclasses.fields(SACAlgorithmConfig) if f.init and f.name != "policy_config"
    ]
    common = {name: getattr(base, name) for name in sac_names} if base is not None else {}
    if run.method == "sac":
        return SACFastAlgorithmConfig(**common, fast_update=getattr(base, "fast_update", True))
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
    if run.random_mask:
        extra["random_mask"] = True
    return E2HiLAlgorithmConfig(**common, **extra)
