"""``e2hil-bench influence-check``: the measurement machinery and the documented command."""

import copy
import json
import os
import subprocess
import sys

import pytest
import torch

from lerobot_policy_e2hil.bench.influence_check import (
    SAMPLE_ROWS,
    CheckSettings,
    ShadowStep,
    batch_level_stats,
    per_sample_check,
)
from lerobot_policy_e2hil.errors import ConfigError
from lerobot_policy_e2hil.synthetic import make_policy, make_rl_algorithm, random_batch


def trained_synthetic(steps=3, batch_size=32):
    torch.manual_seed(0)
    policy = make_policy(hidden_dim=32, latent_dim=16)
    algorithm = make_rl_algorithm("e2hil", policy, influence_form="first_order")
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        algorithm.update(iter([random_batch(policy, batch_size, generator=generator)]))
    batch = random_batch(policy, batch_size, generator=generator)
    return algorithm, algorithm._prepare_forward_batch(batch, include_complementary_info=False)


def test_shadow_step_is_the_training_optimizer_step_and_repeatable():
    algorithm, batch = trained_synthetic()
    optimizer = algorithm.optimizers["actor"]
    params = algorithm.actor_parameters()
    step = ShadowStep(optimizer, params)
    loss = algorithm._compute_loss_actor(batch)
    optimizer.zero_grad()
    loss.backward()
    grads = {name: p.grad.clone() for name, p in params.items()}
    other = {name: torch.randn_like(g) for name, g in grads.items()}
    step(other)  # a step with other gradients must not leak into the next one
    shadow = step(grads)
    optimizer.step()
    assert shadow and all(torch.equal(shadow[n], params[n]) for n in params)


def test_per_sample_first_order_matches_small_sgd_steps_and_leaves_the_model_alone():
    algorithm, batch = trained_synthetic()
    before = copy.deepcopy(algorithm.policy.actor.state_dict())
    optimizer_before = copy.deepcopy(algorithm.optimizers["actor"].state_dict())
    algorithm.config.num_action_samples = 256  # grad H with little Monte Carlo noise
    result = per_sample_check(algorithm, batch, CheckSettings(samples=16, entropy_samples=256))
    assert result["samples"] == 16 and len(result["sgd"]) == 16 and len(result["adam"]) == 16
    assert set(result["predicted"]) == set(SAMPLE_ROWS)
    # At actor_lr = 3e-4 a one-sample SGD step is in the linear regime: c with P = I predicts it
    # (the paper's forms reach r ~ 0.1-0.3 here).
    assert result["stats"]["first_order_sgd"]["sgd_pearson"] > 0.99
    assert all(torch.equal(before[k], v) for k, v in algorithm.policy.actor.state_dict().items())
    state = algorithm.optimizers["actor"].state_dict()["state"]
    assert all(
        torch.equal(value, optimizer_before["state"][index][key])
        for index, entry in state.items()
        for key, value in entry.items()
    )


def test_batch_level_stats_sign_agreement_and_correlation():
    records = [
        {"measured": m, "policy_gradient": p, "natural": -p, "first_order": 2 * m, "first_order_momentum": m}
        for m, p in ((0.1, 1.0), (-0.2, 2.0), (0.3, 3.0), (-0.1, 4.0))
    ]
    stats = batch_level_stats(records)
    assert stats["first_order"]["pearson"] == pytest.approx(1.0)
    assert stats["first_order"]["sign_agreement"] == 1.0
    assert stats["natural"]["sign_agreement"] == 0.5


@pytest.mark.parametrize(("field", "value"), [("samples", 1), ("entropy_samples", 0), ("probe_every", -1)])
def test_settings_reject_bad_values_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=f"^{field}={value}"):
        CheckSettings(**{field: value})


def _bench(*args, cwd):
    env = {**os.environ, "MUJOCO_GL": "egl"}
    command = [sys.executable, "-m", "lerobot_policy_e2hil.bench.cli", "influence-check", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.e2e
def test_influence_check_command_trains_reports_and_reuses_its_snapshot(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    config = os.path.join(root, "HIL-SERL", "train_gym_hil_env_SIM.json")
    common = ["--quick=true", "--samples=16", "--entropy_samples=8", f"--config_path={config}"]
    done = _bench(*common, "--report_dir=report", "--run_dir=run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "report" / "influence_check.json").read_text())
    markdown = (tmp_path / "report" / "influence_check.md").read_text()
    assert (tmp_path / "report" / "influence_check.png").stat().st_size > 0
    assert "first_order, P = I (SGD)" in markdown and "policy_gradient (paper Eq. 9)" in markdown
    assert report["batch_level"]["n_steps"] > 0
    assert report["per_sample"]["stats"]["first_order_sgd"]["sgd_pearson"] > 0.9

    again = _bench(*common, "--report_dir=again", "--snapshot=run/snapshot.pt", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    reused = json.loads((tmp_path / "again" / "influence_check.json").read_text())
    # Recomputed from the same snapshot in another process: equal up to float rounding (MKL's
    # kernels may round the last bit differently with another memory alignment); a snapshot not
    # reused would train another policy and differ in every digit.
    assert reused["per_sample"]["sgd"] == pytest.approx(report["per_sample"]["sgd"], rel=1e-9, abs=1e-15)
    assert reused["batch_level"]["records"] == report["batch_level"]["records"]


@pytest.mark.slow
def test_influence_check_bad_input_is_one_line(tmp_path):
    done = _bench("--quick=true", "--samples=1", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["error: samples=1 is invalid; allowed values: >= 2"]
