"""A headless OpenGL default for MuJoCo, set before anything imports it.

MuJoCo picks its OpenGL backend from ``MUJOCO_GL`` when it is first imported; unset, it uses GLFW,
which needs a display. On a Linux machine without one (no ``DISPLAY`` or ``WAYLAND_DISPLAY``) a
render then fails with "an OpenGL platform library has not been loaded". The package's
``__init__`` calls :func:`default_mujoco_gl` first, so every console script and ``python -m``
entry point renders headless through EGL (as ``make`` does) unless the user chose a backend.
"""

from __future__ import annotations

import os
import sys

#: The backend used on a Linux machine without a display when ``MUJOCO_GL`` is unset.
HEADLESS_GL = "egl"


def default_mujoco_gl(environ: dict[str, str] | None = None, platform: str | None = None) -> str | None:
    """Set ``MUJOCO_GL`` to :data:`HEADLESS_GL` when it is unset and there is no display (Linux only).

    Args:
        environ: The environment to read and change (``os.environ`` when None).
        platform: ``sys.platform`` (for tests).

    Returns:
        The value of ``MUJOCO_GL`` afterwards (None: unset, MuJoCo's own default applies).
    """
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if (
        not environ.get("MUJOCO_GL")
        and platform.startswith("linux")
        and not environ.get("DISPLAY")
        and not environ.get("WAYLAND_DISPLAY")
    ):
        environ["MUJOCO_GL"] = HEADLESS_GL
    return environ.get("MUJOCO_GL")
