"""With the real wandb package, offline: a short sim run logs the e2hil/* metrics and the sim's curves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

wandb = pytest.importorskip("wandb")  # pip install -e ".[wandb]"


def offline_history_keys(run_dir: Path) -> set[str]:
    """Every key of every history row in an offline run's ``run-<id>.wandb`` file (wandb's own reader)."""
    from wandb.proto import wandb_internal_pb2
    from wandb.sdk.internal import datastore

    keys: set[str] = set()
    for path in run_dir.glob("offline-run-*/run-*.wandb"):
        store = datastore.DataStore()
        store.open_for_scan(str(path))
        while (data := store.scan_data()) is not None:
            record = wandb_internal_pb2.Record()
            record.ParseFromString(data)
            if record.WhichOneof("record_type") == "history":
                keys |= {item.key or "/".join(item.nested_key) for item in record.history.item}
        store.close()
    return keys


@pytest.mark.e2e
def test_a_sim_run_with_wandb_offline_writes_the_e2hil_and_sim_series(short_sim_run):
    done, out = short_sim_run  # conftest.py: --wandb.enable=true --wandb.mode=offline
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    keys = offline_history_keys(out / "wandb")  # LeRobot's logger writes the run under output_dir/wandb
    for key in (
        "e2hil/entropy",
        "e2hil/kept_fraction",
        "e2hil/intervention_fraction",
        "faults/transitions_received",
    ):
        assert f"train/{key}" in keys, sorted(keys)
    # The sim's curves: success is the episode's reward (1 on a grasp-and-lift), and its intervention rate
    assert {"train/Episodic reward", "train/Intervention rate", "train/Interaction step"} <= keys, sorted(
        keys
    )
    assert json.loads((out / "summary.json").read_text())["episodes"] >= 1
