"""The update and actor benchmark commands of docs/benchmarks.md run, as subprocesses, on tiny sizes."""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lerobot_policy_e2hil.fast_update import heads_min_q, state_parts
from lerobot_policy_e2hil.synthetic import make_policy, make_rl_algorithm, random_batch

REPO = Path(__file__).resolve().parents[1]
TINY = ["--batch-size", "8", "--updates", "2", "--rounds", "1"]
#: ``bench_estimate_precision.py`` on tiny sizes (also run on a real checkpoint and snapshot elsewhere).
ESTIMATE_TINY = [*TINY, "--k", "2", "--agreement-batches", "2"]


def _run(*args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    return done.stdout


def test_bench_fast_update_compares_lerobot_fast_and_floor():
    out = _run("benchmarks/bench_fast_update.py", *TINY)
    for contender in ("lerobot", "fast", "floor", "floor+adam"):
        assert any(line.split()[0] == contender for line in out.splitlines() if line.strip()), contender
    assert "speed-up lerobot/fast" in out and "fast/floor" in out


@pytest.mark.parametrize("cameras", ["0", "1"])
def test_bench_fast_update_e2hil_prints_both_ratios(cameras):
    out = _run("benchmarks/bench_fast_update.py", "--e2hil", "--k", "2", "--cameras", cameras, *TINY)
    assert "E2HiL/SAC (lerobot)" in out and "E2HiL/SAC (fast   )" in out
    assert ("camera(s) 128x128" in out) == (cameras != "0")


def test_profile_update_prints_phases_operators_floor_and_replay():
    out = _run("benchmarks/profile_update.py", "--fast", "1", *TINY)
    assert out.startswith("ours (fast update) SAC update")
    for text in ("floor", "backward", "Adam step", "matmul (mm, addmm, bmm)", "replay: one mixed batch of 8"):
        assert text in out, text


def test_bench_fast_update_e2hil_prints_the_earlier_estimate_as_a_contender():
    out = _run("benchmarks/bench_fast_update.py", "--e2hil", "--k", "2", *TINY)
    assert any(line.startswith("e2hil split ") for line in out.splitlines())
    assert "E2HiL/SAC (split  )" in out


def test_profile_update_e2hil_breaks_down_the_extra_cost_over_sac():
    out = _run("benchmarks/profile_update.py", "--e2hil", "--k", "2", *TINY)
    assert out.startswith("E2HiL (fast, policy_gradient, K=2) vs SAC (fast), state-only, batch 8")
    for text in (
        "extra",
        "Monte Carlo estimate (heads_min_q)",
        "influence, quantiles, mask, masked mean",
        "sampling + log-prob",
        "second layer GEMM (16 x 256 x 256)",
        "LayerNorm (2 per head)",
        "state part W_e e + b",
    ):
        assert text in out, text


def test_bench_buffer_save_times_both_writers_and_compares_their_tables():
    """docs/benchmarks.md's checkpoint-writer command, on a small buffer (LeRobot's dataset code logs
    torchcodec's load failure with a traceback on machines without FFmpeg's libraries, so stderr is
    not checked for one)."""
    command = [sys.executable, "benchmarks/bench_buffer_save.py", "--transitions", "90", "--rounds", "1"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "90 transitions, 3 episodes of 30 steps" in done.stdout
    assert "lerobot / fixed: wall" in done.stdout
    assert "same tables (columns, types, values): yes" in done.stdout


def test_bench_rounding_levers_prints_each_lever_with_its_time_and_drift():
    out = _run("benchmarks/bench_rounding_levers.py", "--drift-updates", "3", *TINY)
    rows = {line[:20].strip(): line for line in out.splitlines()}
    for contender in ("lerobot", "fast", "fast+fused adam", "fast+diagonal", "fast+batched heads"):
        assert contender in rows, contender
    assert "0.00e+00 0.00e+00  within 1e-6" in rows["fast"]  # the shipped fast update is bit for bit
    assert "drift after 3 updates" in out


def _benchmark(monkeypatch, name: str):
    """The benchmark script ``benchmarks/<name>.py`` as a module."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    return importlib.import_module(name)


def _levers(monkeypatch):
    return _benchmark(monkeypatch, "bench_rounding_levers")


def test_diagonal_lever_draws_and_scores_actions_as_lerobots_distribution(monkeypatch):
    levers = _levers(monkeypatch)
    torch.manual_seed(0)
    actor = make_policy().actor
    observations = random_batch(make_policy(), 64, generator=torch.Generator().manual_seed(1))["state"]
    results = []
    for forward in (actor.forward, lambda *args: levers.diagonal_actor_forward(actor, *args)):
        torch.manual_seed(2)
        actor.zero_grad()
        actions, log_prob, means = forward(observations)
        (actions.sum() + log_prob.sum()).backward()
        results.append((actions, log_prob, means, [p.grad.clone() for p in actor.parameters()]))
    (actions, log_prob, means, grads), (d_actions, d_log_prob, d_means, d_grads) = results
    torch.testing.assert_close(d_means, means, rtol=0, atol=0)
    torch.testing.assert_close(d_actions, actions, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(d_log_prob, log_prob, rtol=1e-5, atol=1e-5)
    for d_grad, grad in zip(d_grads, grads, strict=True):
        torch.testing.assert_close(d_grad, grad, rtol=1e-4, atol=1e-5)


def test_batched_heads_lever_computes_lerobots_ensemble_forward(monkeypatch):
    levers = _levers(monkeypatch)
    torch.manual_seed(0)
    policy = make_policy()
    algorithm = make_rl_algorithm("sac", policy)
    batch = random_batch(policy, 32, generator=torch.Generator().manual_seed(1))
    ensemble = algorithm.critic_ensemble
    results = []
    for forward in (ensemble.forward, lambda *args: levers.batched_ensemble_forward(ensemble, *args)):
        ensemble.zero_grad()
        q_values = forward(batch["state"], batch["action"])
        q_values.sum().backward()
        results.append((q_values, [p.grad.clone() for p in ensemble.parameters()]))
    (q_values, grads), (b_q_values, b_grads) = results
    assert b_q_values.shape == q_values.shape == (2, 32)
    torch.testing.assert_close(b_q_values, q_values, rtol=1e-5, atol=1e-6)
    for b_grad, grad in zip(b_grads, grads, strict=True):
        torch.testing.assert_close(b_grad, grad, rtol=1e-4, atol=1e-5)


def test_bench_estimate_precision_prints_both_ratios_and_the_agreement():
    out = _run("benchmarks/bench_estimate_precision.py", *ESTIMATE_TINY)
    rows = [line.split()[0:3] for line in out.splitlines() if line.strip()]
    for contender in ("sac fast", "e2hil fast", "e2hil bf16 estimate"):
        assert any(" ".join(row).startswith(contender) for row in rows), contender
    assert "E2HiL/SAC (e2hil fast         )" in out and "E2HiL/SAC (e2hil bf16 estimate)" in out
    assert "synthetic networks at initialisation: 2 x 8 random states" in out
    assert any(line.startswith("bf16 ") for line in out.splitlines())
    assert any(line.startswith("float32, other draw") for line in out.splitlines())


def test_bf16_estimate_is_the_float32_estimate_at_bfloat16_rounding(monkeypatch):
    """The lever computes the shipped estimate's Q values, rounded as bfloat16 rounds, not another function."""
    lever = _benchmark(monkeypatch, "bench_estimate_precision")

    torch.manual_seed(0)
    policy = make_policy()
    algorithm = make_rl_algorithm("e2hil", policy)
    heads = list(algorithm.critic_ensemble.critics)
    for head in heads:  # larger weights: Q of a trained size
        for parameter in head.parameters():
            parameter.data.mul_(3.0)
    encoding = algorithm.critic_ensemble.encoder(random_batch(policy, 32)["state"]).detach()
    actions = torch.rand(4, 32, 3) * 2 - 1
    bases = state_parts(heads, encoding)
    exact = heads_min_q(heads, bases, actions)
    rounded = heads_min_q(lever.bfloat16_heads(heads), bases, actions)
    assert rounded.dtype == torch.float32 and rounded.shape == exact.shape == (4, 32)
    assert not torch.equal(rounded, exact)  # it does round to bfloat16
    # bfloat16 keeps 8 significant bits (unit roundoff 2^-9 = 0.002); the errors of the
    # hidden layer's inputs and weights add up over its 256 inputs, partly cancelling
    torch.testing.assert_close(rounded, exact, rtol=0, atol=0.02 * exact.abs().max().item())


@pytest.mark.parametrize(
    ("script", "flags", "message"),
    [
        ("bench_fast_update.py", ["--rounds", "0"], "argument --rounds: must be an integer >= 1, got 0"),
        ("bench_fast_update.py", ["--e2hil", "--k", "1"], "argument --k: must be an integer >= 2, got 1"),
        ("profile_update.py", ["--updates", "0"], "argument --updates: must be an integer >= 1, got 0"),
        (
            "bench_rounding_levers.py",
            ["--drift-updates", "0"],
            "argument --drift-updates: must be an integer >= 1",
        ),
        (
            "bench_rounding_levers.py",
            ["--batch-size", "x"],
            "argument --batch-size: invalid integer value: 'x'",
        ),
        ("bench_update.py", ["--k", "1"], "argument --k: must be an integer >= 2, got 1"),
        (
            "bench_update.py",
            ["--forms", "natural,bogus"],
            "--forms: 'bogus' is not an influence_form; allowed",
        ),
        ("bench_actor_throughput.py", ["--steps", "0"], "argument --steps: must be an integer >= 1, got 0"),
        ("bench_estimate_precision.py", ["--k", "1"], "argument --k: must be an integer >= 2, got 1"),
        ("bench_estimate_precision.py", ["--snapshot", "missing.pt"], "--snapshot: no file missing.pt"),
        (
            "bench_estimate_precision.py",
            ["--checkpoint", "docs"],
            "--checkpoint: docs has no algorithm/config.json (a learner checkpoint: checkpoints/<step>)",
        ),
        (
            "bench_estimate_precision.py",
            ["--checkpoint", "x", "--snapshot", "y"],
            "argument --snapshot: not allowed with argument --checkpoint",
        ),
    ],
)
def test_update_benchmarks_reject_bad_sizes_with_one_line(script, flags, message):
    done = subprocess.run(
        [sys.executable, f"benchmarks/{script}", *flags],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert message in done.stderr.splitlines()[-1]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("algorithm", "feature", "message"),
    [
        ("sac", "STATE", "is a 'sac' run's; allowed values: an 'e2hil' run's checkpoint"),
        ("e2hil", None, "has no pretrained_model/config.json (a learner checkpoint: checkpoints/<step>)"),
        (
            "e2hil",
            "VISUAL",
            "is a camera run's (observation.images.front); allowed values: a state-only run's",
        ),
    ],
)
def test_bench_estimate_precision_refuses_a_checkpoint_it_cannot_read_in_one_line(
    tmp_path, algorithm, feature, message
):
    checkpoint = tmp_path / "checkpoints" / "000100"
    for folder in ("algorithm", "pretrained_model"):
        (checkpoint / folder).mkdir(parents=True)
    (checkpoint / "algorithm" / "config.json").write_text(json.dumps({"type": algorithm}))
    features = {"observation.state": {"type": "STATE"}, "observation.images.front": {"type": feature}}
    if feature is not None:
        (checkpoint / "pretrained_model" / "config.json").write_text(json.dumps({"input_features": features}))
    command = [sys.executable, "benchmarks/bench_estimate_precision.py", "--checkpoint", str(checkpoint)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].endswith(f"--checkpoint: {checkpoint} {message}")
    assert "Traceback" not in done.stderr


def test_bench_update_prints_sac_and_e2hil_per_form():
    """``make bench``'s script (docs/benchmarks.md, "Update cost"), state-only, tiny sizes."""
    out = _run(
        "benchmarks/bench_update.py",
        "--skip-images",
        "--updates",
        "1",
        "--rounds",
        "1",
        "--batch-size",
        "8",
        "--k",
        "2",
    )
    for form in ("policy_gradient", "first_order"):
        line = next(line for line in out.splitlines() if line.startswith("state-only") and form in line)
        assert "batch    8  K=2" in line and "SAC" in line and "E2HiL" in line and "ratio" in line


def test_bench_actor_throughput_compares_both_controllers():
    """docs/benchmarks.md's actor-throughput command, on 20 env steps."""
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    command = [sys.executable, "benchmarks/bench_actor_throughput.py", "--steps", "20", "--rounds", "1"]
    done = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "1 rounds of 20 env steps" in done.stdout
    assert "gym-hil opspace controller" in done.stdout and "ratio fast / gym-hil" in done.stdout
