"""``e2hil-bench``: one run, the variants x seeds suite, the sensitivity sweep, or the influence check.

    e2hil-bench run --method=e2hil --seed=0                 # one run with a progress bar
    e2hil-bench suite [--seeds=5] [--variants=sac,e2hil]    # runs + docs/benchmarks/suite.*
    e2hil-bench sweep [--seeds=3]                           # runs + docs/benchmarks/sweep.*
    e2hil-bench influence-check [--snapshot=PATH]           # docs/benchmarks/influence_check.*

Flags are draccus' (``--field=value``, dotted for nested fields), as in LeRobot's commands:

* ``--config_path=<JSON>``: the training config every run starts from (default
  ``HIL-SERL/train_gym_hil_env_SIM.json``);
* ``--budget.<field>=<value>``: a field of :class:`.config.Budget`; the others keep the
  command's budget (:data:`.config.BUDGETS`), or :data:`.config.QUICK_BUDGET` with ``--quick=true``;
* ``--env.*``, ``--policy.*``, ``--algorithm.*``, ``--dataset.*``: draccus flags for the training
  JSON of every run (appended to the budget's ``overrides``).

Finished runs are cached in ``--runs_dir`` (default ``outputs/bench/<command>_runs``) and reused
when their config matches, so an interrupted suite resumes and ``--report_only=true`` rebuilds
the report without training. ``suite`` and ``sweep`` train on this machine (``--workers`` at a
time) or, with ``--executor=ray [--ray.address=auto]``, as the tasks of a Ray cluster
(:mod:`.executors`); both write the same run directories and records. ``e2hil-bench <command>
--help`` lists every flag.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EXIT_SETUP, ConfigError, one_line
from .config import BUDGETS, DEFAULT_CONFIG, METHODS, QUICK_BUDGET, Budget, RunConfig

QUICK_DIR = Path("outputs/bench/quick")
# Exit status of a suite or sweep in which a run failed (the others finished)
EXIT_RUNS_FAILED = 1
# Flags that go to the training JSON of every run rather than to the command
TRAIN_FLAG_PREFIXES = ("--env.", "--policy.", "--algorithm.", "--dataset.")
CONFIG_FLAG = "--config_path"
HELP_FLAGS = (
    "Flags: --config_path=<training JSON>; --budget.<field>=<value> replaces one field of the command's "
    "budget; --env.*, --policy.*, --algorithm.*, --dataset.* flags go to the training JSON of every run."
)


def _invalid(name: str, value: object, allowed: str) -> None:
    raise ConfigError(f"{name}={value!r} is invalid; allowed values: {allowed}")


@dataclass
class _Common:
    # Smoke check: the tiny budget (seconds per run) and outputs under outputs/bench/quick/
    quick: bool = False
    # Budget of every run: the fields not given keep the command's (the defaults shown; --quick=true: the smoke check's)
    budget: Budget = field(default_factory=Budget)


@dataclass
class RunCommand(_Common):
    """One synchronous training run with a progress bar."""

    # "sac" (HIL-SERL, LeRobot's SAC) or "e2hil"
    method: str = "e2hil"
    # Seeds the run (weights, env, cube positions, teacher)
    seed: int = 0
    # E2HiL override of the JSON's algorithm.num_action_samples (None: the JSON's)
    num_action_samples: int | None = None
    # E2HiL override of the JSON's algorithm.influence_lower_quantile (None: the JSON's)
    influence_lower_quantile: float | None = None
    # E2HiL override of the JSON's algorithm.influence_upper_quantile (None: the JSON's)
    influence_upper_quantile: float | None = None
    # E2HiL override of the JSON's algorithm.influence_form (None: the JSON's)
    influence_form: str | None = None
    # Where result.json goes (None: <runs cache>/<run name>)
    output_dir: str | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            _invalid("method", self.method, ", ".join(map(repr, METHODS)))
        if self.seed < 0:
            _invalid("seed", self.seed, ">= 0")


@dataclass
class RayOptions:
    """The Ray cluster of ``--executor=ray``."""

    # Address of a running cluster ("auto": the one `ray start --head` started on this machine); None: start a local Ray with this machine's CPUs
    address: str | None = None


@dataclass
class _ManyRuns(_Common):
    # Seeds per variant (None: 5 for suite, 3 for sweep, 2 with --quick=true)
    seeds: int | None = None
    # First seed; the runs use first_seed .. first_seed + seeds - 1
    first_seed: int = 0
    # Runs trained at once by the local executor, one torch thread each (1: in this process)
    workers: int = 2
    # Where the runs train: "local" (processes on this machine, --workers at a time) or "ray" (one task per run on a Ray cluster, --ray.address)
    executor: str = "local"
    # The Ray cluster (--executor=ray)
    ray: RayOptions = field(default_factory=RayOptions)
    # Run cache (None: outputs/bench/<command>_runs, or outputs/bench/quick/runs with --quick=true)
    runs_dir: str | None = None
    # Report files (None: docs/benchmarks, or outputs/bench/quick/report with --quick=true)
    report_dir: str | None = None
    # Finished runs' records, small JSON to commit; a run whose record matches is not trained (None: <report_dir>/records)
    records_dir: str | None = None
    # Retrain runs even if cached
    force: bool = False
    # Rebuild the report from the cached runs without training
    report_only: bool = False

    def __post_init__(self) -> None:
        if self.seeds is not None and self.seeds < 1:
            _invalid("seeds", self.seeds, ">= 1")
        if self.first_seed < 0:
            _invalid("first_seed", self.first_seed, ">= 0")
        if self.workers < 1:
            _invalid("workers", self.workers, ">= 1")
        from .executors import EXECUTORS

        if self.executor not in EXECUTORS:
            _invalid("executor", self.executor, ", ".join(map(repr, EXECUTORS)))
        if self.executor != "ray" and self.ray.address is not None:
            _invalid("ray.address", self.ray.address, "unset, or an address with --executor=ray")
        if self.executor == "ray" and importlib.util.find_spec("ray") is None:
            _invalid(
                "executor", self.executor, "'local', or 'ray' once Ray is installed (pip install -e '.[ray]')"
            )


@dataclass
class SuiteCommand(_ManyRuns):
    """Variants x seeds at one budget, and the report (suite.{md,json}, PNGs)."""

    # Comma-separated variants on the same seeds: sac (the baseline, required), e2hil, e2hil_first_order, random_mask
    variants: str = "sac,e2hil"

    def __post_init__(self) -> None:
        from .runs import parse_variants

        super().__post_init__()
        parse_variants(self.variants)


@dataclass
class SweepCommand(_ManyRuns):
    """E2HiL quantile-bound and K variants and SAC on the same seeds, and the report (sweep.{md,json,png})."""


@dataclass
class InfluenceCheckCommand(_Common):
    """Predicted vs measured entropy change of each influence form, after a short run."""

    # Seeds the short run and the check
    seed: int = 0
    # influence_form the short run trains with
    influence_form: str = "first_order"
    # One-sample steps measured
    samples: int = 128
    # Noise draws per state of each entropy estimate
    entropy_samples: int = 64
    # Reuse the policy of an earlier check (its snapshot.pt) instead of training
    snapshot: str | None = None
    # Where snapshot.pt goes (None: outputs/bench/influence_check_runs/<run name>)
    run_dir: str | None = None
    # Report files (None: docs/benchmarks, or outputs/bench/quick/report with --quick=true)
    report_dir: str | None = None

    def __post_init__(self) -> None:
        from ..algorithm.configuration_e2hil import INFLUENCE_FORMS
        from .influence_check import CheckSettings

        if self.influence_form not in INFLUENCE_FORMS:
            _invalid("influence_form", self.influence_form, ", ".join(map(repr, INFLUENCE_FORMS)))
        CheckSettings(samples=self.samples, entropy_samples=self.entropy_samples, seed=self.seed)


COMMANDS: dict[str, type[_Common]] = {
    "run": RunCommand,
    "suite": SuiteCommand,
    "sweep": SweepCommand,
    "influence-check": InfluenceCheckCommand,
}


# --- parsing ---------------------------------------------------------------------------------


@dataclass
class Invocation:
    """A parsed ``e2hil-bench`` command line."""

    # The command (a COMMANDS key)
    name: str
    # Its flags
    command: _Common
    # The budget of its runs: the command's, with the flags' fields and training-JSON flags
    budget: Budget
    # The training JSON
    config_path: str


def split_args(args: list[str]) -> tuple[str, list[str], list[str]]:
    """Split a command's flags into the JSON path, its own flags and the training JSON's flags.

    ``--flag value`` pairs are joined into ``--flag=value`` first.

    Returns:
        ``(config_path, own, train)``.
    """
    joined, i = [], 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--") and "=" not in arg and i + 1 < len(args) and not args[i + 1].startswith("--"):
            arg = f"{arg}={args[i + 1]}"
            i += 1
        joined.append(arg)
        i += 1
    config_path = DEFAULT_CONFIG
    own, train = [], []
    for arg in joined:
        if arg.startswith(CONFIG_FLAG + "="):
            config_path = arg.split("=", 1)[1]
        elif arg.startswith(TRAIN_FLAG_PREFIXES):
            train.append(arg)
        else:
            own.append(arg)
    return config_path, own, train


def _given(own: list[str], prefix: str) -> set[str]:
    """Names of the ``--<prefix>.<name>`` flags present in ``own``."""
    start = f"--{prefix}."
    return {a[len(start) :].split("=", 1)[0] for a in own if a.startswith(start)}


def command_budget(name: str, command: _Common, own: list[str], train: list[str]) -> Budget:
    """The command's budget with the fields its ``--budget.*`` flags set and the training-JSON flags.

    Args:
        name: The command.
        command: Its parsed flags (``command.budget`` holds the values of the fields that were given).
        own: Its flags, to tell which budget fields were given.
        train: Flags for the training JSON, appended to the budget's overrides.
    """
    base = QUICK_BUDGET if command.quick else BUDGETS[name]
    given = _given(own, "budget") & {f.name for f in dataclasses.fields(Budget)}
    changes = {n: getattr(command.budget, n) for n in given}
    overrides = tuple(changes.pop("overrides", base.overrides)) + tuple(train)
    return dataclasses.replace(base, **changes, overrides=overrides)


def _parser(name: str, args: list[str]):
    """draccus' parser of ``name``, whose help shows that command's budget as the defaults."""
    from draccus.argparsing import ArgumentParser

    cls = COMMANDS[name]
    parser = ArgumentParser(
        cls, prog=f"e2hil-bench {name}", description=f"{cls.__doc__} {HELP_FLAGS}", exit_on_error=False
    )
    preset = QUICK_BUDGET if any(a in ("--quick=true", "--quick=True") for a in args) else BUDGETS[name]
    for action in parser.parser._actions:
        if action.dest == "config_path":
            action.help, action.default = "training JSON every run starts from", DEFAULT_CONFIG
        elif action.dest.startswith("budget.") and hasattr(preset, action.dest[len("budget.") :]):
            action.default = getattr(preset, action.dest[len("budget.") :])
    return parser


def parse(argv: list[str]) -> Invocation:
    """Parse an ``e2hil-bench`` command line (without the program name).

    Raises:
        ConfigError: An unknown command or a bad value (the message names the flag).
        SystemExit: ``--help`` (status 0).
    """
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        raise SystemExit(0 if argv else EXIT_SETUP)
    name = argv[0]
    if name not in COMMANDS:
        _invalid("command", name, ", ".join(COMMANDS))
    if any(a in ("-h", "--help") for a in argv[1:]):
        _parser(name, argv[1:]).parse_args(["--help"])
    config_path, own, train = split_args(argv[1:])
    if not (_root(config_path) / config_path).is_file():
        _invalid(
            "config_path", config_path, "an existing JSON file (relative: to the cwd or the source checkout)"
        )
    whole = [a for a in own if a.startswith("--budget=")]
    if whole:
        _invalid("budget", whole[0].split("=", 1)[1], "--budget.<field>=<value> flags (one per field)")
    command = _parser(name, own).parse_args(own)
    return Invocation(name, command, command_budget(name, command, own, train), config_path)


# --- running ---------------------------------------------------------------------------------


def _root(config: str) -> Path:
    """Directory the relative config path is resolved against: cwd, else the source checkout."""
    if Path(config).is_absolute() or (Path.cwd() / config).exists():
        return Path.cwd()
    return Path(__file__).resolve().parents[3]


def _default_runs_dir(inv: Invocation) -> Path:
    """``outputs/bench/<command>_runs`` (``outputs/bench/quick/runs`` with ``--quick=true``)."""
    return QUICK_DIR / "runs" if inv.command.quick else Path("outputs/bench") / f"{inv.name}_runs"


def _report_dir(inv: Invocation) -> Path:
    given = getattr(inv.command, "report_dir", None)
    if given is not None:
        return Path(given)
    return QUICK_DIR / "report" if inv.command.quick else Path("docs/benchmarks")


def _recorded(argv: list[str]) -> str:
    """The command line a report records (``--report_only`` left out: the same command rebuilds it)."""
    kept = [a for a in argv if not a.startswith("--report_only")]
    return "e2hil-bench " + " ".join(shlex.quote(a) for a in kept)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``e2hil-bench``; a bad flag prints one ``error:`` line and returns 2."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        inv = parse(argv)
        import lerobot_policy_e2hil  # noqa: F401  (registers e2hil and e2hil_sim)

        from ..setup_checks import check_retired_switches

        check_retired_switches()

        if inv.name == "run":
            return _run(inv)
        if inv.name == "influence-check":
            return _influence_check(inv, argv)
        return _many(inv, argv)
    except ConfigError as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return EXIT_SETUP
    except Exception as err:  # draccus' own parse errors (type, unknown flag)
        from draccus.utils import DraccusException

        if isinstance(err, DraccusException) or type(err).__name__ == "ArgumentError":
            print(f"error: {one_line(err)}. See e2hil-bench {argv[0]} --help.", file=sys.stderr)
            return EXIT_SETUP
        raise


# E2HiL fields of RunConfig that ``run`` takes as flags
RUN_E2HIL_FIELDS = (
    "num_action_samples",
    "influence_lower_quantile",
    "influence_upper_quantile",
    "influence_form",
)


def seeds_of(inv: Invocation) -> int:
    """Seeds per variant of a suite or sweep (default 5 and 3; 2 with ``--quick=true``)."""
    seeds = getattr(inv.command, "seeds", None)
    return seeds or (2 if inv.command.quick else (5 if inv.name == "suite" else 3))


def runs_of(inv: Invocation) -> list[RunConfig]:
    """The runs that ``run``, ``suite`` or ``sweep`` trains (or finds in its cache)."""
    from . import runs

    cmd = inv.command
    if isinstance(cmd, RunCommand):
        e2hil = {f: getattr(cmd, f) for f in RUN_E2HIL_FIELDS if getattr(cmd, f) is not None}
        return [inv.budget.run(cmd.method, cmd.seed, inv.config_path, **e2hil)]
    if isinstance(cmd, SuiteCommand):
        variants = runs.parse_variants(cmd.variants)
        return runs.suite_runs(inv.budget, seeds_of(inv), inv.config_path, cmd.first_seed, variants)
    if isinstance(cmd, SweepCommand):
        rows = runs.sweep_runs(inv.budget, seeds_of(inv), inv.config_path, cmd.first_seed)
        return [run for _, row in rows for run in row]
    raise ValueError(f"{inv.name} has no list of runs")


def _run(inv: Invocation) -> int:
    from .trainer import train_run

    cmd: RunCommand = inv.command  # type: ignore[assignment]
    (run,) = runs_of(inv)
    out_dir = Path(cmd.output_dir) if cmd.output_dir else _default_runs_dir(inv) / run.name
    train_run(run, out_dir=out_dir, root=_root(inv.config_path), progress=True)
    print(f"result: {out_dir / 'result.json'}")
    return 0


def _many(inv: Invocation, argv: list[str]) -> int:
    from . import report, runs

    cmd: _ManyRuns = inv.command  # type: ignore[assignment]
    runs_dir = Path(cmd.runs_dir) if cmd.runs_dir else _default_runs_dir(inv)
    report_dir, root = _report_dir(inv), _root(inv.config_path)
    records_dir = Path(cmd.records_dir) if cmd.records_dir else report_dir / "records"
    timing = None
    if not cmd.report_only:
        from .executors import make_executor

        start = time.perf_counter()
        executor = make_executor(cmd.executor, cmd.workers, cmd.ray.address)
        timing = runs.execute(
            runs_of(inv),
            runs_dir,
            workers=cmd.workers,
            root=root,
            force=cmd.force,
            records_dir=records_dir,
            executor=executor,
        )
        timing["wall_s"] = time.perf_counter() - start
        if timing.get("failed"):
            failed = timing["failed"]
            names = ", ".join(f"{name} ({cause}; log: {where})" for name, (cause, where) in failed.items())
            print(
                f"error: {len(failed)} of {timing['trained'] + len(failed)} runs to train failed: {names}. "
                "The finished runs are kept; the same command trains only what is missing.",
                file=sys.stderr,
            )
            return EXIT_RUNS_FAILED
    common = (inv.budget, seeds_of(inv), runs_dir, report_dir, _recorded(argv), timing, inv.config_path)
    if isinstance(cmd, SuiteCommand):
        report.suite_report(
            *common, cmd.first_seed, runs.parse_variants(cmd.variants), records_dir=records_dir
        )
    else:
        report.sweep_report(*common, cmd.first_seed, records_dir=records_dir)
    path = report_dir / f"{inv.name}.md"
    print(path.read_text())
    print(f"report: {path}")
    return 0


def _influence_check(inv: Invocation, argv: list[str]) -> int:
    from .influence_check import CheckSettings, run_check

    cmd: InfluenceCheckCommand = inv.command  # type: ignore[assignment]
    overrides = (*inv.budget.overrides, f"--algorithm.influence_form={cmd.influence_form}")
    budget = dataclasses.replace(inv.budget, overrides=overrides, probe_every=0)
    run = budget.run("e2hil", cmd.seed, inv.config_path)
    settings = CheckSettings(
        samples=cmd.samples,
        entropy_samples=cmd.entropy_samples,
        probe_every=inv.budget.probe_every,
        seed=cmd.seed,
    )
    run_dir = Path(cmd.run_dir) if cmd.run_dir else Path("outputs/bench/influence_check_runs") / run.name
    snapshot = Path(cmd.snapshot) if cmd.snapshot else None
    path = run_check(
        run, settings, _report_dir(inv), run_dir, _recorded(argv), _root(inv.config_path), snapshot
    )
    print(path.read_text())
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
