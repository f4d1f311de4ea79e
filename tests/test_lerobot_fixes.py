"""The LeRobot 0.6.1 fixes of :mod:`lerobot_policy_e2hil.lerobot_fixes` (select_action: test_lerobot_eval.py)."""

from __future__ import annotations

import torch
from lerobot.rl.buffer import ReplayBuffer

import lerobot_policy_e2hil  # noqa: F401  (installs the fixes under test)
from lerobot_policy_e2hil import lerobot_fixes

FRONT = "observation.images.front"
STATE = "observation.state"


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
