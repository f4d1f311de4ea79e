"""What a user meets at the launcher: a SIGINT with SIGINT ignored (a script's background job), a read-only output folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from lerobot_policy_e2hil.launcher.hooks import FINAL_CHECKPOINT
from test_faults_helpers import ROOT, wait_for
from test_launcher_faults import ENV, LAUNCH_FLAGS, alive, process_tree

pytest.importorskip("gym_hil")


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # what a shell does to a script's background job


@pytest.mark.e2e
@pytest.mark.slow
def test_a_launcher_started_with_sigint_ignored_stops_on_sigint_with_its_final_checkpoint(tmp_path):
    out, logs = tmp_path / "run", tmp_path / ".run.launch"
    with open(tmp_path / "launcher.out", "w") as stdout, open(tmp_path / "launcher.err", "w") as stderr:
        launcher = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lerobot_policy_e2hil.launcher.train",
                *LAUNCH_FLAGS,
                "--policy.online_steps=100000",
                "--save_freq=100000",
                f"--output_dir={out}",
            ],  # fmt: skip
            stdout=stdout,
            stderr=stderr,
            cwd=ROOT,
            env=ENV,
            start_new_session=True,
            preexec_fn=_ignore_sigint,
        )
    children: list[int] = []
    try:

        def trained() -> bool:
            metrics = out / "metrics.jsonl"
            return metrics.exists() and '"kind": "train"' in metrics.read_text(errors="replace")

        wait_for(lambda: launcher.poll() is not None or trained(), 300, "the learner's first update")
        assert launcher.poll() is None, (tmp_path / "launcher.err").read_text()[-3000:]
        children = process_tree(launcher.pid)[1:]
        os.kill(launcher.pid, signal.SIGINT)
        code = launcher.wait(timeout=200)
    finally:
        for pid in [launcher.pid, *children]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    text = (tmp_path / "launcher.out").read_text() + (tmp_path / "launcher.err").read_text()
    assert code == 1, text[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and "SIGINT" in summary["reason"], summary
    assert FINAL_CHECKPOINT in (logs / "learner.out").read_text(errors="replace")
    assert (out / "checkpoints" / "last" / "pretrained_model" / "model.safetensors").exists()


def test_a_sigint_before_training_stops_a_launcher_that_inherited_sigint_ignored(monkeypatch, capsys):
    from lerobot_policy_e2hil.launcher import train

    def run(args):  # the set-up before training, receiving the SIGINT
        os.kill(os.getpid(), signal.SIGINT)
        return {"interrupted": False, "checkpoint": "somewhere"}

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    monkeypatch.setattr(train, "run", run)
    monkeypatch.setattr(sys, "argv", ["e2hil-sim", "--config_path", "x.json"])
    try:
        with pytest.raises(SystemExit) as exit_info:
            train.main()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.startswith("error: the launcher was stopped by SIGINT")


def test_a_read_only_output_folder_is_named_as_such_not_as_one_to_resume(tmp_path, monkeypatch):
    from lerobot_policy_e2hil.errors import SetupError
    from lerobot_policy_e2hil.launcher import train
    from test_faults_helpers import SIM_JSON

    out = tmp_path / "run"
    out.mkdir()
    real_access = os.access
    # root writes through a chmod 0o555 folder; a read-only mount or another owner is what is simulated
    monkeypatch.setattr(
        train.os, "access", lambda p, mode: False if str(p) == str(out) else real_access(p, mode)
    )
    for extra in ([], ["--resume=true"]):
        with pytest.raises(SetupError) as info:
            train.run(["--config_path", str(SIM_JSON), f"--output_dir={out}", *extra])
        assert str(info.value).startswith(f"the output directory {out} exists but is not writable")
        assert "already exists" not in str(info.value)
