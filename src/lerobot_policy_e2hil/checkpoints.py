"""Atomic learner checkpoints that carry their replay buffers, and the choice of one to resume.

LeRobot 0.6.1's ``save_training_checkpoint`` writes ``checkpoints/<step>/`` in place, points
``checkpoints/last`` at it, and only then deletes and rewrites the replay buffers in
``<output_dir>/dataset`` and ``dataset_offline``. A crash in between leaves ``last`` pointing at
a checkpoint whose buffers are gone or half written. :class:`AtomicCheckpointer` wraps that
function instead of replacing it:

1. LeRobot's function writes the whole checkpoint, buffers included, under a hidden staging
   directory ``checkpoints/.staging-<step>/`` (it is called with ``output_dir`` pointing there);
2. the buffers move into the step directory (``checkpoints/<step>/dataset``, ``dataset_offline``),
   ``train_config.json`` is rewritten with the real ``output_dir``, the run counters are added to
   ``training_state/training_step.json`` and a completeness marker, :data:`MARKER`, lists the parts
   and records the size of every file;
3. every file is fsynced and the step directory is renamed into ``checkpoints/`` (atomic on one
   file system), then ``last`` is replaced by a new symlink with ``os.replace`` (atomic too);
4. ``<output_dir>/dataset`` and ``dataset_offline`` become symlinks to ``checkpoints/last/...``, so
   LeRobot's own resume code loads the buffers of the checkpoint it resumes from;
5. checkpoints older than the newest ``keep_buffers`` complete ones lose their buffers and marker
   (their model stays, for evaluation).

On resume, :func:`prepare_resume` removes staging leftovers, picks the newest checkpoint whose
files all have the sizes its marker records (a truncated file, e.g. by a full disk or a copy,
makes it fall back to the previous one, with a warning) and points ``last`` at it.
"""

from __future__ import annotations

import copy
import inspect
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lerobot.common.train_utils import get_step_checkpoint_dir
from lerobot.utils.constants import (
    ALGORITHM_DIR,
    CHECKPOINTS_DIR,
    LAST_CHECKPOINT_LINK,
    PRETRAINED_MODEL_DIR,
    TRAINING_STATE_DIR,
    TRAINING_STEP,
)

from .errors import SetupError

MARKER = "e2hil_complete.json"
STAGING_PREFIX = ".staging-"
BUFFER_DIRS = ("dataset", "dataset_offline")
_REQUIRED_PARTS = (
    f"{PRETRAINED_MODEL_DIR}/model.safetensors",
    f"{PRETRAINED_MODEL_DIR}/train_config.json",
    f"{TRAINING_STATE_DIR}/{TRAINING_STEP}",
)
_OPTIONAL_PARTS = (f"{ALGORITHM_DIR}/model.safetensors", *(f"{name}/meta/info.json" for name in BUFFER_DIRS))


def step_dirs(checkpoints: Path) -> list[Path]:
    """The ``<step>`` directories under ``checkpoints``, newest (highest step) first."""
    if not checkpoints.is_dir():
        return []
    steps = [p for p in checkpoints.iterdir() if p.name.isdigit() and p.is_dir() and not p.is_symlink()]
    return sorted(steps, key=lambda p: int(p.name), reverse=True)


def read_marker(checkpoint: Path) -> dict[str, Any] | None:
    """The completeness marker of ``checkpoint``, or None when it is missing or unreadable."""
    try:
        return json.loads((checkpoint / MARKER).read_text())
    except (OSError, ValueError):
        return None


def file_sizes(root: Path) -> dict[str, int]:
    """Size in bytes of every file under ``root`` (symlinks not followed), by relative path."""
    sizes = {}
    for directory, _, files in os.walk(root):
        for name in files:
            path = Path(directory) / name
            if not path.is_symlink() and name != MARKER:
                sizes[path.relative_to(root).as_posix()] = path.stat().st_size
    return sizes


def damage(checkpoint: Path) -> str | None:
    """What is wrong with a checkpoint that has a marker, or None when it verifies.

    Every file the marker records must exist with its recorded size (a marker written before
    sizes were recorded: every part it lists must exist).

    Args:
        checkpoint: A ``checkpoints/<step>`` directory.

    Returns:
        A short reason (``"pretrained_model/model.safetensors has 1000 bytes, 52344 expected"``),
        ``"no completeness marker"``, or None.
    """
    marker = read_marker(checkpoint)
    if marker is None:
        return f"no completeness marker {MARKER}"
    expected = marker.get("files") or {part: None for part in marker.get("parts", [])}
    for relative, size in sorted(expected.items()):
        path = checkpoint / relative
        if not path.is_file():
            return f"{relative} is missing"
        if size is not None and path.stat().st_size != size:
            return f"{relative} has {path.stat().st_size} bytes, {size} expected"
    return None


def is_complete(checkpoint: Path) -> bool:
    """Whether ``checkpoint`` has a marker and every file it records, with the recorded sizes."""
    return damage(checkpoint) is None


def choose_checkpoint(output_dir: Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest checkpoint of ``output_dir`` that verifies, and the newer ones that did not.

    Returns:
        The chosen checkpoint (None when none verifies) and ``(checkpoint, reason)`` for each
        damaged checkpoint newer than it (one that still has its marker but fails :func:`damage`).
    """
    skipped = []
    for checkpoint in step_dirs(Path(output_dir) / CHECKPOINTS_DIR):
        reason = damage(checkpoint)
        if reason is None:
            return checkpoint, skipped
        if read_marker(checkpoint) is not None:
            skipped.append((checkpoint, reason))
    return None, skipped


def newest_complete(output_dir: Path) -> Path | None:
    """The complete checkpoint with the highest step in ``output_dir`` whose files verify, or None."""
    return choose_checkpoint(output_dir)[0]


def fsync_tree(root: Path) -> None:
    """Flush every file and directory under ``root`` (``root`` included) to disk."""
    for directory, _, files in os.walk(root):
        for name in files:
            _fsync(Path(directory) / name, os.O_RDONLY)
        _fsync(Path(directory), os.O_RDONLY | os.O_DIRECTORY)


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def point_symlink(link: Path, target: str) -> None:
    """Make ``link`` a symlink to ``target`` in one atomic step (a temporary link renamed over it)."""
    temporary = link.with_name(f".{link.name}.new")
    if temporary.is_symlink() or temporary.exists():
        temporary.unlink()
    os.symlink(target, temporary)
    os.replace(temporary, link)
    _fsync(link.parent, os.O_RDONLY | os.O_DIRECTORY)


def link_buffers(output_dir: Path) -> None:
    """Point ``<output_dir>/dataset`` and ``dataset_offline`` at the buffers of ``checkpoints/last``.

    A real directory left there by LeRobot's own save (a run started before this plugin) is
    replaced; call this only once a complete checkpoint holds the buffers.
    """
    for name in BUFFER_DIRS:
        link = output_dir / name
        target = f"{CHECKPOINTS_DIR}/{LAST_CHECKPOINT_LINK}/{name}"
        if link.is_symlink() and os.readlink(link) == target:
            continue
        if link.is_dir() and not link.is_symlink():
            shutil.rmtree(link)
        point_symlink(link, target)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def remove_staging(checkpoints: Path) -> None:
    """Delete what interrupted saves left behind (never a complete checkpoint)."""
    if not checkpoints.is_dir():
        return
    for leftover in checkpoints.glob(f"{STAGING_PREFIX}*"):
        logging.warning(f"[LEARNER] Removing {leftover}, left by a checkpoint save that did not finish")
        _remove(leftover)


def prepare_resume(output_dir: Path) -> Path:
    """Choose the checkpoint to resume ``output_dir`` from and point ``checkpoints/last`` at it.

    The newest checkpoint with a valid marker wins. A run whose checkpoints all lack the marker
    (written by LeRobot alone) resumes from ``last``, as LeRobot would, with a warning.

    Args:
        output_dir: The run directory given with ``--output_dir``.

    Returns:
        The chosen checkpoint directory.

    Raises:
        SetupError: When there is nothing to resume from.
    """
    output_dir = Path(output_dir)
    checkpoints = output_dir / CHECKPOINTS_DIR
    remove_staging(checkpoints)
    last = checkpoints / LAST_CHECKPOINT_LINK
    chosen, skipped = choose_checkpoint(output_dir)
    for damaged, reason in skipped:
        logging.warning(
            f"[LEARNER] Skipping checkpoint {damaged}: {reason} (damaged after it was saved); "
            "falling back to the previous complete checkpoint"
        )
    if chosen is None and skipped:
        raise SetupError(
            f"--resume=true but no checkpoint in {checkpoints} verifies ({skipped[-1][0].name}: "
            f"{skipped[-1][1]}). Restore the damaged files, or start a new run without --resume in a new output_dir."
        )
    if chosen is None:
        if last.is_dir():
            logging.warning(
                f"[LEARNER] No checkpoint in {checkpoints} has the completeness marker {MARKER} "
                f"(saved without e2hil's atomic checkpoints); resuming from {last.resolve()} as LeRobot would"
            )
            return last.resolve()
        raise SetupError(
            f"--resume=true but {checkpoints} holds no complete checkpoint to resume from. Check "
            "--output_dir (it must be the directory of the interrupted run), or start a new run "
            "without --resume in a new output_dir."
        )
    if not last.is_dir() or last.resolve() != chosen.resolve():
        previous = os.readlink(last) if last.is_symlink() else "nothing"
        logging.warning(
            f"[LEARNER] checkpoints/last pointed to {previous}, which is not the newest complete "
            f"checkpoint; resuming from {chosen.name} instead"
        )
        point_symlink(last, chosen.name)
    link_buffers(output_dir)
    marker = read_marker(chosen) or {}
    logging.info(
        f"[LEARNER] Resuming from checkpoint {chosen} (optimization step {marker.get('step')}, "
        f"{marker.get('interaction_step')} env steps, online buffer {marker.get('online_buffer')}, "
        f"offline buffer {marker.get('offline_buffer')})"
    )
    return chosen


class AtomicCheckpointer:
    """Drop-in replacement for ``lerobot.rl.learner.save_training_checkpoint`` (see module doc).

    Args:
        original: LeRobot's ``save_training_checkpoint``.
        keep_buffers: How many of the newest complete checkpoints keep their replay buffers.
        run_state: Returns counters to store in ``training_step.json`` and the marker (env steps...).
        on_saved: Called with the marker of every published checkpoint and its path.
    """

    def __init__(
        self,
        original: Callable[..., None],
        keep_buffers: int,
        run_state: Callable[[], dict[str, Any]],
        on_saved: Callable[[dict[str, Any], Path], None] | None = None,
    ):
        self.original = original
        self.signature = inspect.signature(original)
        self.keep_buffers = keep_buffers
        self.run_state = run_state
        self.on_saved = on_saved

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = bound.arguments
        cfg, step, total = arguments["cfg"], arguments["optimization_step"], arguments["online_steps"]
        output_dir = Path(cfg.output_dir)
        final = get_step_checkpoint_dir(output_dir, total, step)
        if self.holds_live_state(final, step, arguments):
            point_symlink(final.parent / LAST_CHECKPOINT_LINK, final.name)
            logging.info(
                f"[LEARNER] Checkpoint {final} already holds this state (optimization step, env steps, "
                "buffer sizes); not written again"
            )
            return
        staging = final.parent / f"{STAGING_PREFIX}{final.name}"
        _remove(staging)
        staging.mkdir(parents=True)

        staged_cfg = copy.copy(cfg)
        staged_cfg.output_dir = staging
        arguments["cfg"] = staged_cfg
        self.original(*bound.args, **bound.kwargs)

        staged = get_step_checkpoint_dir(staging, total, step)
        for name in BUFFER_DIRS:
            if (staging / name).is_dir():
                os.rename(staging / name, staged / name)
        cfg.save_pretrained(staged / PRETRAINED_MODEL_DIR)
        marker = self._write_state(staged, step, arguments)
        fsync_tree(staged)

        if final.exists():
            os.rename(final, staging / "replaced")
        os.rename(staged, final)
        _fsync(final.parent, os.O_RDONLY | os.O_DIRECTORY)
        point_symlink(final.parent / LAST_CHECKPOINT_LINK, final.name)
        link_buffers(output_dir)
        _remove(staging)
        self.prune(final.parent)
        logging.info(
            f"[LEARNER] Checkpoint {final} complete: optimization step {step}, "
            f"{marker.get('interaction_step')} env steps, online buffer {marker['online_buffer']}, "
            f"offline buffer {marker['offline_buffer']}"
        )
        if self.on_saved is not None:
            self.on_saved(marker, final)

    def holds_live_state(self, checkpoint: Path, step: int, arguments: dict[str, Any]) -> bool:
        """Whether ``checkpoint`` is complete and its marker has the live step, counters and buffer sizes.

        Weights change only with an update (which moves the step) and the buffers only grow, so
        such a checkpoint already holds what a save would write: the end of a run that stops
        right after a periodic checkpoint writes once, not twice.
        """
        marker = read_marker(checkpoint)
        if marker is None or not is_complete(checkpoint):
            return False
        live = json.loads(json.dumps(self._live_state(step, self.run_state(), arguments)))
        return all(marker.get(key) == value for key, value in live.items())

    @staticmethod
    def _live_state(step: int, state: dict[str, Any], arguments: dict[str, Any]) -> dict[str, Any]:
        """The marker's record of a save: the step, the run counters and both buffers' sizes."""
        offline = arguments.get("offline_replay_buffer")
        return {
            "step": step,
            **state,
            "online_buffer": len(arguments["replay_buffer"]),
            "offline_buffer": len(offline) if offline is not None else None,
        }

    def _write_state(self, staged: Path, step: int, arguments: dict[str, Any]) -> dict[str, Any]:
        """Add the run counters to ``training_step.json`` and write the completeness marker."""
        state = self.run_state()
        step_file = staged / TRAINING_STATE_DIR / TRAINING_STEP
        step_file.write_text(json.dumps({**json.loads(step_file.read_text()), **state}, indent=4))
        parts = [part for part in _REQUIRED_PARTS + _OPTIONAL_PARTS if (staged / part).is_file()]
        missing = [part for part in _REQUIRED_PARTS if part not in parts]
        if missing:
            raise RuntimeError(f"LeRobot's checkpoint writer did not write {missing} in {staged}")
        marker = {
            **self._live_state(step, state, arguments),
            "parts": parts,
            "files": file_sizes(staged),
            "saved_unix": time.time(),
        }
        (staged / MARKER).write_text(json.dumps(marker, indent=2))
        return marker

    def prune(self, checkpoints: Path) -> None:
        """Drop the buffers (and marker) of complete checkpoints beyond the newest ``keep_buffers``."""
        complete = [p for p in step_dirs(checkpoints) if is_complete(p)]
        for old in complete[self.keep_buffers :]:
            (old / MARKER).unlink()
            for name in BUFFER_DIRS:
                _remove(old / name)
