"""Where a suite's runs train: processes on this machine (the default) or the tasks of a Ray cluster.

Both executors train a run with :func:`train_task`, which sends the run's stdout and stderr to
``<run dir>/train.log`` and returns the run's failure (the exception's last line) instead of
raising it, so one failed run does not stop the others. The local executor trains into the run
directory itself. A Ray task trains into a temporary directory on whichever node runs it and
returns the directory's files; the driver writes them into ``runs_dir/<name>/``, so run
directories and records end up on the driver's disk, as the local executor leaves them, and a
study can move between executors without training a finished run again.

Ray is imported only by :class:`RayExecutor` (``pip install -e ".[ray]"``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import multiprocessing
import os
import socket
import sys
import tempfile
import traceback
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import RunConfig

EXECUTORS = ("local", "ray")
# Each run's stdout and stderr, in its run directory
LOG_FILE = "train.log"
# The files of a run directory that a result is read from last (written last by the driver)
RESULT_FILE = "result.json"


@dataclass
class Outcome:
    """How one run ended."""

    # The run's name
    name: str
    # None if it finished, else the cause: the last line of its exception
    error: str | None = None
    # The end-of-run summary line (:func:`.trainer.summary_line`) of a finished run
    line: str = ""
    # Files of the run directory that the driver writes (a Ray task's; empty when written in place)
    files: dict[str, bytes] | None = None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (Python's and the C libraries') to ``path``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    with open(path, "w", buffering=1) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _flush_print(line: str) -> None:
    print(line, flush=True)


def train_task(
    run_data: dict[str, Any], root: str | None, out_dir: str | None, config_text: str | None = None
) -> Outcome:
    """Train one run, its output to ``train.log`` in its directory; a failure is returned, not raised.

    Args:
        run_data: The run (:meth:`.config.RunConfig.to_dict`).
        root: Directory a relative config path is resolved against.
        out_dir: The run directory; None: a temporary one whose files are returned.
        config_text: The training JSON's text (a relative ``config_path`` is read from it
            instead of from ``root``, for nodes without the driver's checkout).
    """
    os.environ.setdefault("MUJOCO_GL", "egl")
    run = RunConfig.from_dict(run_data)
    with tempfile.TemporaryDirectory(prefix="e2hil_run_") as tmp:
        here = Path(out_dir) if out_dir is not None else Path(tmp) / run.name
        if config_text is not None:
            root = str(Path(tmp) / "root")
            config = Path(root) / run.config_path
            config.parent.mkdir(parents=True, exist_ok=True)
            config.write_text(config_text)
        here.mkdir(parents=True, exist_ok=True)
        outcome = Outcome(run.name)
        with _output_to(here / LOG_FILE):
            try:
                import lerobot_policy_e2hil  # noqa: F401  (registers e2hil, e2hil_sim)

                from .trainer import summary_line, train_run

                result = train_run(run, out_dir=here, root=Path(root) if root else None, log=_flush_print)
                outcome.line = summary_line(result)
            except SystemExit as err:  # what draccus does on a bad training-JSON flag, after its message
                sys.stderr.flush()
                said = _last_line((here / LOG_FILE).read_text(errors="replace"))
                said = said[said.find("error:") :] if "error:" in said else said  # without argparse's prog
                traceback.print_exc()
                outcome.error = f"exited with status {err.code}: {said}"
            except Exception:
                text = traceback.format_exc()
                print(text, file=sys.stderr, flush=True)
                outcome.error = _last_line(text)
        if out_dir is None:
            outcome.files = {p.name: p.read_bytes() for p in here.iterdir() if p.is_file()}
    return outcome


def land(outcome: Outcome, run_dir: Path) -> None:
    """Write a Ray task's files into ``run_dir``, the result last (it marks the run as finished)."""
    if not outcome.files:
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in sorted(outcome.files, key=lambda n: n == RESULT_FILE):
        tmp = run_dir / (name + ".tmp")
        tmp.write_bytes(outcome.files[name])
        tmp.replace(run_dir / name)


# --- the executors ---------------------------------------------------------------------------


class LocalExecutor:
    """``workers`` runs at a time on this machine: in this process (1) or in spawned processes."""

    name = "local"

    def __init__(self, workers: int = 2):
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> LocalExecutor:
        if self.workers > 1:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=context)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def slots(self) -> int:
        """Runs trained at once."""
        return self.workers

    def submit(self, run: RunConfig, run_dir: Path, root: Path | None) -> Any:
        """Start ``run`` (in this process: when :meth:`wait` is called)."""
        args = (run.to_dict(), str(root) if root else None, str(run_dir))
        if self._pool is None:
            return functools.partial(train_task, *args)
        return self._pool.submit(train_task, *args)

    def wait(self, handles: list[Any]) -> list[tuple[Any, Outcome]]:
        """The runs of ``handles`` that finished (at least one), each with its outcome."""
        if self._pool is None:
            return [(handles[0], handles[0]())]
        done, _ = wait_futures(handles, return_when=FIRST_COMPLETED)
        return [(future, _future_outcome(future)) for future in done]

    def cancel(self, handles: list[Any]) -> None:
        """Stop what still runs (the pool's shutdown on exit waits for the running ones)."""
        for handle in handles:
            if isinstance(handle, Future):
                handle.cancel()


def _future_outcome(future: Future) -> Outcome:
    err = future.exception()
    if err is None:
        return future.result()
    return Outcome(name="", error=f"{type(err).__name__}: {_last_line(str(err))}")


class RayExecutor:
    """Each run is one Ray task (one CPU for its torch thread, one GPU when its policy is on cuda).

    Args:
        address: A running cluster's address (``"auto"``: the one ``ray start --head`` started on
            this machine); None: a local Ray with this machine's CPUs, stopped at the end.
    """

    name = "ray"

    def __init__(self, address: str | None = None):
        self.address = address
        self._ray: Any = None
        self._task: Any = None

    def __enter__(self) -> RayExecutor:
        import ray

        from ..errors import ConfigError

        try:
            if self.address is None:
                ray.init(
                    address="local",
                    num_cpus=len(os.sched_getaffinity(0)),
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level="warning",
                )
            else:
                _check_reachable(self.address)
                ray.init(address=self.address, log_to_driver=False, logging_level="warning")
        except ConnectionError as err:
            raise ConfigError(
                f"ray.address={self.address!r} is invalid: {_last_line(str(err))}; allowed values: {_ADDRESSES}"
            ) from err
        self._ray = ray
        self._task = ray.remote(train_task)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._ray is not None:
            self._ray.shutdown()
            self._ray = None

    def slots(self) -> int:
        """Runs in flight: the cluster's CPUs now (a cluster that grows gets more)."""
        return max(1, int(self._ray.cluster_resources().get("CPU", 1)))

    def submit(self, run: RunConfig, run_dir: Path, root: Path | None) -> Any:
        """Send ``run`` to the cluster with the training JSON's text; the files come back to the driver."""
        path = Path(run.config_path)
        if not path.is_absolute() and root is not None:
            path = Path(root) / path
        text = path.read_text() if path.is_file() and not Path(run.config_path).is_absolute() else None
        gpus = 1 if _policy_device(text, run).startswith("cuda") else 0
        options = self._task.options(num_cpus=run.threads, num_gpus=gpus, max_retries=0)
        return options.remote(run.to_dict(), str(root) if root else None, None, text)

    def wait(self, handles: list[Any]) -> list[tuple[Any, Outcome]]:
        """The tasks of ``handles`` that finished (at least one), each with its outcome."""
        done, _ = self._ray.wait(handles, num_returns=1)
        finished = []
        for ref in done:
            try:
                outcome = self._ray.get(ref)
            except Exception as err:  # the task's process died (killed, out of memory, node lost)
                outcome = Outcome(name="", error=f"{type(err).__name__}: {_last_line(str(err))}")
            finished.append((ref, outcome))
        return finished

    def cancel(self, handles: list[Any]) -> None:
        """Stop the tasks still in flight (their workers are killed)."""
        for ref in handles:
            with contextlib.suppress(Exception):
                self._ray.cancel(ref, force=True)


_ADDRESSES = (
    "the address of a running Ray cluster (start one with `ray start --head`), or unset for a local Ray"
)
# Seconds a cluster's address has to answer (Ray itself would wait on an address that never answers)
CONNECT_TIMEOUT_S = 10.0


def _check_reachable(address: str) -> None:
    """Raise ConnectionError if nothing listens at ``address`` (or ``RAY_ADDRESS``, which Ray prefers).

    ``auto`` without ``RAY_ADDRESS`` is left to Ray, which finds the cluster started on this
    machine or says there is none; ``ray://`` (Ray Client) addresses are left to Ray too.
    """
    target = os.environ.get("RAY_ADDRESS") or address
    if target == "auto" or "://" in target:
        return
    host, _, port = target.rpartition(":")
    try:
        socket.create_connection((host or target, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except (OSError, ValueError) as err:
        raise ConnectionError(f"nothing answers at {target} ({err})") from err


def _policy_device(config_text: str | None, run: RunConfig) -> str:
    """The run's ``policy.device``: its last ``--policy.device`` override, else the JSON's."""
    device = "cpu"
    if config_text is not None:
        with contextlib.suppress(ValueError, AttributeError):
            device = str((json.loads(config_text).get("policy") or {}).get("device") or "cpu")
    for flag in run.overrides:
        if flag.startswith("--policy.device="):
            device = flag.split("=", 1)[1]
    return device


def make_executor(name: str, workers: int = 2, ray_address: str | None = None) -> LocalExecutor | RayExecutor:
    """The executor called ``name`` (one of :data:`EXECUTORS`)."""
    if name == "ray":
        return RayExecutor(ray_address)
    return LocalExecutor(workers)
