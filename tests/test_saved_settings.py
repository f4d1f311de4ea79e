"""Every setting of a run is in the checkpoint's ``train_config.json``, and a resume runs with it.

A learner checkpoint saved through the learner's save path holds the ``faults`` section, the
algorithm's ``fast_update`` and the launcher's ``env.launch``; ``e2hil-learner`` resumed with only
``--config_path=<checkpoint>/pretrained_model/train_config.json --resume=true`` installs those
fault settings, trains with that config (LeRobot's loop is stopped at its start here), and its
next checkpoint saves them again.
"""

import json
import sys

import pytest

from test_faults_checkpoints import SIM_JSON, add_transitions, atomic_save, make_run, save
from test_faults_helpers import free_port

SAVED_FLAGS = [
    "--faults.keep_buffers=3",
    "--faults.warn_interval_s=7",
    "--algorithm.fast_update=false",
    "--env.launch.eval_episodes=7",
]


TOKEN = "s3cret-token-value"


def _saved_run(output_dir, token_file):
    """A run whose config was parsed with ``SAVED_FLAGS`` (and ``token_file``), checkpointed at step 10."""
    from lerobot_policy_e2hil.launcher.train import load_config

    _, algorithm, online, offline = run = make_run(output_dir)
    cfg = load_config(
        [
            "--config_path",
            str(SIM_JSON),
            f"--output_dir={output_dir}",
            f"--policy.actor_learner_config.learner_port={free_port()}",
            *SAVED_FLAGS,
            f"--faults.token_file={token_file}",
        ]
    )
    cfg.dataset = run[0].dataset
    add_transitions(algorithm.policy, online, 20, intervention=False)
    add_transitions(algorithm.policy, offline, 5, intervention=True)
    save(atomic_save(), (cfg, algorithm, online, offline), 10)
    return (cfg, algorithm, online, offline), output_dir / "checkpoints" / "000010" / "pretrained_model"


def _expect_saved(path) -> None:
    text = path.read_text()
    config = json.loads(text)
    assert (config["faults"]["keep_buffers"], config["faults"]["warn_interval_s"]) == (3, 7.0)
    assert config["faults"]["token_file"].endswith("token") and TOKEN not in text  # where, not what
    assert config["algorithm"]["fast_update"] is False
    assert config["env"]["launch"]["eval_episodes"] == 7


@pytest.mark.slow
def test_a_resume_from_the_checkpoints_config_alone_runs_with_its_saved_settings(tmp_path, monkeypatch):
    from lerobot.rl import learner

    from lerobot_policy_e2hil import cli
    from lerobot_policy_e2hil.launcher.train import load_config
    from lerobot_policy_e2hil.learner.hooks import LEARNER
    from lerobot_policy_e2hil.lerobot_layer import patches
    from lerobot_policy_e2hil.train_config import E2HiLTrainConfig

    output_dir = tmp_path / "run"
    output_dir.mkdir()
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    run, pretrained = _saved_run(output_dir, token_file)
    saved = pretrained / "train_config.json"
    _expect_saved(saved)
    launcher_cfg = load_config(["--config_path", str(saved)])  # e2hil-sim --config_path=<checkpoint>
    assert (launcher_cfg.faults.keep_buffers, launcher_cfg.env.launch.eval_episodes) == (3, 7)

    for name in ("settings", "cfg", "checkpoint"):
        monkeypatch.setattr(LEARNER, name, getattr(LEARNER, name))
    for counter in (LEARNER.validator, LEARNER.interactions, LEARNER.refusals):
        monkeypatch.setattr(counter, "warn_interval_s", counter.warn_interval_s)
    resumed = []
    monkeypatch.setattr(learner, "start_learner_threads", lambda cfg, **_: resumed.append(cfg))
    monkeypatch.setattr(cli, "save_final_checkpoint", lambda cfg: pretrained.parent)
    monkeypatch.setattr(sys, "argv", ["e2hil-learner", f"--config_path={saved}", "--resume=true"])
    with patches.isolated_hooks():
        cli.learner_main()
        assert LEARNER.settings.keep_buffers == 3 and LEARNER.validator.warn_interval_s == 7.0

    (cfg,) = resumed
    assert isinstance(cfg, E2HiLTrainConfig) and cfg.resume
    assert (cfg.faults.keep_buffers, cfg.faults.warn_interval_s) == (3, 7.0)
    assert cfg.algorithm.fast_update is False and cfg.env.launch.eval_episodes == 7
    save(atomic_save(), (cfg, *run[1:]), 20)  # the resumed run's next checkpoint
    _expect_saved(output_dir / "checkpoints" / "000020" / "pretrained_model" / "train_config.json")
