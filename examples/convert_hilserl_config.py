"""Convert a LeRobot HIL-SERL JSON config (``"algorithm": {"type": "sac"}``) to E2HiL and print the diff.

Every SAC field is kept; the type becomes ``"e2hil"`` and E2HiL's own fields are added with
their defaults (or the values given with ``--set``). The new algorithm block is checked by
building it, so a bad value fails here rather than when the learner starts.

    python examples/convert_hilserl_config.py HIL-SERL/train_config_hilserl_so101.json
    python examples/convert_hilserl_config.py my_sac.json --set num_action_samples=16 --output my_e2hil.json
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path, help="a TrainRLServerPipelineConfig JSON with a SAC algorithm")
    parser.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="an E2HiL field (JSON value)"
    )
    parser.add_argument("--output", type=Path, help="write the E2HiL config here (default: only print)")
    return parser.parse_args(argv)


def e2hil_fields() -> dict:
    """E2HiL's own fields (those SAC's config does not have) with their defaults."""
    import dataclasses

    from lerobot.rl.algorithms.sac import SACAlgorithmConfig

    from lerobot_policy_e2hil.algorithm.configuration_e2hil import E2HiLAlgorithmConfig

    sac = {f.name for f in dataclasses.fields(SACAlgorithmConfig)}
    return {
        f.name: f.default
        for f in dataclasses.fields(E2HiLAlgorithmConfig)
        if f.name not in sac and f.default is not dataclasses.MISSING
    }


def convert(config: dict, overrides: dict) -> dict:
    """``config`` with its algorithm block switched from SAC to E2HiL (a new dict)."""
    algorithm = dict(config.get("algorithm") or {"type": "sac"})
    if algorithm.get("type", "sac") != "sac":
        raise ValueError(f"algorithm.type={algorithm.get('type')!r} is invalid; allowed values: 'sac'")
    defaults = e2hil_fields()
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ValueError(f"--set {unknown[0]} is invalid; allowed values: {sorted(defaults)}")
    algorithm.pop("type", None)
    new_block = {"type": "e2hil", **algorithm, **defaults, **overrides}
    return {**config, "algorithm": new_block}


def check(block: dict) -> None:
    """Build the algorithm config from ``block`` as the learner's parser would (raises on a bad value)."""
    import draccus
    from lerobot.rl.algorithms.configs import RLAlgorithmConfig

    import lerobot_policy_e2hil  # noqa: F401  (registers "e2hil")

    draccus.decode(RLAlgorithmConfig, block)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        overrides = {k: json.loads(v) for k, _, v in (item.partition("=") for item in args.set)}
        original = json.loads(args.config.read_text())
        converted = convert(original, overrides)
        check(converted["algorithm"])
    except Exception as err:  # a bad file or value: one line, not a traceback
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        sys.exit(2)
    before = json.dumps(original, indent=2).splitlines()
    after = json.dumps(converted, indent=2).splitlines()
    new_name = str(args.output or args.config.with_name(args.config.stem + "_e2hil.json"))
    sys.stdout.writelines(
        line + "\n" for line in difflib.unified_diff(before, after, str(args.config), new_name, lineterm="")
    )
    if args.output:
        args.output.write_text(json.dumps(converted, indent=2) + "\n")
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
