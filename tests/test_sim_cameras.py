"""The camera sim: ``env.image_obs`` follows the evaluated policy; learner and actor over gRPC on images."""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lerobot_policy_e2hil.errors import ConfigError
from lerobot_policy_e2hil.sim.config import E2HiLSimEnvConfig, resolve_image_obs

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CAMERA_KEYS = ("observation.images.front", "observation.images.wrist")
#: ~2 min on the idle 2-core machine; far longer when the machine is shared
TRAIN_TIMEOUT_S = 1800
#: Seconds the launcher gets to stop its learner and actor after Ctrl-C
STOP_S = 600


def saved_policy(directory: Path, keys: tuple[str, ...]) -> Path:
    """A ``pretrained_model`` folder whose ``config.json`` lists ``keys`` as input features."""
    directory.mkdir(parents=True)
    features = {key: {"type": "VISUAL", "shape": [3, 128, 128]} for key in keys}
    features["observation.state"] = {"type": "STATE", "shape": [18]}
    (directory / "config.json").write_text(json.dumps({"type": "gaussian_actor", "input_features": features}))
    return directory


def test_unset_image_obs_follows_the_policy(tmp_path):
    assert resolve_image_obs(None, str(saved_policy(tmp_path / "cams", CAMERA_KEYS))) is True
    assert resolve_image_obs(None, str(saved_policy(tmp_path / "state", ()))) is False
    assert resolve_image_obs(None, None) is False
    assert resolve_image_obs(None, "user/hub-policy") is False  # not a local checkpoint: state-only
    assert resolve_image_obs(True, None) is True


def test_image_obs_contradicting_the_policy_is_refused(tmp_path):
    cameras = str(saved_policy(tmp_path / "cams", CAMERA_KEYS))
    with pytest.raises(ConfigError, match=r"env\.image_obs=false .*allowed values: true"):
        resolve_image_obs(False, cameras)
    with pytest.raises(ConfigError, match=r"env\.image_obs=true .*allowed values: false"):
        resolve_image_obs(True, str(saved_policy(tmp_path / "state", ())))


def test_config_without_a_policy_is_state_only():
    cfg = E2HiLSimEnvConfig()
    assert cfg.image_obs is False
    assert "environment_state" in cfg.features and "pixels/front" not in cfg.features


def documented_commands(program: str) -> list[list[str]]:
    """The commands of docs/sim.md's "Cameras" section that run ``program``, split as a shell would."""
    text = (ROOT / "docs" / "sim.md").read_text()
    section = text.split("## Cameras", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"(?m)^    (MUJOCO_GL=egl (?:.*\\\n)*.*)", section)
    commands = [shlex.split(block.replace("\\\n", " "))[1:] for block in blocks]
    return [c for c in commands if c[0] == program]


def with_flags(command: list[str], **values: str) -> list[str]:
    """``command`` with the value of each ``--<name>`` replaced (dots as ``__``), new ones appended."""
    flags = {f"--{name.replace('__', '.')}": value for name, value in values.items()}
    kept = [arg for arg in command if arg.split("=", 1)[0] not in flags]
    return kept + [f"{flag}={value}" for flag, value in flags.items()]


def run_stopping_on_timeout(argv: list[str], env: dict, timeout_s: float) -> tuple[int | None, str, str]:
    """Run ``argv``; past ``timeout_s`` send it Ctrl-C, so the launcher ends its learner and actor too."""
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=STOP_S)
        return None, f"timed out after {timeout_s} s\n{stdout}", stderr
    return process.returncode, stdout, stderr


@pytest.mark.slow
@pytest.mark.e2e
def test_camera_run_over_grpc_then_lerobot_eval_without_flags(tmp_path):
    """The documented camera smoke run trains on images and checkpoints; lerobot-eval takes it as is."""
    import av

    env = {**os.environ, "MUJOCO_GL": "egl", "HF_HUB_OFFLINE": "1"}
    (train,) = documented_commands("e2hil-sim")
    out = tmp_path / "run"
    train = with_flags(train, output_dir=str(out))
    code, stdout, stderr = run_stopping_on_timeout([str(BIN / train[0]), *train[1:]], env, TRAIN_TIMEOUT_S)
    assert code == 0, stdout[-3000:] + stderr[-3000:]
    assert "the camera config is meant for a GPU machine" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env_steps"] == 20
    # The learner exits 0, or (seen once on a loaded machine: SIGSEGV at exit) crashes only after its
    # final checkpoint, which the launcher reports as a warning and evaluates
    crashed_after_checkpoint = any("after writing its final checkpoint" in w for w in summary["warnings"])
    assert summary["learner_exit_code"] == 0 or crashed_after_checkpoint, summary
    assert summary["opt_steps"] >= 2, summary  # lockstep 0.2 from 10 transitions on
    train_records = [
        r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "train"
    ]
    assert train_records and all(r["loss_actor"] == r["loss_actor"] for r in train_records)
    checkpoint = out / "checkpoints" / "last" / "pretrained_model"
    inputs = json.loads((checkpoint / "config.json").read_text())["input_features"]
    assert set(CAMERA_KEYS) <= set(inputs) and "observation.environment_state" not in inputs

    (evaluate,) = documented_commands("lerobot-eval")
    evaluate = [arg.replace("<output_dir>", str(out)) for arg in evaluate]
    assert not any(arg.startswith("--env.image_obs") for arg in evaluate)
    evaluate = with_flags(
        evaluate, output_dir=str(tmp_path / "eval"), eval__n_episodes="1", env__max_episode_steps="5"
    )
    result = subprocess.run(
        [str(BIN / evaluate[0]), *evaluate[1:]], capture_output=True, text=True, timeout=600, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    videos = json.loads((tmp_path / "eval" / "eval_info.json").read_text())["overall"]["video_paths"]
    assert len(videos) == 1
    with av.open(videos[0]) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) >= 5 and frames[0].shape == (128, 128, 3)
    assert frames[0].std() > 0  # the rendered front camera, not a blank buffer
