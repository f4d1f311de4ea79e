"""Test-wide settings (headless MuJoCo, no hub access) and fixtures shared by several test files."""

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

ROOT = Path(__file__).resolve().parents[1]


#: argv words of the programs that start a learner (directly, or as a launcher that spawns one).
LEARNER_PROGRAMS = (
    "e2hil-learner",
    "lerobot.rl.learner",
    "lerobot_policy_e2hil.cli",
    "e2hil-sim",
    "lerobot_policy_e2hil.launcher.train",
    "lerobot_policy_e2hil.launcher.learner",
    "e2hil-so101-dry-run",
    "lerobot_policy_e2hil.so101.dry_run",
    "bench_several_actors",
    "train_and_evaluate_sim",
)


def _starts_a_learner(args) -> str | None:
    words = [args] if isinstance(args, str | bytes | os.PathLike) else list(args)
    text = " ".join(os.fsdecode(word) for word in words)
    return next((program for program in LEARNER_PROGRAMS if program in text), None)


@contextmanager
def _no_learner(item: pytest.Item) -> Iterator[None]:
    """Fail ``item`` (not marked ``slow`` or ``e2e``) as soon as it starts a learner process.

    ``make test-fast`` (``-m "not slow and not e2e"``) must start none: no subprocess whose argv
    names a learner or a launcher that starts one. (LeRobot's learner functions called in this
    process are left alone: the patch table's tests replace and check them.)
    """
    if item.get_closest_marker("slow") or item.get_closest_marker("e2e"):
        yield
        return
    original_init = subprocess.Popen.__init__
    started: list[str] = []  # also what a thread of the test started (its own failure stays there)

    def fail(what: str) -> None:
        started.append(what)
        pytest.fail(f"{item.nodeid} {what}: mark it @pytest.mark.slow or @pytest.mark.e2e")

    def checked_init(self, args, *rest, **kwargs):
        program = _starts_a_learner(args)
        if program is not None:
            fail(f"starts {program!r}")
        original_init(self, args, *rest, **kwargs)

    subprocess.Popen.__init__ = checked_init
    try:
        yield
    finally:
        subprocess.Popen.__init__ = original_init
    if started:
        pytest.fail(f"{item.nodeid} {started[0]}: mark it @pytest.mark.slow or @pytest.mark.e2e")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    with _no_learner(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    with _no_learner(item):
        return (yield)


#: Session fixtures that start processes; the tests reading one share one pytest-xdist worker.
SHARED_RUNS = ("so101_dry_run", "trained", "short_sim_run")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups into the node ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``pytest -n N --dist loadgroup``, each shared run is made once (on one worker).

    The slow and end-to-end tests run first: the many short ones then fill in at the end, so no
    worker waits idle through the other's last long test.
    """
    for item in items:
        shared = [name for name in SHARED_RUNS if name in getattr(item, "fixturenames", ())]
        if shared:
            item.add_marker(pytest.mark.xdist_group(shared[0]))
    items.sort(key=lambda item: not any(item.get_closest_marker(m) for m in ("slow", "e2e", "xdist_group")))


def save_small_sim_checkpoint(directory: Path) -> Path:
    """A randomly initialised sim policy saved as the learner saves ``pretrained_model``."""
    import torch
    from lerobot.policies import make_pre_post_processors
    from lerobot.policies.gaussian_actor.configuration_gaussian_actor import GaussianActorConfig
    from lerobot.policies.gaussian_actor.modeling_gaussian_actor import GaussianActorPolicy

    from lerobot_policy_e2hil.sim.config import sim_features

    policy_json = json.loads((ROOT / "HIL-SERL/train_gym_hil_env_SIM.json").read_text())["policy"]
    features = sim_features(image_obs=False)
    config = GaussianActorConfig(
        input_features={
            "observation.state": features["agent_pos"],
            "observation.environment_state": features["environment_state"],
        },
        output_features={"action": features["action"]},
        num_discrete_actions=3,
        latent_dim=32,
        dataset_stats=policy_json["dataset_stats"],
    )
    config.actor_network_kwargs.hidden_dims = [32, 32]
    torch.manual_seed(0)
    policy = GaussianActorPolicy(config)
    pretrained = directory / "pretrained_model"
    policy.save_pretrained(pretrained)
    preprocessor, postprocessor = make_pre_post_processors(config, dataset_stats=config.dataset_stats)
    preprocessor.save_pretrained(pretrained)
    postprocessor.save_pretrained(pretrained)
    return pretrained


@pytest.fixture
def small_sim_checkpoint(tmp_path) -> Path:
    """:func:`save_small_sim_checkpoint` in the test's ``tmp_path``."""
    return save_small_sim_checkpoint(tmp_path)


@pytest.fixture(scope="session")
def short_sim_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """One short sim run of the console script ``e2hil-sim`` (500 env steps, 2 updates per env step
    in lockstep, two actors), made once per session for every test that reads one.

    It runs as on a new headless machine (no ``MUJOCO_GL``, no display: ``test_headless_gl``) with
    wandb on, offline (``test_wandb_offline``), and with two actors sharing the budget
    (``test_sim_several_actors_e2e``), so those claims need no run of their own.

    Returns:
        The launcher's completed process and its ``output_dir`` (wandb's files under ``wandb/``).
    """
    base = tmp_path_factory.mktemp("short_sim_run")
    out = base / "run"
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "DISPLAY", "WAYLAND_DISPLAY")}
    env.update(
        HF_HUB_OFFLINE="1",
        WANDB_MODE="offline",
        WANDB_DIR=str(base / "wandb"),
        WANDB_ERROR_REPORTING="false",
    )
    command = [
        str(Path(sys.executable).parent / "e2hil-sim"),
        "--config_path", str(ROOT / "HIL-SERL" / "train_gym_hil_env_SIM.json"),
        f"--output_dir={out}",
        "--policy.online_steps=500",
        "--policy.online_step_before_learning=100",
        "--log_freq=10",
        "--save_freq=100000",
        "--batch_size=64",
        "--env.launch.eval_episodes=2",
        "--env.launch.progress_interval_s=5",
        "--env.teacher.demo_episodes=3",
        "--env.updates_per_env_step=2.0",
        "--env.launch.num_actors=2",
        "--wandb.enable=true",
        "--wandb.mode=offline",  # LeRobot passes wandb.mode to wandb.init, over WANDB_MODE
        "--wandb.project=e2hil-test",
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT, env=env), out


@pytest.fixture(scope="session")
def so101_dry_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """The documented ``e2hil-so101-dry-run`` with its default sizes, run once per session.

    Returns:
        Its completed process and its ``--output_dir``.
    """
    out = tmp_path_factory.mktemp("so101_dry_run") / "so101_dry_run"
    result = subprocess.run(
        [str(Path(sys.executable).parent / "e2hil-so101-dry-run"), f"--output_dir={out}"],
        cwd=ROOT,
        env={**os.environ, "MUJOCO_GL": "egl", "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=1800,
        stdin=subprocess.DEVNULL,
    )
    return result, out


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> dict:
    """The SO101 learner-side checkpoint of ``test_so101_checkpoint``, made once per session.

    Read by ``test_so101_checkpoint`` and by ``test_documented_commands`` (its evaluation commands'
    ``--policy_path``).
    """
    from test_so101_checkpoint import train_so101_checkpoint

    return train_so101_checkpoint(tmp_path_factory)


@pytest.fixture
def lerobot_eval_on_sim(tmp_path) -> Callable[..., tuple[subprocess.CompletedProcess, Path]]:
    """Run LeRobot's ``lerobot-eval`` on the headless sim env in a fresh process.

    Returns:
        ``run(policy_path, max_episode_steps, n_episodes) -> (completed process, output dir)``.
    """

    def run(
        policy_path: Path, max_episode_steps: int, n_episodes: int
    ) -> tuple[subprocess.CompletedProcess, Path]:
        out = tmp_path / "eval"
        result = subprocess.run(
            [
                str(Path(sys.executable).parent / "lerobot-eval"),
                f"--policy.path={policy_path}",
                "--env.type=e2hil_sim",
                f"--env.max_episode_steps={max_episode_steps}",
                f"--eval.n_episodes={n_episodes}",
                "--eval.batch_size=1",
                "--policy.device=cpu",
                f"--output_dir={out}",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "MUJOCO_GL": "egl"},
        )
        return result, out

    return run
