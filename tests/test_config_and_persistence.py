"""E2HiL config: parse-time validation, JSON round trips, registry, checkpoint round trip."""

import json
from dataclasses import dataclass

import draccus
import pytest
import torch
from lerobot.rl.algorithms import factory
from lerobot.rl.algorithms.configs import RLAlgorithmConfig
from lerobot.rl.algorithms.sac import SACAlgorithm

from lerobot_policy_e2hil import E2HiLAlgorithm, E2HiLAlgorithmConfig
from lerobot_policy_e2hil.algorithm.configuration_e2hil import E2HiLConfigError
from lerobot_policy_e2hil.synthetic import make_policy, make_rl_algorithm, random_batch


@dataclass
class Pipeline:
    """The shape of LeRobot's TrainRLServerPipelineConfig.algorithm field."""

    algorithm: RLAlgorithmConfig | None = None


def parse_json(tmp_path, algorithm_block):
    path = tmp_path / "train.json"
    path.write_text(json.dumps({"algorithm": algorithm_block}))
    with draccus.config_type("json"):
        return draccus.parse(Pipeline, str(path), args=[])


def test_json_selects_e2hil_with_paper_defaults(tmp_path):
    cfg = parse_json(tmp_path, {"type": "e2hil"}).algorithm
    assert type(cfg) is E2HiLAlgorithmConfig
    assert cfg.type == "e2hil"
    assert (cfg.num_action_samples, cfg.influence_lower_quantile, cfg.influence_upper_quantile) == (
        8,
        0.05,
        0.90,
    )
    assert (cfg.influence_form, cfg.selection) == ("policy_gradient", True)
    assert cfg.discount == 0.99  # SAC fields keep their defaults


def test_dotted_flags_override_json(tmp_path):
    path = tmp_path / "train.json"
    path.write_text(json.dumps({"algorithm": {"type": "e2hil", "num_action_samples": 4}}))
    with draccus.config_type("json"):
        cfg = draccus.parse(
            Pipeline,
            str(path),
            args=["--algorithm.num_action_samples=16", "--algorithm.influence_form=natural"],
        )
    assert (cfg.algorithm.num_action_samples, cfg.algorithm.influence_form) == (16, "natural")


@pytest.mark.parametrize(
    ("block", "field", "allowed"),
    [
        ({"influence_lower_quantile": -0.1}, "influence_lower_quantile", "[0, 1]"),
        ({"influence_upper_quantile": 1.5}, "influence_upper_quantile", "[0, 1]"),
        ({"influence_lower_quantile": 0.9, "influence_upper_quantile": 0.9}, "influence_lower_quantile", "<"),
        ({"num_action_samples": 1}, "num_action_samples", "integers >= 2"),
        ({"influence_form": "fisher"}, "influence_form", "'policy_gradient', 'natural'"),
        ({"density_clamp": 0.0}, "density_clamp", "> 0"),
        ({"eps": 0.0}, "eps", "> 0"),
    ],
)
def test_invalid_values_fail_at_parse_time_naming_field_and_allowed_values(tmp_path, block, field, allowed):
    with pytest.raises(draccus.utils.ParsingError) as excinfo:
        parse_json(tmp_path, {"type": "e2hil", **block})
    message = str(excinfo.value)
    assert f"algorithm.{field}=" in message and allowed in message
    with pytest.raises(E2HiLConfigError, match=field):
        E2HiLAlgorithmConfig(**block)


def test_config_json_round_trip(tmp_path):
    cfg = E2HiLAlgorithmConfig(num_action_samples=16, influence_form="natural", influence_upper_quantile=0.8)
    cfg._save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["type"] == "e2hil" and saved["num_action_samples"] == 16
    loaded = RLAlgorithmConfig.from_pretrained(tmp_path)
    assert loaded == cfg


def test_lookup_resolves_e2hil_and_keeps_sac():
    assert factory.get_algorithm_class("e2hil") is E2HiLAlgorithm
    assert factory.get_algorithm_class("sac") is SACAlgorithm
    with pytest.raises(ValueError, match=r"allowed values: \[.*'e2hil'.*'sac'.*'sac_fast'"):
        factory.get_algorithm_class("ppo")


def test_save_and_load_keeps_critics_targets_and_temperature_parameter(tmp_path):
    torch.manual_seed(0)
    policy = make_policy(hidden_dim=64, latent_dim=32, num_discrete_actions=3)
    trained = make_rl_algorithm("e2hil", policy, temperature_init=0.5, num_action_samples=4)
    batches = iter(lambda: random_batch(policy, 16), None)
    for _ in range(3):
        trained.update(batches)
    trained.save_pretrained(tmp_path / "algorithm")

    fresh = make_rl_algorithm("e2hil", make_policy(hidden_dim=64, latent_dim=32, num_discrete_actions=3))
    optimizer_alpha = fresh.optimizers["temperature"].param_groups[0]["params"][0]
    loaded = E2HiLAlgorithm.from_pretrained(tmp_path / "algorithm", policy=fresh.policy)
    fresh.load_state_dict(loaded.state_dict())

    assert type(loaded.config) is E2HiLAlgorithmConfig and loaded.config.num_action_samples == 4
    assert fresh.log_alpha is optimizer_alpha
    assert torch.equal(fresh.log_alpha.detach(), trained.log_alpha.detach())
    assert fresh.temperature != 0.5  # three updates moved it: the equality above is not trivial
    saved, restored = trained.state_dict(), fresh.state_dict()
    assert saved.keys() == restored.keys()
    assert any(k.startswith("critic_target.") for k in saved)
    assert any(k.startswith("discrete_critic_target.") for k in saved)
    for key in saved:
        assert torch.equal(saved[key], restored[key]), key
