"""docs/configuration.md is what scripts/gen_config_reference.py writes from the config dataclasses."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location(
        "gen_config_reference", ROOT / "scripts" / "gen_config_reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_committed_reference_equals_the_generated_one():
    generated = _generator().render()
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == generated, (
        "docs/configuration.md is out of date: run python scripts/gen_config_reference.py"
    )


def test_every_field_of_the_documented_classes_is_listed_with_a_meaning():
    gen = _generator()
    text = (ROOT / "docs" / "configuration.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) >= 80
    assert [row for row in rows if row.endswith("| - |")] == []
    for name in (
        "num_action_samples",
        "random_mask",
        "decay_episodes",
        "teacher_gap",
        "connect_timeout_s",
        "tls_cert",
    ):
        assert f".{name}` |" in text, name
    assert gen.anchor("Runtime and faults (`--faults.*`)") == "runtime-and-faults---faults"


def test_a_new_field_reaches_the_reference(monkeypatch):
    """The generator reads the classes themselves: a field added to one appears in the output."""
    import dataclasses

    from lerobot_policy_e2hil.sim import config

    gen = _generator()

    @dataclasses.dataclass
    class Launch(config.LaunchConfig):
        # Seconds of a new setting
        new_setting_s: float = 1.5

    Launch.__name__ = "LaunchConfig"
    monkeypatch.setattr(config, "LaunchConfig", Launch)
    assert "| `env.launch.new_setting_s` | `float` | `1.5` | Seconds of a new setting |" in gen.render()
