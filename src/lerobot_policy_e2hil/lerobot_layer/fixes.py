"""Small fixes for LeRobot 0.6.1 bugs that stop or slow our users, installed when the plugin is imported.

One of them is in draccus, the config parser LeRobot pins (``>=0.11.6,<0.12``).

Each fix is a hook on one LeRobot function (the ``"fixes"`` layer of its row in :mod:`.patches`),
changes nothing for inputs that already worked, and is idempotent. :data:`FIXES` declares them,
each with the upstream cause it works around; remove an entry (and its row) when the LeRobot
release it works around is no longer supported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from datasets.features.features import require_storage_embed
from lerobot.utils.constants import OBS_IMAGE
from torch import Tensor

from . import patches

SELECT_ACTION = "lerobot.policies.gaussian_actor.modeling_gaussian_actor.GaussianActorPolicy.select_action"
TO_TRANSITIONS = "lerobot.rl.buffer.ReplayBuffer._lerobotdataset_to_transitions"
EMBED_IMAGES = "lerobot.datasets.dataset_writer.embed_images"
KINEMATICS_INIT = "lerobot.model.kinematics.RobotKinematics.__init__"
ATTRIBUTE_DOCSTRING = "draccus.wrappers.docstring.get_attribute_docstring"
#: Weight of the damping (joint-step regularization) task added to LeRobot's placo IK solver.
IK_DAMPING = 1e-4


def tensor_entries(call: patches.Call) -> Any:
    """The hook of ``GaussianActorPolicy.select_action``: only the batch's tensor entries go in."""
    batch = call.arguments["batch"]
    return call.proceed(batch={key: value for key, value in batch.items() if isinstance(value, Tensor)})


def install_select_action_fix() -> None:
    """Let ``GaussianActorPolicy.select_action`` take lerobot-eval's observation batches.

    lerobot-eval passes the preprocessed batch with non-tensor entries (``"task"``: a list of
    strings, ``"action"``: None); the policy's discrete (gripper) critic calls ``.to()`` on
    every entry and fails. The hook drops entries that are not tensors before the call;
    the actor and the critics read only tensor observation keys.
    """
    patches.install("import")
    patches.hook(SELECT_ACTION, "fixes", tensor_entries)


def images_to_unit_range(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Return ``state`` with its uint8 image tensors as float32 in [0, 1]; other entries unchanged."""
    return {
        key: value.to(torch.float32) / 255.0
        if key.startswith(OBS_IMAGE) and value.dtype == torch.uint8
        else value
        for key, value in state.items()
    }


def scaled_transitions(call: patches.Call) -> list:
    """The hook of ``ReplayBuffer._lerobotdataset_to_transitions``: uint8 images become [0, 1] floats."""
    transitions = call.proceed()
    for transition in transitions:
        transition["state"] = images_to_unit_range(transition["state"])
        transition["next_state"] = images_to_unit_range(transition["next_state"])
    return transitions


def install_offline_image_scale_fix() -> None:
    """Give the learner's offline (demo) buffer images in [0, 1], as the online buffer has them.

    ``lerobot.datasets.factory.make_dataset`` opens the dataset with ``return_uint8=True`` (for
    lerobot-train, whose processors rescale), so the learner's
    ``initialize_offline_replay_buffer`` gets uint8 video frames, and ``ReplayBuffer`` stores them in
    float32 tensors unscaled (0-255). The policy then trains on demo images 255 times brighter
    than the actor's, and the learner's checkpoint fails when ``ReplayBuffer.to_lerobot_dataset``
    writes that buffer back ("The image data type is float, which requires values in the range
    [0.0, 1.0]"). The hook on ``ReplayBuffer._lerobotdataset_to_transitions`` converts uint8
    image tensors (keys ``observation.image*``) to float32 / 255; float images pass unchanged.
    """
    patches.install("import")
    patches.hook(TO_TRANSITIONS, "fixes", scaled_transitions)


def needs_embedding(call: patches.Call) -> Any:
    """The hook of ``dataset_writer.embed_images``: a dataset with nothing to embed is returned as is."""
    dataset = call.arguments["dataset"]
    if any(require_storage_embed(feature) for feature in dataset.features.values()):
        return call.proceed()
    return dataset


def install_embed_skip_fix() -> None:
    """Save episodes without a per-row pass when they hold no image to embed.

    ``LeRobotDataset.save_episode`` runs ``io_utils.embed_images`` on every episode: a
    ``datasets.Dataset.map(embed_table_storage, batched=False)``, which rebuilds each row's table
    from its schema. Only features with external storage (``Image``, ``Audio``...) change; for a
    state-only episode, or a video one (frames go to MP4 files, not the table), every column comes
    back as it went in, and the pass was 70% of each ``save_episode`` (the learner's checkpoint
    writes both replay buffers episode by episode while the actors wait). The hook returns such a
    dataset unchanged: the parquet tables written hold the same columns, values and schema; only
    the ``fingerprint`` that ``map`` adds to the schema's ``huggingface`` metadata (a hash of the
    transform, read by nothing in LeRobot) is absent. Datasets with image features go through
    LeRobot's function.
    """
    patches.install("import")
    patches.hook(EMBED_IMAGES, "fixes", needs_embedding)


def damped_solver(call: patches.Call) -> None:
    """The hook of ``RobotKinematics.__init__``: the placo solver gets a damping task."""
    call.proceed()
    call.arguments["self"].solver.add_regularization_task(IK_DAMPING)


def install_ik_damping_fix() -> None:
    """Keep LeRobot's end-effector IK on one branch, so the EE-jump safety stop sees real moves only.

    ``gym_manipulator``'s action pipeline takes the forward kinematics of the previous IK solution as
    the reference for the next end-effector step and solves each step with one placo QP from that
    solution (``InverseKinematicsRLStep``, ``initial_guess_current_joints=False``). Placo's
    regularization is tiny, so the step is an undamped Gauss-Newton step: where the SO101's
    ``wrist_flex`` sits at its limit (the far, high part of the workspace) a 1-2 cm target step flips
    the elbow to its opposite limit and the solution's end effector lands about 0.2 m away, which
    ``EEBoundsAndSafety`` stops as an EE jump. That is kinematics only (no servo or physics is
    involved), so a real arm with the same config stops the same way. The hook adds a
    regularization task of weight :data:`IK_DAMPING` to every ``RobotKinematics`` solver (damped
    least squares: each step is shortened where the Jacobian is near singular); reachable targets
    are still reached, at most one step later.
    """
    patches.install("import")
    patches.hook(KINEMATICS_INIT, "fixes", damped_solver)


#: draccus's answer for each (dataclass, field name) asked in this process.
_ATTRIBUTE_DOCSTRINGS: dict[tuple[type, str], Any] = {}


def remembered_docstring(call: patches.Call) -> Any:
    """The hook of draccus's ``get_attribute_docstring``: each class and field is looked up once."""
    key = (call.arguments["some_dataclass"], call.arguments["field_name"])
    if key not in _ATTRIBUTE_DOCSTRINGS:
        _ATTRIBUTE_DOCSTRINGS[key] = call.proceed()
    return _ATTRIBUTE_DOCSTRINGS[key]


def install_docstring_memo_fix() -> None:
    """Parse LeRobot's command lines without looking up the same field's help text again and again.

    Every ``parser.wrap`` / ``draccus.parse`` builds an argparse action, with its help text, for each
    field of every choice of the config (5.7k actions for the learner's). draccus finds a field's
    help by scanning its class's source for every lookup (its cache of the answers is commented
    out), and asks for the same class and field several times: 9.2k lookups, 2.1k distinct, ~2.5 of
    the ~3.4 CPU-seconds a parse of the sim learner's config takes. The answer depends only on the
    class's source, and draccus only reads the object it gets, so the hook keeps each answer for the
    process. Every console script that parses a LeRobot config starts about a second sooner, and a
    second parse in one process takes a third of the first.
    """
    patches.install("import")
    patches.hook(ATTRIBUTE_DOCSTRING, "fixes", remembered_docstring)


@dataclass(frozen=True)
class Fix:
    """One declared fix: what it changes, the LeRobot 0.6.1 cause, and how to install it."""

    # The LeRobot function the fix wraps
    target: str
    # The upstream cause (file and behaviour in LeRobot 0.6.1)
    upstream: str
    # Installs the fix (idempotent)
    install: Callable[[], None]


#: Every fix, in install order.
FIXES: tuple[Fix, ...] = (
    Fix(
        "policies/gaussian_actor GaussianActorPolicy.select_action",
        "scripts/lerobot_eval.py passes non-tensor batch entries ('task', 'action') to select_action",
        install_select_action_fix,
    ),
    Fix(
        "rl/buffer.py ReplayBuffer._lerobotdataset_to_transitions",
        "datasets/factory.py make_dataset uses return_uint8=True; the offline buffer stores 0-255 floats",
        install_offline_image_scale_fix,
    ),
    Fix(
        "datasets/dataset_writer.py embed_images (io_utils.py)",
        "save_episode maps embed_table_storage row by row even when no feature has storage to embed",
        install_embed_skip_fix,
    ),
    Fix(
        "model/kinematics.py RobotKinematics.__init__",
        "one undamped placo IK step per env step from the previous solution flips the SO101's elbow "
        "near the wrist limit (EE jump ~0.2 m)",
        install_ik_damping_fix,
    ),
    Fix(
        "draccus (LeRobot's config parser) wrappers/docstring.py get_attribute_docstring",
        "every command-line parse scans a class's source again for each field's help text, the "
        "same class and field several times (draccus's lru_cache on it is commented out)",
        install_docstring_memo_fix,
    ),
)


def install_all() -> None:
    """Install every fix of :data:`FIXES`."""
    for fix in FIXES:
        fix.install()
