"""Actor-side fault handling, installed into ``lerobot.rl.actor`` by :func:`install_actor_faults`.

Every piece is a hook (an ``actor.*`` layer) on a row of :mod:`..lerobot_layer.patches`.

LeRobot 0.6.1's actor calls the learner's ``Ready()`` without a deadline (a replacement actor
can hang there for ever, issue 3979), and each of its three gRPC streams (parameters,
transitions, interactions) ends for good at the first error: when the learner restarts, the
actor keeps stepping the env but nothing reaches the new learner. The hooks here:

* ``establish_learner_connection`` -> :func:`wait_for_learner`: ``Ready()`` with a deadline,
  retried every ``retry_interval_s`` for at most ``connect_timeout_s``, every attempt logged;
* ``send_transitions``, ``send_interactions``, ``receive_policy`` -> reconnecting loops: when a
  stream ends while the actor runs, wait for the learner as above and open it again. The
  message that was being sent when the stream broke is sent again, and everything queued while
  the learner was away is sent after the reconnection;
* ``learner_service_client`` -> the same channel with gRPC's reconnect back-off capped at
  ``retry_interval_s`` (its default grows to 120 s), over TLS with ``tls_ca`` and with the shared
  token on every call (:mod:`..security`); a learner that refuses the token or the (plaintext or
  TLS) connection ends the actor at once with one line that says what to change; every call
  names the actor (``--faults.actor_id``), so a learner with several actors counts each apart;
* ``python_object_to_bytes`` -> the episode message is sent as JSON (:mod:`..wire.messages`), not pickled;
* ``transitions_to_bytes``, ``bytes_to_state_dict`` -> transitions are sent and weights received as
  safetensors (:mod:`..wire.tensors`), never pickled or unpickled; ``update_policy_parameters`` ->
  weights that do not decode are skipped, counted and warned about, the actor keeps its weights;
* ``get_frequency_stats`` -> the episode message also carries ``"Episode steps"``;
* ``push_transitions_to_transport_queue`` -> counts the transitions handed to the learner;
* ``reset_and_build_transition`` -> checks the first observation against the policy's features;
* ``act_with_policy`` -> any exception in it (a :class:`~..errors.SetupError`: its message) becomes a
  one-line fatal error and a non-zero exit; when the loop is stopped (Ctrl-C, SIGTERM) or fails, the
  parameter stream is cancelled (:func:`cancel_parameter_streams`), and after an error the transport
  queues no longer hold the process at exit (:func:`end_streams`): LeRobot then joins its stream
  threads, and the one receiving weights waited for the learner's next weights (for ever when the
  learner makes no update) while a queue's feeder thread, blocked writing weights to a pipe nobody
  read, kept the process alive even after a second Ctrl-C.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from queue import Empty
from typing import Any

from ..errors import SetupError, describe_ee_jump, one_line
from ..faults.entry import fatal_message, record_fatal
from ..faults.settings import FaultSettings
from ..learner.hooks import EPISODE_STEPS_KEY
from ..lerobot_layer import patches
from ..security import actor_channel, is_loopback, read_token, refusal_hint, tls_mismatch
from ..setup_checks import check_budgets, check_observation
from ..stop_signal import EitherEvent
from ..wire.actor_id import default_actor_id
from ..wire.messages import RejectCounter, encode_message
from ..wire.tensors import DecodeError, decode_parameters, encode_transitions

_ACTOR = "lerobot.rl.actor"


class ActorFaults:
    """State the actor hooks share in one actor process."""

    def __init__(self) -> None:
        self.settings = FaultSettings()
        self.address = ("127.0.0.1", 50051)
        self.actor_id = ""
        self.queued_transitions = 0
        self.backlogs: list[Backlog] = []
        self.reconnect_lock = threading.Lock()
        self.parameter_calls: list[Any] = []
        self.streams_ended = threading.Event()
        self.parameters = RejectCounter(
            "Skipped parameters from the learner that do not decode", self.settings.warn_interval_s, "ACTOR"
        )

    def backlog(self) -> int:
        """Messages taken back from broken streams and not yet sent again."""
        return sum(len(b) for b in self.backlogs)


ACTOR = ActorFaults()


def install_actor_faults(cfg: Any, settings: FaultSettings) -> None:
    """Install every actor-side fault handler into ``lerobot.rl.actor`` (once per process).

    With ``policy.concurrency.actor="processes"`` the stream hooks are left out (LeRobot starts
    those streams in spawned processes, which do not carry them); the rest still applies.
    Every actor entry point calls it right after parsing, so it first refuses budgets and sizes
    the actor cannot run with (:func:`~..setup_checks.check_budgets`).

    Args:
        cfg: The actor's ``TrainRLServerPipelineConfig``.
        settings: The ``--faults.*`` settings.

    Raises:
        ConfigError: A budget or size outside its allowed values.
    """
    patches.install("actor")
    check_budgets(cfg, "actor")
    address = cfg.policy.actor_learner_config
    threads = cfg.policy.concurrency.actor == "threads"
    token = read_token(settings)
    if not threads and (settings.tls_ca or token):
        raise SetupError(
            "TLS and the token need policy.concurrency.actor='threads' (LeRobot opens the streams of "
            "'processes' in processes without them). Set --policy.concurrency.actor=threads"
        )
    if not is_loopback(address.learner_host) and not (settings.tls_ca and token):
        logging.warning(
            f"[ACTOR] Talking to the learner at {address.learner_host} without TLS and a token: anyone on the "
            "network path can read and alter what it sends (docs/faults.md, 'Several robots over a network')"
        )
    ACTOR.settings, ACTOR.address = settings, (address.learner_host, address.learner_port)
    ACTOR.streams_ended.clear()
    ACTOR.parameter_calls.clear()
    ACTOR.actor_id = settings.actor_id or default_actor_id()
    ACTOR.parameters.warn_interval_s = settings.warn_interval_s
    logging.info(f"[ACTOR] Actor id {ACTOR.actor_id} (--faults.actor_id)")
    hooks: list[tuple[str, str, Callable[[patches.Call], Any]]] = [
        (
            "python_object_to_bytes",
            "wire",
            lambda call: encode_message(call.arguments["python_object"]),
        ),
        # safetensors wire format (issue #17): transitions sent, weights received
        (
            "transitions_to_bytes",
            "wire",
            lambda call: encode_transitions(call.arguments["transitions"]),
        ),
        ("bytes_to_state_dict", "wire", lambda call: _decode_parameters(call.arguments["buffer"])),
        ("update_policy_parameters", "wire", _outer(_skipping_bad_parameters)),
        ("get_frequency_stats", "learner.counter", _with_episode_steps),
        ("push_transitions_to_transport_queue", "learner.counter", _counting),
        ("reset_and_build_transition", "setup_checks", _checked_first_reset(cfg)),
        ("act_with_policy", "actor.fatal", _outer(_fatal_on_error)),
    ]
    client = _client_factory()
    streams: list[tuple[str, str, Callable[[patches.Call], Any]]] = [
        ("learner_service_client", "actor.reconnect", lambda call: client(**call.arguments)),
        ("establish_learner_connection", "actor.reconnect", _establish_connection_hook),
        (
            "send_transitions",
            "actor.reconnect",
            _reconnecting("transitions", "transitions_queue", retain=True),
        ),
        (
            "send_interactions",
            "actor.reconnect",
            _reconnecting("interactions", "interactions_queue", retain=True),
        ),
        ("receive_policy", "actor.reconnect", _reconnecting("parameters", "parameters_queue", retain=False)),
    ]
    if not threads:
        logging.warning(
            "[ACTOR] concurrency.actor='processes': the actor will not reconnect to a restarted learner"
        )
    for name, layer, function in hooks + (streams if threads else []):
        patches.hook(f"{_ACTOR}.{name}", layer, function)
    for name, layer, _ in [] if threads else streams:
        patches.unhook(f"{_ACTOR}.{name}", layer)


def _outer(wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Callable[[patches.Call], Any]:
    """A hook that runs ``wrap(next layer)`` on the call's arguments."""
    return lambda call: wrap(call.next_function())(**call.arguments)


def _address() -> str:
    return f"{ACTOR.address[0]}:{ACTOR.address[1]}"


def _client_factory() -> Callable[..., Any]:
    """Like LeRobot's: one stub and channel per address, shared by the streams."""
    clients: dict[tuple[str, int], tuple[Any, Any]] = {}
    lock = threading.Lock()

    def learner_service_client(host: str = "127.0.0.1", port: int = 50051) -> tuple[Any, Any]:
        with lock:
            if (host, port) not in clients:
                clients[host, port] = _new_client(host, port)
            return clients[host, port]

    return learner_service_client


def _new_client(host: str, port: int) -> tuple[Any, Any]:
    """LeRobot's channel options, plus gRPC's reconnect back-off capped at ``retry_interval_s``."""
    from lerobot.transport import services_pb2_grpc
    from lerobot.transport.utils import grpc_channel_options

    backoff_ms = int(ACTOR.settings.retry_interval_s * 1000)
    options = [
        *grpc_channel_options(),
        ("grpc.initial_reconnect_backoff_ms", min(500, backoff_ms)),
        ("grpc.min_reconnect_backoff_ms", min(500, backoff_ms)),
        ("grpc.max_reconnect_backoff_ms", backoff_ms),
    ]
    channel = actor_channel(host, port, ACTOR.settings, options, ACTOR.actor_id or None)
    logging.info(f"[ACTOR] Learner service client created for {host}:{port}")
    stub = services_pb2_grpc.LearnerServiceStub(channel)
    stream_parameters = stub.StreamParameters

    def tracked_stream_parameters(*args: Any, **kwargs: Any) -> Any:
        call = stream_parameters(*args, **kwargs)
        ACTOR.parameter_calls.append(call)
        if ACTOR.streams_ended.is_set():  # opened after the policy loop ended: nothing will read it
            call.cancel()
        return _ending_quietly(call)

    stub.StreamParameters = tracked_stream_parameters
    return stub, channel


def _ending_quietly(call: Any) -> Any:
    """The parameter stream's messages; once :func:`cancel_parameter_streams` cancelled it, it just ends.

    LeRobot's ``receive_policy`` logs any ``RpcError`` as an error, so every Ctrl-C would print one.
    """
    import grpc

    try:
        yield from call
    except grpc.RpcError as err:
        if not (ACTOR.streams_ended.is_set() and err.code() == grpc.StatusCode.CANCELLED):
            raise


def wait_for_learner(stub: Any, shutdown_event: Any) -> bool:
    """Call ``Ready()`` until the learner answers, for at most ``connect_timeout_s``.

    Args:
        stub: The learner service stub.
        shutdown_event: Ends the wait early when set.

    Returns:
        True once the learner answered; False on timeout or shutdown.
    """
    import grpc
    from lerobot.transport import services_pb2

    settings = ACTOR.settings
    start = time.monotonic()
    deadline = start + settings.connect_timeout_s
    attempt = 0
    while not shutdown_event.is_set():
        attempt += 1
        remaining = deadline - time.monotonic()
        try:
            stub.Ready(
                services_pb2.Empty(),
                timeout=max(0.1, min(settings.ready_timeout_s, remaining)),
                wait_for_ready=True,
            )
            logging.info(
                f"[ACTOR] Learner at {_address()} is ready (attempt {attempt}, {time.monotonic() - start:.1f} s)"
            )
            return True
        except grpc.RpcError as err:
            reason = f"{err.code().name}: {err.details()}"
            refused = _refusal(err)
            if refused:
                record_fatal(refused)
                return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            logging.error(
                f"[ACTOR] Learner at {_address()} not ready after {attempt} attempts ({reason}); giving up"
            )
            return False
        logging.warning(
            f"[ACTOR] Learner at {_address()} not ready (attempt {attempt}: {reason}); "
            f"retrying for up to {remaining:.0f} s more"
        )
        shutdown_event.wait(min(settings.retry_interval_s, remaining))
    return False


def _refusal(err: Any) -> str | None:
    """The one-line fatal message when the learner refused this actor (token, TLS), else None."""
    import grpc

    hint = refusal_hint(err.code(), err.details() or "", ACTOR.settings)
    if hint is None and err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        hint = tls_mismatch(*ACTOR.address, ACTOR.settings)
    return hint


def _establish_connection_hook(call: patches.Call) -> bool:
    """Replaces LeRobot's ``establish_learner_connection``: its loop calls ``Ready()`` without a deadline."""
    return _establish_connection(call.arguments["stub"], call.arguments["shutdown_event"])


def _establish_connection(stub: Any, shutdown_event: Any, attempts: int = 30) -> bool:
    """What the actor does instead of LeRobot's ``establish_learner_connection`` (``attempts`` is ignored)."""
    return _wait_or_record_fatal(
        stub,
        shutdown_event,
        f"the actor could not reach the learner at {_address()} within "
        f"{ACTOR.settings.connect_timeout_s:.0f} s. Start the learner first (with the same config), "
        "check policy.actor_learner_config.learner_host and learner_port, or wait longer with "
        "--faults.connect_timeout_s=<seconds>.",
    )


def _wait_or_record_fatal(stub: Any, shutdown_event: Any, message: str) -> bool:
    """:func:`wait_for_learner`; when it gives up (not on shutdown), record ``message`` as fatal."""
    if wait_for_learner(stub, shutdown_event):
        return True
    if not shutdown_event.is_set() and fatal_message() is None:
        record_fatal(message)
    return False


class Backlog:
    """Messages of one stream to send again after a reconnection, oldest first."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: deque[Any] = deque()

    def __len__(self) -> int:
        return len(self.items)


class AttemptQueue:
    """The transport queue as one stream attempt sees it.

    LeRobot's stream generator takes a message from the queue and yields its chunks to gRPC; when
    the stream breaks, that message is gone. This view remembers the message being sent until the
    generator asks for the next one (gRPC has taken all its chunks by then) and, when the attempt
    ends, puts it back in front of the backlog. Messages the backlog holds are served first.

    Args:
        queue: The actor's transport queue.
        backlog: The stream's backlog, shared by its attempts.
        ended: Set when this attempt is over; a late ``get`` of an abandoned generator then
            returns its message to the backlog and raises ``Empty``.
    """

    def __init__(self, queue: Any, backlog: Backlog, ended: threading.Event):
        self.queue = queue
        self.backlog = backlog
        self.ended = ended
        self.in_flight: Any = None

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        with self.backlog.lock:
            self.in_flight = None
            item = self.backlog.items.popleft() if self.backlog.items else None
        if item is None:
            try:
                item = self.queue.get(block=block, timeout=timeout)
            except (OSError, ValueError):  # LeRobot's actor_cli closes the queues once its loop returns,
                # while this stream's thread may still wait here ("handle is closed"; "is closed" for a
                # later get): a traceback at every normal shutdown. Empty makes the stream see the
                # shutdown event and end.
                time.sleep(min(timeout or 0.1, 0.1))
                raise Empty from None
        with self.backlog.lock:
            if self.ended.is_set():
                self.backlog.items.appendleft(item)
                raise Empty
            self.in_flight = item
        return item

    def close(self) -> None:
        """End the attempt; the message in flight goes back to the front of the backlog."""
        with self.backlog.lock:
            self.ended.set()
            if self.in_flight is not None:
                self.backlog.items.appendleft(self.in_flight)
                self.in_flight = None


def _reconnecting(name: str, queue_name: str, retain: bool) -> Callable[[patches.Call], None]:
    """The hook that runs one of LeRobot's stream functions again whenever it ends while the actor runs."""

    def stream(call: patches.Call) -> None:
        queue, shutdown_event = call.arguments[queue_name], call.arguments["shutdown_event"]
        backlog = Backlog()
        ACTOR.backlogs.append(backlog)
        while True:
            ended = threading.Event()
            view = AttemptQueue(queue, backlog, ended) if retain else queue
            call.proceed(**{queue_name: view, "shutdown_event": EitherEvent(shutdown_event, ended)})
            if retain:
                view.close()
            ended.set()
            if shutdown_event.is_set():
                return
            lost = time.monotonic()
            logging.warning(f"[ACTOR] The {name} stream to the learner ended; reconnecting")
            if not _reconnect(shutdown_event):
                return
            logging.info(f"[ACTOR] The {name} stream reconnected after {time.monotonic() - lost:.1f} s")

    return stream


def _reconnect(shutdown_event: Any) -> bool:
    """Wait for the learner to come back; one stream waits (and logs), the others queue behind it."""
    from lerobot.rl import actor

    with ACTOR.reconnect_lock:
        if shutdown_event.is_set():
            return False
        host, port = ACTOR.address
        stub, _ = actor.learner_service_client(host=host, port=port)
        if _wait_or_record_fatal(
            stub,
            shutdown_event,
            f"the actor lost the learner at {_address()} and could not reconnect within "
            f"{ACTOR.settings.connect_timeout_s:.0f} s; it stops, and the transitions it had not "
            "sent are lost. Restart the learner with --resume=true and the same --output_dir, then "
            "start the actor again.",
        ):
            return True
        shutdown_event.set()
        return False


def _decode_parameters(buffer: bytes) -> dict:
    """What the actor does instead of LeRobot's ``bytes_to_state_dict``: safetensors, at most ``max_message_mb``."""
    return decode_parameters(buffer, ACTOR.settings.max_message_mb * 2**20)


def _skipping_bad_parameters(original: Callable[..., None]) -> Callable[..., None]:
    """LeRobot's ``update_policy_parameters``; weights that do not decode are counted and skipped."""

    def update_policy_parameters(algorithm: Any, parameters_queue: Any, device: Any) -> None:
        try:
            original(algorithm=algorithm, parameters_queue=parameters_queue, device=device)
        except DecodeError as err:
            ACTOR.parameters.reject(str(err))

    return update_policy_parameters


def _with_episode_steps(call: patches.Call) -> dict:
    """The hook of ``get_frequency_stats``: the episode message also carries the episode's length."""
    return {**call.proceed(), EPISODE_STEPS_KEY: call.arguments["timer"].count}


def _counting(call: patches.Call) -> None:
    """The hook of ``push_transitions_to_transport_queue``: count what is handed to the learner."""
    transitions = call.arguments["transitions"]
    call.proceed()
    ACTOR.queued_transitions += len(transitions)
    logging.info(
        f"[ACTOR] Queued {len(transitions)} transitions for the learner "
        f"(total {ACTOR.queued_transitions}, resend backlog {ACTOR.backlog()})"
    )


def _checked_first_reset(cfg: Any) -> Callable[[patches.Call], Any]:
    """The hook of ``reset_and_build_transition``: the first observation is checked against the policy."""
    checked = False

    def reset_and_build_transition(call: patches.Call) -> Any:
        nonlocal checked
        transition = call.proceed()
        if not checked:
            from lerobot.processor import TransitionKey

            check_observation(transition[TransitionKey.OBSERVATION], cfg.policy)
            checked = True
        return transition

    return reset_and_build_transition


def _fatal_on_error(original: Callable[..., None]) -> Callable[..., None]:
    """Any exception in the actor's policy loop makes the actor exit non-zero.

    LeRobot logs it and returns normally, so an actor that crashed at its first step exited 0.
    A :class:`SetupError` is the message itself; any other exception is logged with its traceback.
    """

    def act_with_policy(cfg: Any, shutdown_event: Any, *args: Any, **kwargs: Any) -> None:
        try:
            original(cfg, shutdown_event, *args, **kwargs)
        except SetupError as err:
            record_fatal(str(err))
            end_streams(shutdown_event, [*args, *kwargs.values()])
        except Exception as err:
            logging.exception("[ACTOR] The policy loop failed")
            ee_jump = describe_ee_jump(err)
            record_fatal(
                f"the actor stopped: {ee_jump}"
                if ee_jump is not None
                else f"the actor's policy loop failed: {type(err).__name__}: {one_line(err).rstrip('.')}. Fix the "
                "cause (the traceback is in the actor's log) and start the actor again."
            )
            end_streams(shutdown_event, [*args, *kwargs.values()])
        finally:
            if shutdown_event.is_set():
                cancel_parameter_streams()

    return act_with_policy


def end_streams(shutdown_event: Any, queues: list[Any]) -> None:
    """Once the policy loop has failed: stop every stream and let the process exit without draining a queue.

    Not after a loop that ended normally: its last transitions and episode messages are still in
    the queues, and LeRobot's own shutdown sends them before the streams end.

    Sets the shutdown event (the transitions and interactions streams end at their next check),
    cancels the parameter streams (their thread otherwise waits for the learner's next weights)
    and cancels the exit-time join of each transport queue's feeder thread (the parameters'
    one may be blocked writing to a pipe nobody reads any more).

    Args:
        shutdown_event: The actor's shutdown event.
        queues: The policy loop's arguments; the transport queues among them are released.
    """
    shutdown_event.set()
    for queue in queues:
        if callable(getattr(queue, "cancel_join_thread", None)):
            queue.cancel_join_thread()
    cancel_parameter_streams()


def cancel_parameter_streams() -> None:
    """Cancel the parameter streams, open and yet to open: once the policy loop ended nothing reads them.

    Done when the loop was stopped (a Ctrl-C or SIGTERM sets the shutdown event) or failed:
    LeRobot then joins the thread receiving weights, which otherwise waits for the learner's next
    weights, for ever while the learner makes no update (before ``online_step_before_learning``).
    Not when the loop ended at its budget: that wait is then how the actor stays until the
    learner has trained on its last transitions (with ``env.updates_per_env_step`` the learner
    pushes once it has caught up), and the launcher stops the learner when its actors exit.
    """
    ACTOR.streams_ended.set()
    for call in ACTOR.parameter_calls:
        call.cancel()
