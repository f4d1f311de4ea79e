"""Console scripts that run LeRobot's own RL learner and actor with this plugin loaded.

LeRobot's ``lerobot.rl.learner`` and ``lerobot.rl.actor`` do not call
``register_third_party_plugins()``, so a config with ``"algorithm": {"type": "e2hil"}`` would
fail to parse there. These entry points import the plugin first and then hand the untouched
command line (``--config_path=...`` and dotted overrides) to LeRobot's CLI functions.
"""

from __future__ import annotations


def learner_main() -> None:
    """``e2hil-learner``: ``python -m lerobot.rl.learner`` with E2HiL registered."""
    from . import install_algorithm_lookup

    install_algorithm_lookup()
    from lerobot.rl.learner import train_cli

    train_cli()


def actor_main() -> None:
    """``e2hil-actor``: ``python -m lerobot.rl.actor`` with E2HiL registered."""
    from . import install_algorithm_lookup

    install_algorithm_lookup()
    from lerobot.rl.actor import actor_cli

    actor_cli()
