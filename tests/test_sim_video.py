"""``lerobot-eval`` on the sim writes the videos it lists: one camera, real frames, affordable cost."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from lerobot_policy_e2hil.sim.env import make_sim_env
from test_lerobot_eval import small_checkpoint


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


def test_lerobot_eval_writes_the_videos_it_lists(tmp_path):
    import av

    out = tmp_path / "eval"
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "lerobot-eval"),
            f"--policy.path={small_checkpoint(tmp_path)}",
            "--env.type=e2hil_sim",
            "--env.max_episode_steps=8",
            "--eval.n_episodes=1",
            "--eval.batch_size=1",
            "--policy.device=cpu",
            f"--output_dir={out}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "MUJOCO_GL": "egl"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    listed = json.loads((out / "eval_info.json").read_text())["overall"]["video_paths"]
    assert len(listed) == 1
    for path in listed:
        assert Path(path).is_file(), f"eval_info.json lists {path}, which was not written"
        with av.open(path) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(frames) >= 8
        assert frames[0].shape == (128, 128, 3)
