"""README's GPU check (``bash scripts/gpu_check.sh``), as typed, on a machine without CUDA."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.skipif(
    torch.cuda.is_available(), reason="a CUDA device is visible: the check would run for minutes"
)
def test_gpu_check_refuses_in_one_line_without_cuda():
    done = subprocess.run(
        ["bash", "scripts/gpu_check.sh"], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == ["error: no CUDA device visible to torch"]
    assert "== 1." not in done.stdout  # nothing started
