"""Headless gym_hil simulation: env config, task, scripted teacher, controller, teacher-free evaluation.

Importing this package registers ``--env.type=e2hil_sim`` with LeRobot. It never imports
gym_hil or MuJoCo (the env and the teacher load them on first use), and it does nothing when
LeRobot's env configs cannot be imported. The one-command launcher that trains in it is
:mod:`..launcher`.
"""

try:
    from .config import E2HiLSimEnvConfig, LaunchConfig, TeacherConfig
except ImportError:  # pragma: no cover - optional parts missing
    E2HiLSimEnvConfig = LaunchConfig = TeacherConfig = None  # type: ignore[assignment,misc]

__all__ = ["E2HiLSimEnvConfig", "LaunchConfig", "TeacherConfig"]
