"""The LeRobot 0.6.1 fixes of :mod:`lerobot_policy_e2hil.lerobot_layer.fixes` (select_action: test_lerobot_eval.py)."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import PIL.Image
import pyarrow.parquet as pq
import pytest
import torch
from lerobot.datasets import dataset_writer, io_utils
from lerobot.datasets.lerobot_dataset import LeRobotDataset
from lerobot.rl.buffer import ReplayBuffer

import lerobot_policy_e2hil  # noqa: F401  (installs the fixes under test)
from lerobot_policy_e2hil.lerobot_layer import fixes as lerobot_fixes
from lerobot_policy_e2hil.lerobot_layer import patches
from lerobot_policy_e2hil.synthetic import state_only_replay_buffer

SIM_JSON = Path(__file__).resolve().parents[1] / "HIL-SERL" / "train_gym_hil_env_SIM.json"
FRONT = "observation.images.front"
STATE = "observation.state"
ENV_STATE = "observation.environment_state"


class UInt8Demos:
    """What ``make_dataset`` (``return_uint8=True``) yields for a video dataset: uint8 CHW frames."""

    def __init__(self, frames: int = 6, episode_length: int = 3):
        generator = torch.Generator().manual_seed(0)
        self.images = torch.randint(0, 256, (frames, 3, 8, 8), dtype=torch.uint8, generator=generator)
        self.episode_length = episode_length

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        last = i % self.episode_length == self.episode_length - 1
        return {
            FRONT: self.images[i],
            STATE: torch.full((2,), float(i)),
            "action": torch.zeros(3),
            "next.reward": torch.tensor(float(last)),
            "next.done": torch.tensor(last),
            "episode_index": torch.tensor(i // self.episode_length),
        }


def _offline_buffer(dataset) -> ReplayBuffer:
    """The learner's ``initialize_offline_replay_buffer`` conversion, on ``dataset``."""
    return ReplayBuffer.from_lerobot_dataset(
        dataset, device="cpu", state_keys=[FRONT, STATE], storage_device="cpu", optimize_memory=True
    )


def test_offline_buffer_holds_demo_images_in_unit_range_and_saves(tmp_path):
    """uint8 demo frames land in [0, 1] (as the actor's), and the buffer saves as a dataset (checkpoint)."""
    demos = UInt8Demos()
    buffer = _offline_buffer(demos)
    stored = buffer.states[FRONT][: len(demos)]
    assert stored.dtype == torch.float32
    torch.testing.assert_close(stored, demos.images.float() / 255.0)
    torch.testing.assert_close(
        buffer.states[STATE][: len(demos), 0], torch.arange(6.0)
    )  # non-images untouched
    dataset = buffer.to_lerobot_dataset("local/offline", fps=10, root=tmp_path / "dataset_offline")
    assert dataset.meta.total_frames == len(demos)


def test_float_images_pass_unchanged():
    """Images already in [0, 1] (image datasets, the online buffer) are not rescaled."""
    image = torch.rand(1, 3, 4, 4)
    state = {FRONT: image, STATE: torch.tensor([[300.0]])}
    assert lerobot_fixes.images_to_unit_range(state)[FRONT] is image
    assert lerobot_fixes.images_to_unit_range({STATE: torch.tensor([[7]], dtype=torch.uint8)})[
        STATE
    ].dtype == (torch.uint8)


def test_install_all_is_idempotent_and_every_fix_names_its_cause():
    """Installing twice wraps once; each declared fix names the LeRobot code it works around."""
    wrapped = ReplayBuffer.__dict__["_lerobotdataset_to_transitions"]
    lerobot_fixes.install_all()
    assert ReplayBuffer.__dict__["_lerobotdataset_to_transitions"] is wrapped
    assert all(fix.target and fix.upstream for fix in lerobot_fixes.FIXES)
    assert any("make_dataset" in fix.upstream for fix in lerobot_fixes.FIXES)


def _state_only_buffer() -> ReplayBuffer:
    """Two whole episodes and a started one (11 transitions), with the actor's complementary info."""
    return state_only_replay_buffer(11, 4, seed=3)


def _count_embedding(monkeypatch) -> list[int]:
    """Count LeRobot's per-row embedding calls (``io_utils.embed_images`` maps this function)."""
    calls = [0]
    original = io_utils.embed_table_storage

    def counted(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(io_utils, "embed_table_storage", counted)
    return calls


def _tables(root):
    """Every parquet table under ``root`` (data and episode metadata) by relative path."""
    return {str(path.relative_to(root)): pq.read_table(path) for path in sorted(root.rglob("*.parquet"))}


def _features(table) -> dict | None:
    """The ``huggingface`` schema metadata of a table, without the hash ``map`` adds (nothing reads it)."""
    metadata = (table.schema.metadata or {}).get(b"huggingface")
    if metadata is None:
        return None
    info = json.loads(metadata)
    info.pop("fingerprint", None)
    return info


@pytest.mark.slow
def test_state_only_buffer_saves_without_the_per_row_pass_and_the_same_tables(tmp_path, monkeypatch):
    """The checkpoint's buffer dump skips the no-op embedding and writes what LeRobot's own pass writes."""
    calls = _count_embedding(monkeypatch)
    buffer = _state_only_buffer()
    buffer.to_lerobot_dataset("local/online", fps=10, root=tmp_path / "fixed")
    assert calls[0] == 0
    with patches.isolated_hooks():
        patches.unhook(lerobot_fixes.EMBED_IMAGES, "fixes")
        buffer.to_lerobot_dataset("local/online", fps=10, root=tmp_path / "lerobot")
    assert calls[0] == 11  # one per row: the pass the fix skips

    fixed, lerobot = _tables(tmp_path / "fixed"), _tables(tmp_path / "lerobot")
    assert fixed.keys() == lerobot.keys() and any(key.startswith("data/") for key in fixed)
    for key in fixed:
        assert fixed[key].equals(lerobot[key]), key  # columns, types and values
        assert _features(fixed[key]) == _features(lerobot[key]), key
    for meta in ("meta/info.json", "meta/stats.json"):
        assert (tmp_path / "fixed" / meta).read_text() == (tmp_path / "lerobot" / meta).read_text()


def test_state_only_buffer_reads_back_as_it_was_saved(tmp_path):
    """Resume's path: the saved buffer, loaded as LeRobot's learner loads it, holds the same transitions."""
    buffer = _state_only_buffer()
    buffer.to_lerobot_dataset("local/online", fps=10, root=tmp_path / "dataset")
    loaded = ReplayBuffer.from_lerobot_dataset(
        LeRobotDataset("local/online", root=tmp_path / "dataset"),
        device="cpu",
        state_keys=[STATE, ENV_STATE],
        storage_device="cpu",
    )
    assert loaded.size == buffer.size
    for key in (STATE, ENV_STATE):
        torch.testing.assert_close(
            loaded.states[key][: buffer.size], buffer.states[key][: buffer.size], rtol=0, atol=0
        )
    torch.testing.assert_close(loaded.actions[: buffer.size], buffer.actions[: buffer.size], rtol=0, atol=0)
    torch.testing.assert_close(loaded.rewards[: buffer.size], buffer.rewards[: buffer.size], rtol=0, atol=0)
    torch.testing.assert_close(loaded.dones[: buffer.size], buffer.dones[: buffer.size])


def test_datasets_with_images_are_embedded_as_before(monkeypatch):
    """An ``Image`` feature still goes through LeRobot's embedding, row by row."""
    calls = _count_embedding(monkeypatch)
    features = datasets.Features({"image": datasets.Image(), "x": datasets.Value("float32")})
    image = PIL.Image.new("RGB", (4, 4), color=(10, 20, 30))
    dataset = datasets.Dataset.from_dict({"image": [image, image], "x": [1.0, 2.0]}, features=features)
    embedded = dataset_writer.embed_images(dataset)
    assert calls[0] == 2
    assert embedded["x"] == [1.0, 2.0]


def test_a_field_help_text_is_looked_up_once_per_process_and_is_draccus_own(monkeypatch):
    """The second lookup of a class and field is answered from memory; every answer is draccus's."""
    import draccus
    from draccus.wrappers import docstring

    from lerobot_policy_e2hil.train_config import E2HiLTrainConfig

    lookups: list[tuple[type, str]] = []

    class Call:
        def __init__(self, cls: type, name: str):
            self.arguments = {"some_dataclass": cls, "field_name": name}

        def proceed(self):
            lookups.append((self.arguments["some_dataclass"], self.arguments["field_name"]))
            return docstring.AttributeDocString(comment_inline=f"help of {self.arguments['field_name']}")

    monkeypatch.setattr(lerobot_fixes, "_ATTRIBUTE_DOCSTRINGS", {})
    first = lerobot_fixes.remembered_docstring(Call(E2HiLTrainConfig, "batch_size"))
    again = lerobot_fixes.remembered_docstring(Call(E2HiLTrainConfig, "batch_size"))
    other = lerobot_fixes.remembered_docstring(Call(E2HiLTrainConfig, "seed"))
    assert first is again and first.comment_inline == "help of batch_size"
    assert other.comment_inline == "help of seed"
    assert lookups == [(E2HiLTrainConfig, "batch_size"), (E2HiLTrainConfig, "seed")]

    # Installed: a parse of the sim learner's config fills the memory with draccus's own answers
    monkeypatch.setattr(lerobot_fixes, "_ATTRIBUTE_DOCSTRINGS", {})
    draccus.parse(E2HiLTrainConfig, config_path=str(SIM_JSON), args=["--output_dir=/nonexistent/run"])
    remembered = dict(lerobot_fixes._ATTRIBUTE_DOCSTRINGS)
    assert len(remembered) > 1000
    original = docstring.get_attribute_docstring.__wrapped__
    assert all(answer == original(*key) for key, answer in remembered.items())
