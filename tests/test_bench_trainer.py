"""The synchronous benchmark trainer: determinism, SAC untouched by the probe, config errors."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("gym_hil")

import lerobot_policy_e2hil  # noqa: E402,F401
from lerobot_policy_e2hil.algorithm.sac_fast import SACFastAlgorithm  # noqa: E402
from lerobot_policy_e2hil.bench.config import QUICK_BUDGET, RunConfig, load_pipeline_config  # noqa: E402
from lerobot_policy_e2hil.bench.probe import entropy_from_noise, log_prob_from_noise  # noqa: E402
from lerobot_policy_e2hil.bench.trainer import SyncTrainer, load_result, load_samples, train_run  # noqa: E402
from lerobot_policy_e2hil.errors import ConfigError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def quick(method: str, **changes) -> RunConfig:
    return dataclasses.replace(QUICK_BUDGET.run(method, seed=3), **changes)


def _silent(_line: str) -> None:
    pass


def _comparable(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "timing"}


@pytest.mark.slow
def test_quick_run_is_deterministic(tmp_path):
    run = quick("e2hil")
    first = train_run(run, out_dir=tmp_path / "a", root=ROOT, log=_silent)
    second = train_run(run, out_dir=tmp_path / "b", root=ROOT, log=_silent)
    assert _comparable(first) == _comparable(second)
    assert load_result(tmp_path / "a")["summary"] == first["summary"]
    a, b = load_samples(tmp_path / "a"), load_samples(tmp_path / "b")
    assert set(a) == {"abs_c", "is_intervention", "kept", "dropped_high", "opt_step"}
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])

    s = first["summary"]
    assert s["env_steps"] == run.env_steps and s["updates"] > 0 and s["episodes"] > 0
    assert 0 < s["intervention_steps"] < run.env_steps  # demos and take-overs, not every step
    assert s["offline_size"] > 0  # interventions went to the offline buffer, as in the learner
    assert [e["env_step"] for e in first["evals"]] == [run.eval_every, run.env_steps]
    assert first["episodes"][0][2] == first["episodes"][0][1]  # first episode is a full demonstration
    assert first["probes"] and all(0 < p["kept_fraction"] < 1 for p in first["probes"])
    assert a["is_intervention"].any() and (~a["is_intervention"]).any()
    other_seed = train_run(dataclasses.replace(run, seed=4), root=ROOT, log=_silent)
    assert other_seed["episodes"] != first["episodes"]


def _trained(run: RunConfig) -> SyncTrainer:
    trainer = SyncTrainer(run, root=ROOT, log=_silent)
    trainer.build()
    trainer.result = trainer.run()
    trainer.close()
    return trainer


@pytest.mark.slow
def test_sac_run_is_sac_and_the_probe_does_not_change_it():
    probed = _trained(quick("sac", probe_every=1))
    plain = _trained(quick("sac", probe_every=0))
    assert type(probed.algorithm) is SACFastAlgorithm  # LeRobot's SAC with the fast update
    assert not any(key.startswith("e2hil/") for rec in probed.result["train_log"] for key in rec)
    assert probed.result["probes"] and not plain.result["probes"]
    # bit for bit the same weights and the same run with and without the probe
    for name, tensor in probed.algorithm.policy.state_dict().items():
        torch.testing.assert_close(tensor, plain.algorithm.policy.state_dict()[name], rtol=0, atol=0)
    for name, tensor in probed.algorithm.critic_ensemble.state_dict().items():
        torch.testing.assert_close(tensor, plain.algorithm.critic_ensemble.state_dict()[name], rtol=0, atol=0)
    assert probed.result["episodes"] == plain.result["episodes"]
    assert probed.result["evals"] == plain.result["evals"]


def test_methods_share_every_sac_field():
    sac = load_pipeline_config(quick("sac"), ROOT).algorithm
    e2hil = load_pipeline_config(quick("e2hil", num_action_samples=4), ROOT).algorithm
    assert sac.type == "sac_fast" and e2hil.type == "e2hil"  # LeRobot's SAC with the fast update
    assert e2hil.num_action_samples == 4 and e2hil.influence_upper_quantile == 0.9  # from the JSON
    for field in dataclasses.fields(sac):
        if field.name != "policy_config":
            assert getattr(sac, field.name) == getattr(e2hil, field.name), field.name
    assert sac.discount == 0.97 and sac.temperature_init == 0.01  # the JSON's, not SAC's defaults


def test_benchmark_keeps_the_teacher_it_was_measured_with():
    """make sim's JSON lets the teacher step back; the benchmark's runs (and cache) keep the full-time one."""
    import json

    teacher = json.loads((ROOT / "HIL-SERL/train_gym_hil_env_SIM.json").read_text())["env"]["teacher"]
    assert teacher["decay_episodes"] > 0 and teacher["min_takeover_probability"] > 0
    for method in ("sac", "e2hil"):
        bench_teacher = load_pipeline_config(quick(method), ROOT).env.teacher
        assert bench_teacher.decay_episodes == 0 and bench_teacher.min_takeover_probability == 0.0
        assert bench_teacher.demo_episodes == 2  # the quick budget's own override still applies after the pin


def test_run_config_errors_name_the_field():
    with pytest.raises(ConfigError, match=r"bench.method='td3' is invalid; allowed values: 'sac', 'e2hil'"):
        RunConfig(method="td3")
    with pytest.raises(ConfigError, match="bench.updates_per_env_step"):
        RunConfig(updates_per_env_step=0)
    with pytest.raises(ConfigError, match="bench.method='sac'.*'e2hil' when an E2HiL field"):
        RunConfig(method="sac", num_action_samples=4)
    with pytest.raises(ConfigError, match="bench.influence_upper_quantile"):
        RunConfig(influence_upper_quantile=1.5)
    with pytest.raises(ConfigError, match="bench.config_path"):
        load_pipeline_config(RunConfig(config_path="missing.json"), ROOT)


def test_log_prob_from_noise_matches_the_actor_distribution():
    from lerobot.policies.gaussian_actor.modeling_gaussian_actor import TanhMultivariateNormalDiag

    generator = torch.Generator().manual_seed(0)
    loc = torch.randn(5, 3, generator=generator) * 0.5
    scale = torch.rand(5, 3, generator=generator) * 0.5 + 0.1
    distribution = TanhMultivariateNormalDiag(loc=loc, scale_diag=scale)
    noise = torch.randn(4, 5, 3, generator=generator)
    actions, log_prob = log_prob_from_noise(distribution, noise)
    # LeRobot passes scale_diag as the covariance of the base Gaussian: its std is sqrt(scale_diag)
    torch.testing.assert_close(actions, torch.tanh(loc + scale.sqrt() * noise))
    torch.testing.assert_close(log_prob, distribution.log_prob(actions), rtol=1e-4, atol=1e-4)
    assert entropy_from_noise(distribution, noise) == pytest.approx(-float(log_prob.double().mean()))


def test_each_run_gets_its_seed_in_the_registered_env():
    import gymnasium as gym

    from lerobot_policy_e2hil.sim.config import SIM_GYM_ID

    for seed in (5, 6):
        cfg = load_pipeline_config(quick("sac", seed=seed), ROOT)
        assert cfg.seed == cfg.env.env_seed == cfg.env.teacher.seed == seed
        assert cfg.env.random_block_position
        options = gym.registry[SIM_GYM_ID].kwargs["sim_options"]
        assert options["seed"] == seed and options["teacher"]["seed"] == seed
        assert options["random_block_position"] and options["max_episode_steps"] == 30
