"""Console scripts that run LeRobot's own RL learner and actor with this plugin loaded.

LeRobot's ``lerobot.rl.learner`` and ``lerobot.rl.actor`` do not call
``register_third_party_plugins()``, so a config with ``"algorithm": {"type": "e2hil"}`` would
fail to parse there. These entry points import the plugin, parse the command line as LeRobot
does (``--config_path=...`` and dotted overrides) into :class:`.train_config.E2HiLTrainConfig`
(LeRobot's config plus the ``faults`` section, saved with each checkpoint), install the fault
handling of :mod:`.faults` with that section and call LeRobot's ``train_cli`` / ``actor_cli``. The learner writes a final checkpoint once LeRobot's loop stops (Ctrl-C); when it
stopped before its first update there is none, and it exits non-zero with one line. A bad
setup (an existing ``--output_dir`` without ``--resume=true`` included) ends with a one-paragraph ``error:`` line and a non-zero exit code. Started by
``e2hil-so101-dry-run``, the process stops once when the dry run is gone (:mod:`.sim.parent`).
"""

# No ``from __future__ import annotations``: LeRobot's ``parser.wrap`` reads the annotation as a type.

import logging
import sys

from lerobot.configs import parser

from . import install_algorithm_lookup
from .actor.hooks import install_actor_faults
from .faults.entry import fatal_message, process_script, record_fatal, run_entry
from .launcher.parent import stop_once_with_launcher
from .learner.hooks import install_learner_faults, save_final_checkpoint
from .setup_checks import check_features, check_output_dir
from .train_config import E2HiLTrainConfig, run_lerobot_cli

#: The learner's last line when it stopped before its first update (so there is no checkpoint).
NO_CHECKPOINT = (
    "the learner stopped before its first update, so it wrote no checkpoint (it starts updating once "
    "the actor has sent policy.online_step_before_learning={before} transitions). Keep the actor "
    "running until the learner logs updates, or lower --policy.online_step_before_learning"
)


@parser.wrap()
def _learner(cfg: E2HiLTrainConfig) -> None:
    from lerobot.rl import learner

    check_features(cfg)
    check_output_dir(cfg, "learner")
    install_learner_faults(cfg, cfg.faults)
    run_lerobot_cli(learner.train_cli, cfg)
    if fatal_message() is None:
        finish_learner(cfg)


def finish_learner(cfg: E2HiLTrainConfig) -> None:
    """Write the learner's final checkpoint; none (no update made) is a fatal error of the run."""
    checkpoint = save_final_checkpoint(cfg)
    logging.info(f"[LEARNER] final checkpoint: {checkpoint}")
    if checkpoint is None and cfg.save_checkpoint:
        record_fatal(NO_CHECKPOINT.format(before=cfg.policy.online_step_before_learning))


@parser.wrap()
def _actor(cfg: E2HiLTrainConfig) -> None:
    from lerobot.rl import actor

    from .sim.env import register_gym_id

    check_features(cfg)
    check_output_dir(cfg, "actor")
    if hasattr(cfg.env, "require_robot"):  # an so101_hil env: its robot is used here
        cfg.env.require_robot()
    register_gym_id(cfg.env)  # an e2hil_sim env is built by its gym id
    install_actor_faults(cfg, cfg.faults)
    run_lerobot_cli(actor.actor_cli, cfg)


_COMMON = """\
  {name} --config_path <train config JSON> [--<field>=<value> ...]

Most used: --config_path, --algorithm.type=sac|e2hil, --policy.online_steps (env-step budget),
--output_dir, --resume=true, --policy.actor_learner_config.learner_host / .learner_port,
--wandb.enable=true, --faults.<field> (timeouts, TLS, actor id: docs/faults.md; saved with
each checkpoint, so --config_path=<checkpoint>/pretrained_model/train_config.json resumes with them).
Exit code 0: stopped cleanly (Ctrl-C or the budget spent); 1: a fatal fault (one line:
error: <cause>. <fix>); 2: a bad command line or setup (one line: error: <cause>. <fix>).
`{name} --help-all` lists every field of the config (LeRobot's TrainRLServerPipelineConfig and
the faults section, some 400 lines). Docs: README.md, docs/faults.md.
"""

LEARNER_HELP = (
    "e2hil-learner: LeRobot's HIL-SERL learner (python -m lerobot.rl.learner) with the E2HiL\n"
    "algorithm registered and fault handling; it serves the actors over gRPC, trains, and writes a\n"
    "final checkpoint when it stops.\n\n" + _COMMON.format(name="e2hil-learner")
)
ACTOR_HELP = (
    "e2hil-actor: LeRobot's HIL-SERL actor (python -m lerobot.rl.actor) with the E2HiL plugin\n"
    "registered and fault handling; it runs the policy on the robot or env, takes interventions,\n"
    "and streams transitions to the learner over gRPC.\n\n" + _COMMON.format(name="e2hil-actor")
)


def show_help(text: str) -> None:
    """``--help``: print ``text`` and exit 0; ``--help-all``: leave ``--help`` for LeRobot's full field list."""
    if "-h" in sys.argv[1:] or "--help" in sys.argv[1:]:
        print(text, flush=True)
        sys.exit(0)
    sys.argv = [("--help" if arg == "--help-all" else arg) for arg in sys.argv]


def _run(body, help_text: str) -> None:
    def main() -> None:
        install_algorithm_lookup()
        body()

    show_help(help_text)
    stop_once_with_launcher()
    run_entry(main)


def learner_main() -> None:
    """``e2hil-learner``: ``python -m lerobot.rl.learner`` with E2HiL registered and fault handling."""
    _run(_learner, LEARNER_HELP)


def actor_main() -> None:
    """``e2hil-actor``: ``python -m lerobot.rl.actor`` with E2HiL registered and fault handling."""
    _run(_actor, ACTOR_HELP)


#: The ``e2hil-learner`` console script (its body, :func:`learner_main`, is what tests call in-process)
learner_script = process_script(learner_main)
#: The ``e2hil-actor`` console script
actor_script = process_script(actor_main)
