"""Fault point 4: bad setups end with a one-paragraph error (or a bounded, logged retry), no traceback.

Unknown algorithm type, features that do not match the env, a port in use, an unreachable
learner: each entry point is run as a user would run it, and its last stderr line is the error.
"""

import json
import subprocess
import sys
from pathlib import Path

import draccus
import pytest

from lerobot_policy_e2hil.errors import ConfigError
from lerobot_policy_e2hil.faults import SetupError
from lerobot_policy_e2hil.setup_checks import (
    check_algorithm_type,
    check_features,
    check_observation,
    check_port_free,
)
from test_faults_helpers import ROOT, SIM_JSON, free_port, sim_args


def run_cli(*command: str, timeout: float = 240) -> tuple[int, str, str]:
    env = {"MUJOCO_GL": "egl", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env={**_environ(), **env}
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return result.returncode, lines[-1] if lines else "", result.stdout + result.stderr


def _environ() -> dict:
    import os

    return dict(os.environ)


def assert_no_traceback_from_us(output: str) -> None:
    # Importing LeRobot prints torchcodec's own traceback when FFmpeg is missing: not ours.
    frames = [line for line in output.splitlines() if line.strip().startswith('File "')]
    ours = [line for line in frames if "lerobot_policy_e2hil" in line or "/lerobot/rl/" in line]
    assert not ours, "\n".join(ours)


def sim_config(tmp_path: Path, edit) -> Path:
    raw = json.loads(SIM_JSON.read_text())
    edit(raw)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw))
    return path


def parse(path: Path):
    from lerobot.rl import learner  # noqa: F401  (registers the robots and cameras, as the learner does)

    from lerobot_policy_e2hil.launcher.train import load_config

    return load_config(["--config_path", str(path)])


# Unknown algorithm type


def run_entry_in_process(monkeypatch, capsys, main, *args: str) -> tuple[int, str]:
    """Run a console entry (``cli.learner_main``...) here; returns its exit code and last stderr line."""
    monkeypatch.setattr(sys, "argv", ["entry", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return exit_info.value.code, lines[-1]


def test_unknown_algorithm_flag_lists_the_allowed_types(monkeypatch, capsys):
    from lerobot_policy_e2hil import cli

    code, last = run_entry_in_process(
        monkeypatch, capsys, cli.learner_main, "--config_path", str(SIM_JSON), "--algorithm.type=ppo"
    )
    assert code == 2
    assert last == (
        "error: algorithm.type='ppo' is not a known choice; allowed values: 'sac', 'e2hil', 'sac_fast'. "
        "Set --algorithm.type=<value>."
    )


def test_unknown_algorithm_in_the_json_file_lists_the_allowed_types(tmp_path, monkeypatch, capsys):
    from lerobot_policy_e2hil import cli

    path = sim_config(tmp_path, lambda raw: raw["algorithm"].update(type="ppo"))
    code, last = run_entry_in_process(monkeypatch, capsys, cli.learner_main, "--config_path", str(path))
    assert code == 2
    assert (
        last
        == f"error: algorithm.type='ppo' in {path} is not a known RL algorithm; allowed values: 'e2hil', 'sac', 'sac_fast'"
    )
    check_algorithm_type(["--config_path", str(path), "--algorithm.type=sac"])  # the flag wins


# Features that do not match the env


@pytest.mark.slow
def test_declared_features_must_match_the_env(tmp_path):
    def wrong_shape(raw):
        raw["policy"]["input_features"] = {
            "observation.state": {"type": "STATE", "shape": [20]},
            "observation.environment_state": {"type": "ENV", "shape": [3]},
        }

    def unknown_key(raw):
        raw["policy"]["input_features"] = {
            "observation.images.front": {"type": "VISUAL", "shape": [3, 128, 128]}
        }

    check_features(parse(SIM_JSON))  # features derived from the env: nothing to check
    with pytest.raises(
        ConfigError, match=r"input_features\['observation.state'\] has shape \(20,\) .* gives \(18,\)"
    ):
        check_features(parse(sim_config(tmp_path, wrong_shape)))
    with pytest.raises(ConfigError, match=r"'observation.images.front'\] is not produced by the env"):
        check_features(parse(sim_config(tmp_path, unknown_key)))
    for name in ("train_config_e2hil_so101.json", "train_config_hilserl_so101.json"):
        check_features(parse(ROOT / "HIL-SERL" / name))  # the shipped robot configs are consistent


@pytest.mark.slow
def test_feature_mismatch_stops_the_actor_with_one_paragraph(tmp_path, monkeypatch, capsys):
    from lerobot_policy_e2hil import cli

    def wrong_action(raw):
        raw["policy"]["output_features"] = {"action": {"type": "ACTION", "shape": [4]}}

    path = sim_config(tmp_path, wrong_action)
    code, last = run_entry_in_process(
        monkeypatch, capsys, cli.actor_main, "--config_path", str(path), f"--output_dir={tmp_path / 'a'}"
    )
    assert code == 2
    assert last.startswith("error: policy.output_features['action'] has shape (4,) but the env")


def test_live_observation_is_checked_against_the_policy_inputs():
    import torch

    from lerobot_policy_e2hil.synthetic import make_policy

    policy_cfg = make_policy(hidden_dim=8, latent_dim=8).config
    good = {"observation.state": torch.zeros(1, 18), "observation.environment_state": torch.zeros(1, 3)}
    check_observation(good, policy_cfg)
    with pytest.raises(
        SetupError, match=r"'observation.state' has shape \(1, 17\) but policy.input_features says \(18,\)"
    ):
        check_observation({**good, "observation.state": torch.zeros(1, 17)}, policy_cfg)
    with pytest.raises(SetupError, match="has no 'observation.environment_state'"):
        check_observation({"observation.state": torch.zeros(18)}, policy_cfg)


# Port in use


def grpc_server_on(port: int):
    """A gRPC server bound as LeRobot's learner binds (gRPC's default SO_REUSEPORT)."""
    from concurrent.futures import ThreadPoolExecutor

    import grpc

    server = grpc.server(ThreadPoolExecutor(max_workers=1))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return server


def test_port_held_by_another_learner_is_refused():
    port = free_port()
    check_port_free("127.0.0.1", port)
    server = grpc_server_on(port)
    try:
        with pytest.raises(SetupError, match=rf"cannot listen on 127.0.0.1:{port} .*learner_port=<port>"):
            check_port_free("127.0.0.1", port)
    finally:
        server.stop(None)


@pytest.mark.slow
def test_learner_on_a_busy_port_exits_with_one_paragraph(tmp_path):
    port = free_port()
    server = grpc_server_on(port)  # e.g. the previous learner, still running
    try:
        code, last, output = run_cli(
            sys.executable,
            "-m",
            "lerobot_policy_e2hil.launcher.learner",
            *sim_args(port),
            f"--output_dir={tmp_path / 'run'}",
        )
    finally:
        server.stop(None)
    assert code == 2
    assert last.startswith(f"error: the learner cannot listen on 127.0.0.1:{port} (Address already in use)")
    assert_no_traceback_from_us(output)


# Unreachable learner


@pytest.mark.slow
def test_actor_retries_a_bounded_time_then_exits_with_one_paragraph(tmp_path):
    port = free_port()  # nothing listens there
    code, last, output = run_cli(
        sys.executable,
        "-m",
        "lerobot_policy_e2hil.launcher.actor",
        *sim_args(port),
        f"--output_dir={tmp_path / 'actor'}",
        # Two attempts need the first to end before the deadline: 0.5 s of 8 s leaves a loaded machine room.
        "--faults.connect_timeout_s=8",
        "--faults.ready_timeout_s=0.5",
        "--faults.retry_interval_s=0.5",
    )
    assert code == 1
    assert last.startswith(f"error: the actor could not reach the learner at 127.0.0.1:{port} within 8 s.")
    attempts = [line for line in output.splitlines() if "not ready (attempt" in line]
    assert len(attempts) >= 2 and "retrying for up to" in attempts[0]
    assert "giving up" in output
    assert_no_traceback_from_us(output)


def test_fault_flags_are_parsed_and_validated():
    from lerobot_policy_e2hil.train_config import E2HiLTrainConfig

    def parse(*args: str) -> E2HiLTrainConfig:
        return draccus.parse(
            E2HiLTrainConfig, config_path=str(SIM_JSON), args=list(args), exit_on_error=False
        )

    cfg = parse("--batch_size=3", "--faults.connect_timeout_s=7", "--faults.grpc_workers", "4")
    assert (cfg.faults.connect_timeout_s, cfg.faults.grpc_workers, cfg.batch_size) == (7.0, 4, 3)
    with pytest.raises(ConfigError, match=r"faults.ready_timeout_s=0.0 is invalid; allowed values: > 0"):
        parse("--faults.ready_timeout_s=0")
