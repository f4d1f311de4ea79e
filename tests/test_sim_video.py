"""``lerobot-eval`` on the sim writes the videos it lists: one camera, real frames, affordable cost."""

import json
from pathlib import Path

import numpy as np
import pytest

from lerobot_policy_e2hil.sim.env import make_sim_env


def test_render_returns_one_rgb_frame():
    env = make_sim_env({})
    try:
        env.reset()
        frame = env.render()
    finally:
        env.close()
    assert isinstance(frame, np.ndarray)
    assert frame.shape == (128, 128, 3) and frame.dtype == np.uint8
    assert frame.std() > 0  # a scene, not a blank buffer


@pytest.mark.e2e
def test_lerobot_eval_writes_the_videos_it_lists(small_sim_checkpoint, lerobot_eval_on_sim):
    import av

    result, out = lerobot_eval_on_sim(small_sim_checkpoint, max_episode_steps=8, n_episodes=1)
    assert result.returncode == 0, result.stderr[-3000:]
    listed = json.loads((out / "eval_info.json").read_text())["overall"]["video_paths"]
    assert len(listed) == 1
    for path in listed:
        assert Path(path).is_file(), f"eval_info.json lists {path}, which was not written"
        with av.open(path) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(frames) >= 8
        assert frames[0].shape == (128, 128, 3)
