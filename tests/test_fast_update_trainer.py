"""The benchmark trainer's runs are the same with and without the fast update (``algorithm.fast_update``)."""

import dataclasses
from pathlib import Path

import pytest
import torch

pytest.importorskip("gym_hil")

from lerobot_policy_e2hil.algorithm.fast_update import uses_fast_update  # noqa: E402
from lerobot_policy_e2hil.bench.config import QUICK_BUDGET  # noqa: E402
from lerobot_policy_e2hil.bench.trainer import SyncTrainer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _run(monkeypatch, method: str, fast: bool) -> SyncTrainer:
    run = QUICK_BUDGET.run(method, seed=5)
    run = dataclasses.replace(
        run,
        overrides=(*run.overrides, f"--algorithm.fast_update={str(fast).lower()}"),
        env_steps=120,
        updates_per_env_step=1.0,
        eval_every=0,
        probe_every=0,
        threads=1,
    )
    trainer = SyncTrainer(run, root=ROOT, log=lambda _line: None)
    try:
        trainer.build()
        trainer.result = trainer.run()
    finally:
        trainer.close()
    return trainer


@pytest.mark.slow
@pytest.mark.parametrize("method", ["sac", "e2hil"])
def test_a_training_run_is_the_same_with_the_fast_update(monkeypatch, method):
    slow = _run(monkeypatch, method, fast=False)
    fast = _run(monkeypatch, method, fast=True)
    assert not uses_fast_update(slow.algorithm) and uses_fast_update(fast.algorithm)
    assert slow.cfg.algorithm.fast_update is False and fast.cfg.algorithm.fast_update is True
    assert slow.result["timing"]["fast_update"] is False and fast.result["timing"]["fast_update"] is True
    assert fast.result["summary"]["updates"] == slow.result["summary"]["updates"] >= 75
    for key in ("summary", "episodes", "evals"):
        assert fast.result[key] == slow.result[key], key
    slow_train = [
        {k: v for k, v in r.items() if not k.startswith("e2hil/")} for r in slow.result["train_log"]
    ]
    fast_train = [
        {k: v for k, v in r.items() if not k.startswith("e2hil/")} for r in fast.result["train_log"]
    ]
    assert fast_train == slow_train
    states = {
        "policy": (slow.algorithm.policy.state_dict(), fast.algorithm.policy.state_dict()),
        "algorithm": (slow.algorithm.state_dict(), fast.algorithm.state_dict()),
    }
    for owner, (slow_state, fast_state) in states.items():
        for name, tensor in slow_state.items():
            torch.testing.assert_close(fast_state[name], tensor, rtol=0, atol=0, msg=f"{owner}.{name}")
