"""The one place where LeRobot learns to build algorithms other than ``"sac"``.

LeRobot 0.6.1 parses any registered :class:`RLAlgorithmConfig` subclass, but its
``lerobot.rl.algorithms.factory.get_algorithm_class`` only knows ``"sac"``, and both the
learner and the actor build their algorithm through ``factory.make_algorithm``, which calls
that lookup by module attribute. :func:`install_algorithm_lookup` hooks that lookup (the
``"registry"`` layer of its row in :mod:`.patches`): it answers from our registry first
(``"e2hil"``, ``"sac_fast"``) and defers every other name, ``"sac"`` included, to LeRobot's
function, whose class it returns as it is. Importing ``lerobot_policy_e2hil`` installs it;
installing twice is a no-op.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Callable

from lerobot.rl.algorithms import factory
from lerobot.rl.algorithms.base import RLAlgorithm
from lerobot.rl.algorithms.configs import RLAlgorithmConfig

from . import patches

_REGISTRY: dict[str, type[RLAlgorithm]] = {}
_LOOKUP = "lerobot.rl.algorithms.factory.get_algorithm_class"


def register_algorithm(name: str) -> Callable[[type[RLAlgorithm]], type[RLAlgorithm]]:
    """Class decorator: make ``make_algorithm`` build ``cls`` for configs of type ``name``.

    Args:
        name: The config's registered choice name (``RLAlgorithmConfig.register_subclass``).

    Returns:
        The decorator, which returns the class unchanged.
    """

    def decorator(cls: type[RLAlgorithm]) -> type[RLAlgorithm]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"RL algorithm '{name}' is already registered to {_REGISTRY[name].__name__}")
        _REGISTRY[name] = cls
        return cls

    return decorator


def get_algorithm_class(name: str) -> type[RLAlgorithm]:
    """Resolve an algorithm class: our registry first, then LeRobot's built-in lookup.

    Args:
        name: Registered algorithm type, e.g. ``"e2hil"`` or ``"sac"``.

    Returns:
        The :class:`RLAlgorithm` subclass to instantiate: ours for a name we registered,
        otherwise LeRobot's, unchanged (``"sac"`` is LeRobot's ``SACAlgorithm``).

    Raises:
        ValueError: If neither registry knows ``name``; the message lists the known types.
    """
    install_algorithm_lookup()
    return factory.get_algorithm_class(name)


def _lookup(call: patches.Call) -> type[RLAlgorithm]:
    """The hook of LeRobot's lookup (see :func:`get_algorithm_class`)."""
    name = call.arguments["name"]
    if name in _REGISTRY:
        return _REGISTRY[name]
    try:
        return call.proceed()
    except ValueError as err:
        known = sorted(set(RLAlgorithmConfig.get_known_choices()) | set(_REGISTRY))
        raise ValueError(
            f"algorithm.type='{name}' is not a known RL algorithm; allowed values: {known}"
        ) from err


def install_algorithm_lookup() -> None:
    """Make ``lerobot.rl.algorithms.factory.get_algorithm_class`` answer from our registry first."""
    patches.install("import")
    patches.hook(_LOOKUP, "registry", _lookup)


#: LeRobot packages whose subpackages register device config choices (``opencv``, ``so101_follower``, ...).
DEVICE_PACKAGES = ("lerobot.cameras", "lerobot.robots", "lerobot.teleoperators")


def register_device_choices() -> list[str]:
    """Import every LeRobot camera, robot and teleoperator config module, registering its choice type.

    LeRobot registers a device type (``"opencv"``, ``"so101_follower"``, ...) only when the module
    that defines its config is imported, and the RL scripts import them after parsing, so a config
    naming them fails to parse in a fresh process. Only the ``config*`` modules (and their packages)
    are imported; a device whose optional dependencies are missing is skipped.

    Returns:
        The modules that could not be imported (for diagnostics).
    """
    skipped = []
    for package_name in DEVICE_PACKAGES:
        package = importlib.import_module(package_name)
        for sub in pkgutil.iter_modules(package.__path__):
            if not sub.ispkg:
                continue
            spec = importlib.util.find_spec(f"{package_name}.{sub.name}")
            if spec is None or spec.submodule_search_locations is None:
                continue
            for module in pkgutil.iter_modules(spec.submodule_search_locations):
                if module.name.startswith("config"):
                    name = f"{package_name}.{sub.name}.{module.name}"
                    try:
                        importlib.import_module(name)
                    except Exception:  # noqa: BLE001  (a device's optional dependency is missing)
                        skipped.append(name)
    return skipped
