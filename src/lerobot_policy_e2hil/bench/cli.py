"""``e2hil-bench``: one run, the {sac, e2hil} x seeds suite, or the sensitivity sweep.

    e2hil-bench run   --method e2hil --seed 0 [budget flags]      # one run with a progress bar
    e2hil-bench suite [--quick] [--seeds 5] [--workers 2]           # runs + docs/benchmarks/suite.*
    e2hil-bench suite --variants sac,e2hil,e2hil_first_order ...    # more variants on the same seeds
    e2hil-bench sweep [--quick] [--seeds 3] [--workers 2]           # runs + docs/benchmarks/sweep.*
    e2hil-bench influence-check [--quick] [--snapshot PATH]         # docs/benchmarks/influence_check.*

Budget flags (``--env-steps``, ``--updates-per-env-step``, ``--batch-size``, ...) default to
:data:`.suite.DEFAULT_BUDGET` (``run``, ``suite``), :data:`.suite.SWEEP_BUDGET` (``sweep``), or
:data:`.suite.QUICK_BUDGET` with ``--quick``. Finished runs are cached in ``--runs-dir``
(default ``outputs/bench/<command>_runs``) and reused when their config matches, so an
interrupted suite resumes and the report can be rebuilt without training.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
import time
from pathlib import Path

from ..configuration_e2hil import INFLUENCE_FORMS
from ..errors import ConfigError
from .config import DEFAULT_CONFIG, METHODS, RunConfig

QUICK_DIR = Path("outputs/bench/quick")


def _add_budget_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("budget (default: the suite's; --quick: the smoke check's)")
    group.add_argument("--quick", action="store_true", help="tiny budget for a smoke check (seconds per run)")
    group.add_argument("--env-steps", type=int)
    group.add_argument("--updates-per-env-step", type=float)
    group.add_argument("--batch-size", type=int)
    group.add_argument("--eval-every", type=int, help="env steps between teacher-free evaluations")
    group.add_argument("--eval-episodes", type=int)
    group.add_argument("--final-eval-episodes", type=int)
    group.add_argument("--probe-every", type=int, help="probe every n-th actor step (0: never)")
    group.add_argument("--learning-starts", type=int)
    group.add_argument(
        "--override",
        action="append",
        default=None,
        metavar="--a.b=c",
        help="draccus flag for the JSON (repeatable)",
    )
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="base training config (JSON)")


def _budget(args: argparse.Namespace):
    from .influence_check import INFLUENCE_BUDGET
    from .suite import DEFAULT_BUDGET, QUICK_BUDGET, SWEEP_BUDGET

    defaults = {"sweep": SWEEP_BUDGET, "influence-check": INFLUENCE_BUDGET}
    base = QUICK_BUDGET if args.quick else defaults.get(args.command, DEFAULT_BUDGET)
    changes = {}
    for name in (
        "env_steps",
        "updates_per_env_step",
        "batch_size",
        "eval_every",
        "eval_episodes",
        "final_eval_episodes",
        "probe_every",
        "learning_starts",
    ):
        value = getattr(args, name)
        if value is not None:
            changes[name] = value
    if args.override is not None:
        changes["overrides"] = tuple(base.overrides) + tuple(args.override)
    return dataclasses.replace(base, **changes)


def build_parser() -> argparse.ArgumentParser:
    """The ``e2hil-bench`` argument parser."""
    parser = argparse.ArgumentParser(prog="e2hil-bench", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="one synchronous training run")
    run.add_argument("--method", choices=METHODS, default="e2hil")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--num-action-samples", type=int)
    run.add_argument("--lower-quantile", type=float)
    run.add_argument("--upper-quantile", type=float)
    run.add_argument(
        "--out-dir", type=Path, help="where result.json goes (default: outputs/bench/run_runs/<name>)"
    )
    _add_budget_flags(run)

    for name, seeds, text in (
        ("suite", 5, "{sac, e2hil} x seeds and the report"),
        ("sweep", 3, "E2HiL quantile-bound and K variants and the report"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--seeds", type=int, help=f"seeds per method/variant (default {seeds}; --quick: 2)")
        p.add_argument("--first-seed", type=int, default=0)
        p.add_argument("--workers", type=int, default=2, help="parallel runs, one torch thread each")
        p.add_argument("--runs-dir", type=Path, help=f"run cache (default outputs/bench/{name}_runs)")
        p.add_argument("--report-dir", type=Path, help="report files (default docs/benchmarks)")
        p.add_argument("--force", action="store_true", help="retrain runs even if cached")
        p.add_argument("--report-only", action="store_true", help="rebuild the report from cached runs")
        if name == "suite":
            p.add_argument(
                "--variants",
                default="sac,e2hil",
                help="comma-separated: sac (the baseline, required), e2hil, e2hil_first_order (default sac,e2hil)",
            )
        _add_budget_flags(p)

    check = sub.add_parser(
        "influence-check", help="predicted vs measured entropy change of each influence form (short run)"
    )
    check.add_argument("--seed", type=int, default=0)
    check.add_argument(
        "--form",
        choices=INFLUENCE_FORMS,
        default="first_order",
        help="influence_form the short run trains with",
    )
    check.add_argument("--samples", type=int, default=128, help="one-sample steps measured (default 128)")
    check.add_argument("--entropy-samples", type=int, default=64, help="noise draws per state per entropy")
    check.add_argument("--snapshot", type=Path, help="reuse the policy of an earlier check (its snapshot.pt)")
    check.add_argument(
        "--run-dir", type=Path, help="snapshot (default outputs/bench/influence_check_runs/<name>)"
    )
    check.add_argument("--report-dir", type=Path, help="report files (default docs/benchmarks)")
    _add_budget_flags(check)
    return parser


def _default_runs_dir(args: argparse.Namespace) -> Path:
    """``outputs/bench/<command>_runs`` (``outputs/bench/quick/runs`` with ``--quick``)."""
    return QUICK_DIR / "runs" if args.quick else Path("outputs/bench") / f"{args.command}_runs"


def _root(config: str) -> Path:
    """Directory the relative config path is resolved against: cwd, else the source checkout."""
    if Path(config).is_absolute() or (Path.cwd() / config).exists():
        return Path.cwd()
    return Path(__file__).resolve().parents[3]


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``e2hil-bench``."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    import lerobot_policy_e2hil  # noqa: F401  (registers e2hil and e2hil_sim)

    from . import suite
    from .trainer import train_run

    try:
        budget = _budget(args)
        root = _root(args.config)
        if args.command == "run":
            run = budget.run(
                args.method,
                args.seed,
                args.config,
                **{
                    k: v
                    for k, v in (
                        ("num_action_samples", args.num_action_samples),
                        ("influence_lower_quantile", args.lower_quantile),
                        ("influence_upper_quantile", args.upper_quantile),
                    )
                    if v is not None
                },
            )
            out_dir = args.out_dir or _default_runs_dir(args) / run.name
            train_run(run, out_dir=out_dir, root=root, progress=True)
            print(f"result: {out_dir / 'result.json'}")
            return 0
        if args.command == "influence-check":
            return _influence_check(args, argv, budget, root)
        runs_dir = args.runs_dir or _default_runs_dir(args)
        report_dir = args.report_dir or ((QUICK_DIR / "report") if args.quick else Path("docs/benchmarks"))
        # --report-only rebuilds what the same command without it wrote
        command = "e2hil-bench " + " ".join(shlex.quote(a) for a in argv if a != "--report-only")
        if args.seeds is None:
            args.seeds = 2 if args.quick else (5 if args.command == "suite" else 3)
        if args.seeds < 1:
            raise ConfigError(f"--seeds={args.seeds} is invalid; allowed values: >= 1")
        if args.command == "suite":
            variants = suite.parse_variants(args.variants)
            runs: list[RunConfig] = suite.suite_runs(
                budget, args.seeds, args.config, args.first_seed, variants
            )
        else:
            runs = [
                r
                for _, rows in suite.sweep_runs(budget, args.seeds, args.config, args.first_seed)
                for r in rows
            ]
        timing = None
        if not args.report_only:
            start = time.perf_counter()
            timing = suite.execute(runs, runs_dir, workers=args.workers, root=root, force=args.force)
            timing["wall_s"] = time.perf_counter() - start
        if args.command == "suite":
            suite.suite_report(
                budget,
                args.seeds,
                runs_dir,
                report_dir,
                command,
                timing,
                args.config,
                args.first_seed,
                variants,
            )
        else:
            suite.sweep_report(
                budget, args.seeds, runs_dir, report_dir, command, timing, args.config, args.first_seed
            )
        name = "suite" if args.command == "suite" else "sweep"
        print((report_dir / f"{name}.md").read_text())
        print(f"report: {report_dir / (name + '.md')}")
        return 0
    except ConfigError as err:
        print(f"e2hil-bench: {err}", file=sys.stderr)
        return 2


def _influence_check(args: argparse.Namespace, argv: list[str], budget, root: Path) -> int:
    from .influence_check import CheckSettings, run_check

    overrides = (*budget.overrides, f"--algorithm.influence_form={args.form}")
    run = dataclasses.replace(budget, overrides=overrides, probe_every=0).run("e2hil", args.seed, args.config)
    settings = CheckSettings(
        samples=args.samples,
        entropy_samples=args.entropy_samples,
        probe_every=budget.probe_every,
        seed=args.seed,
    )
    run_dir = args.run_dir or Path("outputs/bench/influence_check_runs") / run.name
    report_dir = args.report_dir or ((QUICK_DIR / "report") if args.quick else Path("docs/benchmarks"))
    command = "e2hil-bench " + " ".join(shlex.quote(a) for a in argv)
    path = run_check(run, settings, report_dir, run_dir, command, root, snapshot=args.snapshot)
    print(path.read_text())
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
