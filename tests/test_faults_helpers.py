"""Helpers shared by the fault tests (no tests here): sim processes on loopback, metrics, transitions."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sys
import time
from pathlib import Path

import torch

from lerobot_policy_e2hil.launcher.children import Children, Escalation

ROOT = Path(__file__).resolve().parents[1]
SIM_JSON = ROOT / "HIL-SERL" / "train_gym_hil_env_SIM.json"


def env_with_sitecustomize(folder: Path, code: str, base: dict[str, str]) -> dict[str, str]:
    """``base`` with a ``sitecustomize`` module of ``code`` in ``folder`` first on PYTHONPATH (the caller's kept)."""
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(code)
    return {**base, "PYTHONPATH": os.pathsep.join(filter(None, (str(folder), base.get("PYTHONPATH"))))}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sim_args(port: int, **overrides) -> list[str]:
    """The sim config with a short, cheap budget; ``overrides`` are dotted flags (``a__b`` = ``a.b``)."""
    flags = {
        "policy.actor_learner_config.learner_port": port,
        "policy.actor_learner_config.policy_parameters_push_frequency": 1,
        "policy.online_step_before_learning": 100,
        "batch_size": 32,
        "log_freq": 5,
        "save_freq": 25,
        "env.teacher.demo_episodes": 2,
        "env.actor_max_hz": 40,
        **{key.replace("__", "."): value for key, value in overrides.items()},
    }
    return ["--config_path", str(SIM_JSON), *(f"--{key}={value}" for key, value in flags.items())]


class Process:
    """A sim learner or actor subprocess, its output in a file (started by ``launcher.children``)."""

    def __init__(self, role: str, args: list[str], log: Path):
        self.log = log
        env = {**os.environ, "MUJOCO_GL": "egl", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
        self._children = Children(env=env, cwd=ROOT, new_session=True)
        self.child = self._children.start(
            role, [sys.executable, "-m", f"lerobot_policy_e2hil.launcher.{role}", *args], log
        )
        self.popen = self.child.popen

    def alive(self) -> bool:
        return self.child.poll() is None

    def send(self, sig: int) -> None:
        self.child.send_signal(sig)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 120) -> int | None:
        """``sig``, then SIGKILL after ``timeout`` s; the exit status."""
        return self._children.stop([self.child.name], Escalation.then_kill(sig, timeout))[self.child.name]

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def wait_for(condition, timeout: float, what: str, processes: tuple[Process, ...] = ()):
    """Poll ``condition`` until it returns a truthy value; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        for process in processes:
            assert process.alive(), (
                f"{process.log.name} exited while waiting for {what}:\n{process.text()[-3000:]}"
            )
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def records(output_dir: Path, kind: str | None = None) -> list[dict]:
    path = output_dir / "metrics.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if kind is None or record["kind"] == kind:
            out.append(record)
    return out


def actor_queued_total(log_text: str) -> int:
    """The actor's running total of transitions handed to its transport queue (from its log)."""
    totals = re.findall(r"Queued \d+ transitions for the learner \(total (\d+)", log_text)
    return int(totals[-1]) if totals else 0


def good_transition(intervention: bool = False) -> dict:
    """A transition as the sim actor sends it (state-only sim: 18 + 3 observation, 3 + 1 action)."""
    state = {"observation.state": torch.rand(1, 18), "observation.environment_state": torch.rand(1, 3)}
    return {
        "state": state,
        "action": torch.tensor([[0.1, -0.2, 0.3, 1.0]]),
        "reward": 0.0,
        "next_state": {key: value.clone() for key, value in state.items()},
        "done": False,
        "truncated": False,
        "complementary_info": {"discrete_penalty": torch.tensor([0.0]), "is_intervention": intervention},
    }
