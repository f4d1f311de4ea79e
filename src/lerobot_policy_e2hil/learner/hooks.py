"""Learner-side fault handling, installed into ``lerobot.rl.learner`` by :func:`install_learner_faults`.

Every piece is a hook (a ``learner.*`` layer) on a row of :mod:`..lerobot_layer.patches`: a function that
LeRobot's learner looks up at call time, which the hook wraps rather than copies (the table says
which hooks replace LeRobot's call, and why):

* ``save_training_checkpoint`` -> :class:`~..checkpoints.AtomicCheckpointer`;
* ``handle_resume_logic`` -> picks the newest complete checkpoint, loads the policy weights from
  it (LeRobot 0.6.1 rebuilds the policy from the checkpoint's config, whose ``pretrained_path`` is
  empty, so the actor weights would restart from random), keeps ``--output_dir``, checks the port;
* ``load_training_state`` -> fails loudly instead of silently restarting from step 0, restores the
  run counters and reports what was restored;
* ``bytes_to_transitions`` -> decodes transitions from safetensors, never unpickles them
  (:mod:`..wire.tensors`), skips and counts a message that does not decode, drops bad transitions
  (:mod:`.transitions`); ``state_to_bytes`` -> sends the weights as safetensors;
* ``process_interaction_message``, ``bytes_to_python_object`` -> decode the interaction message
  from JSON, never unpickle it, skip and count one that does not decode (:mod:`..wire.messages`); count env
  steps across restarts and replacement actors;
* ``LearnerService`` -> ends a parameter stream when its actor is gone (issue 3979), refuses a
  message larger than ``max_message_mb``; ``start_learner`` -> a clear error when the gRPC server
  cannot start;
* ``grpc.server`` -> :class:`~..security.SecureServers`: TLS and the token check on LeRobot's own
  server, and ``grpc_workers`` threads (headroom for a replacement actor; LeRobot's ``MAX_WORKERS`` is 3);
* ``RLTrainer`` -> adds the transition counters to the logged training stats;
* ``add_actor_information_and_train`` -> an exception in LeRobot's training loop (a policy it
  cannot build, a checkpoint it cannot load) makes the learner exit 1 with a one-line error.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import grpc
import torch
from lerobot.utils.constants import PRETRAINED_MODEL_DIR, TRAINING_STATE_DIR, TRAINING_STEP

from ..checkpoints import AtomicCheckpointer, prepare_resume, read_marker
from ..errors import SetupError, one_line
from ..faults.entry import record_fatal
from ..faults.settings import FaultSettings
from ..lerobot_layer import patches
from ..security import SecureServers, TokenCheck, check_bind, read_token, server_credentials, split_address
from ..setup_checks import check_budgets, check_port_free
from ..stop_signal import EitherEvent
from ..wire.actor_id import UNKNOWN_ACTOR, caller
from ..wire.messages import RejectCounter, capped_chunks, decode_message
from ..wire.tensors import decode_transitions, encode_parameters
from .actors import ParameterFanout, TaggingQueue, untag
from .transitions import TransitionSpec, TransitionValidator

EPISODE_STEPS_KEY = "Episode steps"
# Key of the sending actor's id in the episode message the learner's hooks see (set by the learner)
ACTOR_ID_KEY = "Actor id"


class RunCounter:
    """Env steps and episodes of a run, across learner restarts and replacement actors.

    LeRobot's actor numbers its steps from 0 and the learner adds the step count of the checkpoint
    it resumed from. That double counts when the actor kept running across the restart, and the
    count saved in checkpoints is usually 0 (the learner saves the last interaction message of
    the current loop iteration, mostly None). Here each episode adds its length: the actor hook
    sends it (``"Episode steps"``); without it, the step difference to the same actor's previous
    episode, or the step count of a new actor (whose steps start again from 0). The same counts,
    and the transitions received and skipped, are kept per actor id (:mod:`.actors`; actors that
    send none count as ``"unknown"``).
    """

    def __init__(self) -> None:
        self.steps = 0
        self.episodes = 0
        self.actor_step: int | None = None
        self.actors: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def _actor(self, actor: str) -> dict[str, Any]:
        return self.actors.setdefault(
            actor, {"env_steps": 0, "episodes": 0, "transitions": 0, "rejected": 0, "last_step": None}
        )

    def count(self, message: Mapping[str, Any], actor: str = UNKNOWN_ACTOR) -> int:
        """Account for one episode message of ``actor``; returns the run-wide index of its last env step."""
        raw = int(message["Interaction step"])
        length = message.get(EPISODE_STEPS_KEY)
        with self._lock:
            per_actor = self._actor(actor)
            last = per_actor["last_step"]
            if length is None:
                same_actor = last is not None and raw > last
                length = raw - last if same_actor else raw + 1
            self.steps += int(length)
            self.episodes += 1
            per_actor["env_steps"] += int(length)
            per_actor["episodes"] += 1
            per_actor["last_step"] = self.actor_step = raw
            return self.steps - 1

    def add_transitions(self, actor: str, accepted: int, rejected: int) -> None:
        """Count the transitions of one message of ``actor`` that went in, and those skipped."""
        with self._lock:
            per_actor = self._actor(actor)
            per_actor["transitions"] += accepted
            per_actor["rejected"] += rejected

    def actor_fields(self, actor: str) -> dict[str, Any]:
        """The per-actor fields of an episode record (see ``launcher.hooks``)."""
        with self._lock:
            per_actor = self._actor(actor)
            return {
                ACTOR_ID_KEY: actor,
                "Actor episodes": per_actor["episodes"],
                "Actor env steps": per_actor["env_steps"],
                "Actor transitions": per_actor["transitions"],
            }

    def state(self) -> dict[str, Any]:
        with self._lock:
            actors = {name: dict(values) for name, values in self.actors.items()}
        return {
            "interaction_step": self.steps,
            "episodes": self.episodes,
            "actor_step": self.actor_step,
            "actors": actors,
        }

    def restore(self, saved: Mapping[str, Any]) -> None:
        self.steps = int(saved.get("interaction_step") or 0)
        self.episodes = int(saved.get("episodes") or 0)
        self.actor_step = saved.get("actor_step")
        self.actors = {name: dict(values) for name, values in (saved.get("actors") or {}).items()}


class LearnerFaults:
    """State the learner hooks share in one learner process."""

    def __init__(self) -> None:
        self.settings = FaultSettings()
        self.counter = RunCounter()
        self.validator = TransitionValidator(self._spec, self.settings.warn_interval_s)
        self.interactions = RejectCounter(
            "Skipped interaction messages that do not decode", self.settings.warn_interval_s
        )
        self.refusals = RejectCounter("Refused calls", self.settings.warn_interval_s)
        self.cfg: Any = None
        self.checkpoint: Path | None = None
        self.trainer: Any = None
        self.listeners: list[Callable[[str, dict[str, Any]], None]] = []

    def _spec(self) -> TransitionSpec:
        return TransitionSpec.from_policy_config(self.cfg.policy)

    def emit(self, kind: str, **fields: Any) -> None:
        """Tell the listeners (the sim's metrics file) about a fault-handling event."""
        for listener in self.listeners:
            listener(kind, fields)


LEARNER = LearnerFaults()


def install_learner_faults(cfg: Any, settings: FaultSettings) -> None:
    """Install every learner-side fault handler into ``lerobot.rl.learner``.

    Installs the learner's rows of :mod:`..lerobot_layer.patches` (once per process) and registers the
    ``faults.*`` hooks on them (again on every call, with these settings). With
    ``policy.concurrency.learner="processes"`` the gRPC server hooks are left out (LeRobot runs
    the server in a spawned process, which does not carry them); the rest still applies.
    Every learner entry point calls it right after parsing, so it first refuses budgets and
    sizes the learner cannot run with (:func:`~..setup_checks.check_budgets`).

    Args:
        cfg: The learner's config as parsed.
        settings: Its ``faults`` section.

    Raises:
        ConfigError: A budget or size outside its allowed values.
        SetupError: An unsupported LeRobot, or a patched LeRobot function missing or changed.
    """
    patches.install("learner")
    check_budgets(cfg, "learner")
    threads = cfg.policy.concurrency.learner == "threads"
    token = read_token(settings)
    if not threads and (settings.tls_cert or token):
        raise SetupError(
            "TLS and the token need policy.concurrency.learner='threads' (LeRobot starts the server of "
            "'processes' in a process without them). Set --policy.concurrency.learner=threads"
        )
    address = cfg.policy.actor_learner_config
    check_bind(address.learner_host, address.learner_port, settings, token)
    LEARNER.settings = settings
    for counter in (LEARNER.validator, LEARNER.interactions, LEARNER.refusals):
        counter.warn_interval_s = settings.warn_interval_s
    if threads:
        _install_server(settings, token)
    else:
        for point, layer in _SERVER_HOOKS:
            patches.unhook(point, layer)
    _install_transitions()
    # safetensors wire format (issue #17): the weights the learner pushes to its actors
    patches.hook(
        f"{_LEARNER}.state_to_bytes",
        "wire",
        lambda call: encode_parameters(call.arguments["state_dict"]),
    )
    _install_loop_failure()
    _install_resume()
    from ..train_config import install_config_hooks  # imports this package

    install_config_hooks()
    _install_counter()
    _install_trainer()

    def save_training_checkpoint(call: patches.Call) -> None:
        checkpointer = AtomicCheckpointer(
            call.next_function(),
            keep_buffers=settings.keep_buffers,
            run_state=LEARNER.counter.state,
            on_saved=lambda marker, path: LEARNER.emit("checkpoint", path=str(path), **marker),
        )
        checkpointer(**call.arguments)

    patches.hook(f"{_LEARNER}.save_training_checkpoint", "checkpoints", save_training_checkpoint)


_LEARNER = "lerobot.rl.learner"
_SERVICE = f"{_LEARNER}.LearnerService"
_TRAINER = f"{_LEARNER}.RLTrainer"
_SERVER_HOOKS = (
    (f"{_LEARNER}.grpc.server", "security"),
    (f"{_SERVICE}.SendTransitions", "learner.peers"),
    (f"{_SERVICE}.SendInteractions", "learner.peers"),
    (f"{_SERVICE}.StreamParameters", "learner.peers"),
    (f"{_LEARNER}.start_learner", "learner.server"),
)


def _install_server(settings: FaultSettings, token: str | None = None) -> None:
    """The gRPC server hooks: TLS, token, bind check, worker threads, peer-aware streams, start failure."""
    patches.install("learner")
    interceptors = [TokenCheck(token, _refused)] if token else []
    credentials = server_credentials(settings)

    def before_bind(address: str) -> None:
        check_bind(*split_address(address), settings, token)
        security = " and ".join(
            what for what, on in (("TLS", credentials is not None), ("token check", token)) if on
        )
        logging.info(f"[LEARNER] gRPC server on {address}: {security or 'plaintext, no token check'}")

    patches.hook(
        f"{_LEARNER}.grpc.server",
        "security",
        SecureServers(
            interceptors,
            credentials,
            before_bind,
            settings.grpc_workers,
        ),
    )
    for method, function in _peer_aware_service(settings.max_message_mb * 2**20).items():
        patches.hook(f"{_SERVICE}.{method}", "learner.peers", function)

    def start_learner(call: patches.Call) -> None:
        arguments = call.arguments
        try:
            call.proceed()
        except Exception as err:
            address = arguments["cfg"].policy.actor_learner_config
            record_fatal(
                f"the learner's gRPC server could not start on {address.learner_host}:"
                f"{address.learner_port} ({err}); the learner stops. Free the port or choose another "
                "with --policy.actor_learner_config.learner_port."
            )
            arguments["shutdown_event"].set()

    patches.hook(f"{_LEARNER}.start_learner", "learner.server", start_learner)


def _refused(peer: str, method: str, reason: str) -> None:
    """Count and report a call the learner refused (reasons: the token check, the size limit)."""
    LEARNER.refusals.reject(f"{reason} from {peer} ({method.rsplit('/', 1)[-1]})")
    LEARNER.emit("call_refused", peer=peer, method=method, reason=reason, total=LEARNER.refusals.rejected)


def _peer_aware_service(max_message_bytes: int = 2**30) -> dict[str, Callable[[patches.Call], Any]]:
    """Hooks of ``LearnerService``: a parameter stream ends when its actor is gone; messages have a size limit.

    LeRobot's ``StreamParameters`` loops until the learner shuts down; while no new parameters
    arrive it never writes to the stream, so it never notices that its actor died and keeps a
    server thread. Each call here gets its own copy of the service whose shutdown event is also
    set by gRPC's end-of-call callback. ``SendTransitions`` and ``SendInteractions`` end with
    RESOURCE_EXHAUSTED when one message grows past ``max_message_bytes`` (LeRobot collects a
    message's chunks without a limit).

    Returns:
        The hook of each method, by method name.
    """

    def capped(request_iterator: Any, context: Any, method: str) -> Any:
        def refuse(size: int) -> None:
            _refused(context.peer(), method, f"a message over {max_message_bytes} bytes")
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"message of more than {max_message_bytes} bytes (--faults.max_message_mb)",
            )

        return capped_chunks(request_iterator, max_message_bytes, refuse)

    fanouts: dict[int, ParameterFanout] = {}
    fanouts_lock = threading.Lock()

    def fanout(queue: Any) -> ParameterFanout:
        with fanouts_lock:
            return fanouts.setdefault(id(queue), ParameterFanout(queue))

    def receiving(method: str, queue_name: str) -> Callable[[patches.Call], Any]:
        def handler(call: patches.Call) -> Any:
            service, context = call.arguments["self"], call.arguments["_context"]
            view = copy.copy(service)
            setattr(view, queue_name, TaggingQueue(getattr(service, queue_name), caller(context)))
            return call.proceed(
                self=view, request_iterator=capped(call.arguments["request_iterator"], context, method)
            )

        return handler

    def stream_parameters(call: patches.Call) -> Any:
        service, context = call.arguments["self"], call.arguments["context"]
        ended = threading.Event()
        if not context.add_callback(ended.set):
            return
        actor = caller(context)
        view = copy.copy(service)
        view.shutdown_event = EitherEvent(service.shutdown_event, ended)
        view.parameters_queue = fanout(service.parameters_queue).stream_view()
        peer = context.peer()
        logging.info(f"[LEARNER] Actor {actor} ({peer}) opened its parameter stream")
        LEARNER.emit("actor", actor=actor, event="joined", peer=peer)
        try:
            yield from call.proceed(self=view)
        finally:  # also when gRPC drops the stream in the middle of a message (GeneratorExit)
            if ended.is_set() and not service.shutdown_event.is_set():
                logging.info(
                    f"[LEARNER] An actor's parameter stream ended (actor gone); its thread is free (actor {actor})"
                )
                LEARNER.emit("actor", actor=actor, event="left", versions_sent=view.parameters_queue.sent)

    return {
        "SendTransitions": receiving("SendTransitions", "transition_queue"),
        "SendInteractions": receiving("SendInteractions", "interaction_message_queue"),
        "StreamParameters": stream_parameters,
    }


def _install_loop_failure() -> None:
    """An exception in LeRobot's training loop makes the learner exit non-zero.

    LeRobot logs it and returns normally (exit 0, no final checkpoint): a learner that cannot
    build its policy (a vision encoder it cannot load, a damaged checkpoint) looked like a clean
    stop. The exception is recorded as fatal, then re-raised for LeRobot's own handling.
    """

    def add_actor_information_and_train(call: patches.Call) -> None:
        try:
            call.proceed()
        except Exception as err:
            record_fatal(
                f"the learner's training loop failed: {type(err).__name__}: {one_line(err).rstrip('.')}. Fix "
                "the cause (the traceback is in the learner's log) and start the learner again."
            )
            raise

    patches.hook(
        f"{_LEARNER}.add_actor_information_and_train", "learner.loop", add_actor_information_and_train
    )


def _install_transitions() -> None:
    patches.hook(
        f"{_LEARNER}.bytes_to_transitions",
        "learner.transitions",
        lambda call: transitions_from_bytes(call.arguments["buffer"]),
    )


def transitions_from_bytes(buffer: bytes) -> list:
    """What LeRobot's ``bytes_to_transitions`` does in the learner instead: safetensors, checked.

    A message that does not decode and transitions that do not match the policy's features are
    skipped and counted (per actor) instead of ending the training loop.
    """
    actor, buffer = untag(buffer)
    try:
        transitions = decode_transitions(buffer, LEARNER.settings.max_message_mb * 2**20)
    except Exception as err:  # DecodeError, or anything else: a message must not end the training loop
        LEARNER.validator.reject_message(err, actor)
        return []
    rejected = LEARNER.validator.rejected
    kept = LEARNER.validator.filter(transitions if isinstance(transitions, list) else [transitions])
    LEARNER.counter.add_transitions(actor, len(kept), LEARNER.validator.rejected - rejected)
    return kept


def _install_resume() -> None:
    def handle_resume_logic(call: patches.Call) -> Any:
        cfg = call.arguments["cfg"]
        chosen = prepare_resume(Path(cfg.output_dir)) if cfg.resume else None
        final = call.proceed()
        if chosen is not None:
            final.output_dir = cfg.output_dir
            final.policy.pretrained_path = chosen / PRETRAINED_MODEL_DIR
            _apply_address_flags(final)
            saved = json.loads((chosen / TRAINING_STATE_DIR / TRAINING_STEP).read_text())
            LEARNER.counter.restore(saved)
        address = final.policy.actor_learner_config
        check_port_free(address.learner_host, address.learner_port)
        LEARNER.cfg, LEARNER.checkpoint = final, chosen
        return final

    patches.hook(f"{_LEARNER}.handle_resume_logic", "learner.resume", handle_resume_logic)
    patches.hook(f"{_LEARNER}.load_training_state", "learner.resume", _checked_load)
    patches.hook(f"{_LEARNER}.initialize_offline_replay_buffer", "learner.resume", _offline_buffer_on_resume)


def _apply_address_flags(cfg: Any) -> None:
    """Let ``--policy.actor_learner_config.learner_host/learner_port`` flags override the checkpoint.

    LeRobot resumes with the checkpoint's config and ignores the command line; the address is the
    one setting a restarted learner may need to change (the old port taken, another machine).
    """
    from lerobot.configs import parser

    address = cfg.policy.actor_learner_config
    for name in ("learner_host", "learner_port"):
        value = parser.parse_arg(f"policy.actor_learner_config.{name}")
        if value is not None:
            setattr(address, name, type(getattr(address, name))(value))


def _checked_load(call: patches.Call) -> tuple:
    """The hook of ``load_training_state``: a resume whose state does not load fails; report what was loaded."""
    arguments = call.arguments
    step, interaction_step = call.proceed()
    if not arguments["cfg"].resume:
        return step, interaction_step
    if step is None:
        message = (
            f"resuming failed: the training state of {LEARNER.checkpoint} could not be loaded (the "
            "log above says why). Nothing was trained; fix or delete that checkpoint and resume again."
        )
        record_fatal(message)
        raise SetupError(message)
    _report_resume(step, arguments)
    return step, interaction_step


def _report_resume(step: int, arguments: Mapping[str, Any]) -> None:
    mixer = LEARNER.trainer.data_mixer if LEARNER.trainer is not None else None
    online = getattr(mixer, "online_buffer", None)
    offline = getattr(mixer, "offline_buffer", None)
    algorithm = arguments.get("algorithm")
    digests = state_digests(algorithm, arguments["optimizers"]) if algorithm is not None else {}
    fields = {
        "checkpoint": str(LEARNER.checkpoint),
        "opt_step": step,
        **LEARNER.counter.state(),
        "online_buffer": len(online) if online is not None else None,
        "offline_buffer": len(offline) if offline is not None else None,
        "digests": digests,
    }
    logging.info(
        f"[LEARNER] Resumed from {fields['checkpoint']}: optimization step {step}, "
        f"{fields['interaction_step']} env steps, online buffer {fields['online_buffer']}, "
        f"offline buffer {fields['offline_buffer']}; state digests {digests}"
    )
    LEARNER.emit("resume", **fields)


def _offline_buffer_on_resume(call: patches.Call) -> Any:
    """No offline buffer on resume when the checkpoint saved none (LeRobot would look for one)."""
    cfg = call.arguments["cfg"]
    marker = read_marker(LEARNER.checkpoint) if cfg.resume and LEARNER.checkpoint else None
    if marker is not None and marker.get("offline_buffer") is None:
        return None
    return call.proceed()


def decode_interaction(data: bytes) -> dict[str, Any]:
    """What LeRobot's ``bytes_to_python_object`` does in the learner instead: JSON, never pickle.

    Raises:
        BadMessage: What :func:`~..wire.messages.decode_message` refuses.
    """
    return decode_message(untag(data)[1], LEARNER.settings.max_interaction_kb * 1024)


def _install_counter() -> None:
    """Interaction messages: JSON, skipped and counted when they do not decode, run-wide step counts.

    LeRobot's ``process_interaction_message`` still decodes the message (through the hooked
    ``bytes_to_python_object``), shifts its step and logs it to wandb: the shift given makes its
    step the run-wide index of the episode's last env step (:class:`RunCounter`).
    """
    patches.hook(
        f"{_LEARNER}.bytes_to_python_object",
        "wire",
        lambda call: decode_interaction(call.arguments["buffer"]),
    )

    def process_interaction_message(call: patches.Call) -> dict[str, Any] | None:
        actor, data = untag(call.arguments["message"])
        try:
            message = decode_interaction(data)
        except Exception as err:  # BadMessage, or anything else: a message must not end the training loop
            LEARNER.interactions.reject(f"{err} from {actor}")
            LEARNER.emit(
                "interaction_rejected", actor=actor, reason=str(err), total=LEARNER.interactions.rejected
            )
            return None
        index = LEARNER.counter.count(message, actor)
        message = call.proceed(interaction_step_shift=index - int(message["Interaction step"]))
        return {**message, **LEARNER.counter.actor_fields(actor)}

    patches.hook(f"{_LEARNER}.process_interaction_message", "learner.counter", process_interaction_message)


def _install_trainer() -> None:
    """The trainer's stats also carry the transition counters (to wandb and metrics)."""

    def init(call: patches.Call) -> None:
        call.proceed()
        LEARNER.trainer = call.arguments["self"]

    def training_step(call: patches.Call) -> Any:
        stats = call.proceed()
        stats.extra["faults/transitions_received"] = float(LEARNER.validator.accepted)
        stats.extra["faults/transitions_rejected"] = float(LEARNER.validator.rejected)
        stats.extra["faults/transition_messages_rejected"] = float(LEARNER.validator.rejected_messages)
        stats.extra["faults/interactions_rejected"] = float(LEARNER.interactions.rejected)
        stats.extra["faults/calls_refused"] = float(LEARNER.refusals.rejected)
        return stats

    patches.hook(f"{_TRAINER}.__init__", "learner.stats", init)
    patches.hook(f"{_TRAINER}.training_step", "learner.stats", training_step)


def save_final_checkpoint(cfg: Any) -> Path | None:
    """Checkpoint the learner's live state once LeRobot's loop has stopped (Ctrl-C, end of run).

    LeRobot's learner saves only every ``save_freq`` steps: without this, stopping it loses
    everything received since. Uses ``lerobot.rl.learner.save_training_checkpoint`` (atomic,
    see :mod:`..checkpoints`) on the objects the learner built.

    Args:
        cfg: The learner's config as parsed (the resumed config is used when there is one).

    Returns:
        The checkpoint directory, or None when nothing was trained or checkpoints are off.
    """
    from lerobot.common.train_utils import get_step_checkpoint_dir
    from lerobot.policies import make_pre_post_processors
    from lerobot.rl import learner

    cfg = LEARNER.cfg if LEARNER.cfg is not None else cfg
    trainer = LEARNER.trainer
    if trainer is None or not cfg.save_checkpoint or int(trainer.algorithm.optimization_step) == 0:
        return None
    algorithm, mixer = trainer.algorithm, trainer.data_mixer
    step = int(algorithm.optimization_step)
    _, postprocessor = make_pre_post_processors(policy_cfg=cfg.policy, dataset_stats=cfg.policy.dataset_stats)
    learner.save_training_checkpoint(
        cfg=cfg,
        optimization_step=step,
        online_steps=cfg.policy.online_steps,
        interaction_message=None,
        policy=algorithm.policy,
        optimizers=algorithm.get_optimizers(),
        replay_buffer=mixer.online_buffer,
        algorithm=algorithm,
        offline_replay_buffer=getattr(mixer, "offline_buffer", None),
        dataset_repo_id=cfg.dataset.repo_id if cfg.dataset is not None else None,
        fps=cfg.env.fps,
        preprocessor=trainer._preprocessor,
        postprocessor=postprocessor,
    )
    return get_step_checkpoint_dir(Path(cfg.output_dir), cfg.policy.online_steps, step)


def tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and values of a tensor mapping (order-independent)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """An optimizer's state tensors under the names LeRobot's checkpoints use (``state/<i>/<name>``)."""
    return {
        f"state/{index}/{name}": value
        for index, entries in optimizer.state_dict()["state"].items()
        for name, value in entries.items()
        if isinstance(value, torch.Tensor)
    }


def unique_tensors(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict without the entries that share storage with an earlier name (sorted order).

    The policy's encoders are shared between actor and critics; its ``model.safetensors`` keeps
    each tensor once, under the first of its names, which this reproduces.
    """
    seen, unique = set(), {}
    for name in sorted(state_dict):
        tensor = state_dict[name]
        key = (tensor.data_ptr(), tuple(tensor.shape))
        if key not in seen:
            seen.add(key)
            unique[name] = tensor
    return unique


def state_digests(algorithm: Any, optimizers: Mapping[str, torch.optim.Optimizer]) -> dict[str, str]:
    """Digests of the policy, the algorithm tensors (critics, targets, log_alpha) and the optimizers.

    Each equals :func:`tensor_digest` of the matching checkpoint file (``model.safetensors`` of
    ``pretrained_model`` and ``algorithm``, ``optimizer_state.safetensors`` of each optimizer).
    """
    digests = {
        "policy": tensor_digest(unique_tensors(algorithm.policy.state_dict())),
        "algorithm": tensor_digest(algorithm.state_dict()),
    }
    for name, optimizer in optimizers.items():
        digests[f"optimizer/{name}"] = tensor_digest(optimizer_tensors(optimizer))
    return digests
