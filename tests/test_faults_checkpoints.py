"""Fault point 5: a crash while saving never leaves a checkpoint that cannot be loaded.

A child process saves a complete checkpoint at step 10 through the learner's save path, adds
transitions and trains, then is SIGKILLed inside the step-20 save, right after the online replay
buffer directory was deleted for rewriting (where LeRobot's own save loses it). The parent
resumes like the learner does and loads the buffers and algorithm state.
"""

import functools
import inspect
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
SIM_JSON = ROOT / "HIL-SERL" / "train_gym_hil_env_SIM.json"
ONLINE_AT_10, OFFLINE_AT_10, ONLINE_AT_20 = 60, 20, 90


def make_run(output_dir: Path):
    """A sim config, a small E2HiL algorithm and online/offline buffers, as the learner holds them."""
    from lerobot.configs.default import DatasetConfig
    from lerobot.rl.buffer import ReplayBuffer

    from lerobot_policy_e2hil.launcher.train import load_config
    from lerobot_policy_e2hil.synthetic import make_policy, make_rl_algorithm

    cfg = load_config(["--config_path", str(SIM_JSON), f"--output_dir={output_dir}"])
    cfg.dataset = DatasetConfig(repo_id="local/test_interventions")
    torch.manual_seed(0)
    policy = make_policy(hidden_dim=32, latent_dim=32, num_discrete_actions=3)
    algorithm = make_rl_algorithm("e2hil", policy, num_action_samples=2)
    keys = list(policy.config.input_features)
    online, offline = (
        ReplayBuffer(capacity=200, device="cpu", state_keys=keys, storage_device="cpu", optimize_memory=True)
        for _ in range(2)
    )
    return cfg, algorithm, online, offline


def add_transitions(policy, buffer, count: int, intervention: bool) -> None:
    for i in range(count):
        observation = {k: torch.rand(1, *f.shape) for k, f in policy.config.input_features.items()}
        buffer.add(
            state=observation,
            action=torch.cat([torch.rand(1, 3) * 2 - 1, torch.tensor([[1.0]])], dim=-1),
            reward=float(i % 2),
            next_state=observation,
            done=(i + 1) % 10 == 0,
            truncated=False,
            complementary_info={"discrete_penalty": torch.tensor([0.0]), "is_intervention": intervention},
        )


def save(save_fn, run, step: int) -> None:
    cfg, algorithm, online, offline = run
    save_fn(
        cfg=cfg,
        optimization_step=step,
        online_steps=cfg.policy.online_steps,
        interaction_message={"Interaction step": len(online) - 1},
        policy=algorithm.policy,
        optimizers=algorithm.get_optimizers(),
        replay_buffer=online,
        algorithm=algorithm,
        offline_replay_buffer=offline,
        dataset_repo_id=cfg.dataset.repo_id,
        fps=10,
    )


def lerobot_save():
    """LeRobot's ``save_training_checkpoint``, unwrapped if a test installed the faults here."""
    from lerobot.rl import learner

    return getattr(learner.save_training_checkpoint, "original", learner.save_training_checkpoint)


def atomic_save(keep_buffers: int = 2):
    from lerobot_policy_e2hil.checkpoints import AtomicCheckpointer

    return AtomicCheckpointer(lerobot_save(), keep_buffers=keep_buffers, run_state=lambda: {"episodes": 1})


def run_until_step_20_save(output_dir: Path, crash, patch=setattr):
    """Save step 10 atomically, train on, and make the next save call ``crash`` in its buffer write.

    ``patch`` sets the attribute (``monkeypatch.setattr`` in-process). Returns the run.
    """
    from lerobot.rl.buffer import ReplayBuffer

    from lerobot_policy_e2hil.learner.hooks import tensor_digest
    from lerobot_policy_e2hil.synthetic import random_batch

    run = make_run(output_dir)
    _, algorithm, online, offline = run
    add_transitions(algorithm.policy, online, ONLINE_AT_10, intervention=False)
    add_transitions(algorithm.policy, offline, OFFLINE_AT_10, intervention=True)
    algorithm.update(iter(lambda: random_batch(algorithm.policy, 8), None))
    save(atomic_save(), run, 10)
    expected = {"algorithm": tensor_digest(algorithm.state_dict()), "log_alpha": algorithm.log_alpha.item()}
    (output_dir / "expected.json").write_text(json.dumps(expected))

    add_transitions(algorithm.policy, online, ONLINE_AT_20 - ONLINE_AT_10, intervention=False)
    for _ in range(3):
        algorithm.update(iter(lambda: random_batch(algorithm.policy, 8), None))
    original_write = ReplayBuffer.to_lerobot_dataset

    def crash_while_writing(self, *args, **kwargs):
        if self is online:
            crash()
        return original_write(self, *args, **kwargs)

    patch(ReplayBuffer, "to_lerobot_dataset", crash_while_writing)
    return run


def child(output_dir: Path) -> None:
    """Die by SIGKILL inside the atomic step-20 save (run in a subprocess)."""
    run = run_until_step_20_save(output_dir, lambda: os.kill(os.getpid(), signal.SIGKILL))
    save(atomic_save(), run, 20)


def crash_run(tmp_path: Path) -> Path:
    output_dir = tmp_path / "run"
    output_dir.mkdir()
    result = subprocess.run(
        [sys.executable, __file__, str(output_dir)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    return output_dir


def resume_and_load(output_dir: Path):
    """What the resumed learner does: choose the checkpoint, then LeRobot's own buffer loaders."""
    from lerobot.rl import learner

    from lerobot_policy_e2hil.checkpoints import prepare_resume

    chosen = prepare_resume(output_dir)
    cfg = make_run(output_dir)[0]
    cfg.resume = True
    online = learner.initialize_replay_buffer(cfg, "cpu", "cpu")
    offline = learner.initialize_offline_replay_buffer(cfg, "cpu", "cpu")
    return chosen, online, offline


def assert_resumes_step_10(output_dir: Path) -> None:
    from lerobot_policy_e2hil.learner.hooks import tensor_digest

    chosen, online, offline = resume_and_load(output_dir)
    assert chosen.name == "000010"
    assert (output_dir / "checkpoints" / "last").resolve() == chosen.resolve()
    assert (len(online), len(offline)) == (ONLINE_AT_10, OFFLINE_AT_10)
    assert bool(offline.complementary_info["is_intervention"][: len(offline)].all())
    expected = json.loads((output_dir / "expected.json").read_text())
    tensors = load_file(str(chosen / "algorithm" / "model.safetensors"))
    assert tensor_digest(tensors) == expected["algorithm"]
    assert tensors["log_alpha"].item() == pytest.approx(expected["log_alpha"])
    assert not list((output_dir / "checkpoints").glob(".staging-*")), "staging leftovers not cleaned"


@pytest.mark.slow
def test_crash_inside_atomic_save_leaves_the_previous_checkpoint_resumable(tmp_path):
    output_dir = crash_run(tmp_path)
    checkpoints = output_dir / "checkpoints"
    assert not (checkpoints / "000020").exists(), "a half-written checkpoint was published"
    assert list(checkpoints.glob(".staging-000020")), "the crash did not happen inside the save"
    assert os.readlink(checkpoints / "last") == "000010"
    assert_resumes_step_10(output_dir)


class Crash(Exception):
    pass


def raise_crash():
    raise Crash


@pytest.mark.slow
def test_lerobot_save_alone_breaks_last_and_resume_falls_back_to_the_complete_one(tmp_path, monkeypatch):
    from lerobot.rl import learner

    output_dir = tmp_path / "run"
    output_dir.mkdir()
    run = run_until_step_20_save(output_dir, raise_crash, patch=monkeypatch.setattr)
    with pytest.raises(Crash):  # LeRobot's save leaves its files as they are when it dies here
        save(lerobot_save(), run, 20)
    assert os.readlink(output_dir / "checkpoints" / "last") == "000020"  # LeRobot moved last first...
    cfg = make_run(output_dir)[0]
    cfg.resume = True
    with pytest.raises(Exception):  # noqa: B017  (...and its buffer is gone: LeRobot cannot resume)
        learner.initialize_replay_buffer(cfg, "cpu", "cpu")
    assert_resumes_step_10(output_dir)


@pytest.mark.slow
def test_older_checkpoints_keep_their_model_but_not_their_buffers(tmp_path):
    from lerobot_policy_e2hil.checkpoints import MARKER, is_complete, newest_complete

    run = make_run(tmp_path / "run")
    _, algorithm, online, offline = run
    add_transitions(algorithm.policy, online, 12, intervention=False)
    add_transitions(algorithm.policy, offline, 4, intervention=True)
    saver = atomic_save(keep_buffers=2)
    for step in (10, 20, 30):
        save(saver, run, step)
    checkpoints = tmp_path / "run" / "checkpoints"
    assert [is_complete(checkpoints / f"0000{s}") for s in (10, 20, 30)] == [False, True, True]
    assert not (checkpoints / "000010" / "dataset").exists()
    assert (checkpoints / "000010" / "pretrained_model" / "model.safetensors").is_file()
    assert newest_complete(tmp_path / "run") == checkpoints / "000030"
    marker = json.loads((checkpoints / "000030" / MARKER).read_text())
    assert (marker["step"], marker["online_buffer"], marker["offline_buffer"], marker["episodes"]) == (
        30,
        12,
        4,
        1,
    )
    saved_cfg = json.loads((checkpoints / "000030" / "pretrained_model" / "train_config.json").read_text())
    assert saved_cfg["output_dir"] == str(tmp_path / "run")  # not the staging directory
    assert (tmp_path / "run" / "dataset").resolve() == (checkpoints / "000030" / "dataset").resolve()

    (checkpoints / "000030" / "algorithm" / "model.safetensors").unlink()  # a part the marker lists
    assert newest_complete(tmp_path / "run") == checkpoints / "000020"


@pytest.mark.slow
def test_a_save_of_the_state_a_complete_checkpoint_holds_is_not_written_again(tmp_path):
    """The end of a run right after a periodic checkpoint: the final save writes nothing twice."""
    from lerobot_policy_e2hil.checkpoints import MARKER, AtomicCheckpointer

    run = make_run(tmp_path / "run")
    _, algorithm, online, offline = run
    add_transitions(algorithm.policy, online, 12, intervention=False)
    add_transitions(algorithm.policy, offline, 4, intervention=True)
    calls: list[int] = []

    @functools.wraps(lerobot_save())
    def counted(*args, **kwargs):
        calls.append(inspect.signature(lerobot_save()).bind(*args, **kwargs).arguments["optimization_step"])
        return lerobot_save()(*args, **kwargs)

    state = {"interaction_step": 12, "episodes": 1, "actors": {"a": {"transitions": 12}}}
    saver = AtomicCheckpointer(counted, keep_buffers=2, run_state=lambda: dict(state))
    marker_file = tmp_path / "run" / "checkpoints" / "000030" / MARKER
    save(saver, run, 30)
    first = json.loads(marker_file.read_text())
    save(saver, run, 30)
    assert calls == [30] and json.loads(marker_file.read_text()) == first
    state["episodes"] = 2  # an episode message arrived since: the counters change, so it is written
    save(saver, run, 30)
    assert calls == [30, 30] and json.loads(marker_file.read_text())["episodes"] == 2
    add_transitions(algorithm.policy, online, 1, intervention=False)  # so does a larger buffer
    save(saver, run, 30)
    assert calls == [30, 30, 30] and json.loads(marker_file.read_text())["online_buffer"] == 13
    (tmp_path / "run" / "checkpoints" / "000030" / "algorithm" / "model.safetensors").unlink()
    save(saver, run, 30)  # and a damaged checkpoint is rewritten, not trusted
    assert calls == [30, 30, 30, 30]


if __name__ == "__main__":
    torch.set_num_threads(1)
    child(Path(sys.argv[1]))
