"""Fault point 2, the gRPC part: a replacement actor is served while an old one holds its streams.

LeRobot 0.6.1 (issue 3979): the learner's gRPC server has exactly 3 threads, one actor holds 3
streams, so while an old actor's connection stays open (hung process, pulled cable) a new
actor's ``Ready()`` is queued for ever, and the actor calls it without a deadline. Here the
learner's own ``start_learner`` serves on loopback, a "hung actor" opens its three streams and
never reads or sends, and a second actor connects through :func:`wait_for_learner`.
"""

import contextlib
import logging
import threading
from multiprocessing import Event, Queue
from types import SimpleNamespace

import grpc
import pytest
from lerobot.rl import learner
from lerobot.transport import services_pb2, services_pb2_grpc

from lerobot_policy_e2hil.actor.hooks import ACTOR, wait_for_learner
from lerobot_policy_e2hil.faults import FaultSettings
from lerobot_policy_e2hil.learner.hooks import _install_server
from lerobot_policy_e2hil.lerobot_layer import patches
from test_faults_helpers import free_port, port_open, wait_for


def learner_cfg(port: int) -> SimpleNamespace:
    address = SimpleNamespace(
        learner_host="127.0.0.1", learner_port=port, policy_parameters_push_frequency=1, queue_get_timeout=0.1
    )
    concurrency = SimpleNamespace(learner="threads")
    return SimpleNamespace(policy=SimpleNamespace(actor_learner_config=address, concurrency=concurrency))


def counting_service(handlers: list[str]) -> type:
    """LeRobot's ``LearnerService`` that notes each stream handler the server has started."""

    class CountingService(learner.LearnerService):
        def StreamParameters(self, request, context):  # noqa: N802
            handlers.append("parameters")
            yield from super().StreamParameters(request, context)

        def SendTransitions(self, request_iterator, context):  # noqa: N802
            handlers.append("transitions")
            return super().SendTransitions(request_iterator, context)

        def SendInteractions(self, request_iterator, context):  # noqa: N802
            handlers.append("interactions")
            return super().SendInteractions(request_iterator, context)

    return CountingService


@pytest.fixture
def serve(monkeypatch):
    """Start ``start_learner`` in a thread (as LeRobot's learner does), with or without the faults.

    Returns the port and the list of stream handlers the server has started.
    """
    started = []

    def start(with_faults: bool) -> tuple[int, list[str]]:
        handlers: list[str] = []
        patches.install("learner")
        module = SimpleNamespace(
            MAX_WORKERS=learner.MAX_WORKERS,
            LearnerService=counting_service(handlers),
            start_learner=learner.start_learner,
        )
        if with_faults:
            _install_server(FaultSettings())
        monkeypatch.setattr(learner, "MAX_WORKERS", module.MAX_WORKERS)
        monkeypatch.setattr(learner, "LearnerService", module.LearnerService)
        port, shutdown = free_port(), Event()
        args = (Queue(), Queue(), Queue(), shutdown, learner_cfg(port))
        thread = threading.Thread(target=module.start_learner, args=args, daemon=True)
        thread.start()
        started.append((shutdown, thread))
        wait_for(lambda: port_open(port), 30, "the learner's gRPC server")
        return port, handlers

    with patches.isolated_hooks():
        yield start
        for shutdown, thread in started:
            shutdown.set()
            thread.join(timeout=30)


class HungActor:
    """An actor whose three streams stay open while it neither sends nor reads."""

    def __init__(self, port: int, handlers: list[str]):
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = services_pb2_grpc.LearnerServiceStub(self.channel)
        self.release = threading.Event()

        def idle():
            self.release.wait()
            yield from ()

        for method in (stub.SendTransitions, stub.SendInteractions):
            threading.Thread(target=self._call, args=(method, idle()), daemon=True).start()
        self.parameters = stub.StreamParameters(services_pb2.Empty())
        # The server must run the three handlers before the new actor calls: a fixed sleep was too
        # short on a loaded machine, and the new Ready() then got a free thread (issue 12, item 8).
        wait_for(lambda: len(handlers) >= 3, 60, "the learner to start the hung actor's three handlers")

    @staticmethod
    def _call(method, requests) -> None:
        with contextlib.suppress(grpc.RpcError):
            method(requests)

    def die(self) -> None:
        self.parameters.cancel()
        self.release.set()
        self.channel.close()


def new_actor_stub(port: int):
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    return channel, services_pb2_grpc.LearnerServiceStub(channel)


@pytest.mark.slow
def test_lerobot_alone_queues_the_new_actors_ready_behind_the_hung_one(serve):
    port, handlers = serve(with_faults=False)
    hung = HungActor(port, handlers)
    channel, stub = new_actor_stub(port)
    try:
        with pytest.raises(grpc.RpcError) as error:  # without a deadline this call never returns
            stub.Ready(services_pb2.Empty(), timeout=3)
        assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        channel.close()
        hung.die()


@pytest.mark.slow
def test_new_actor_connects_at_once_and_a_dead_actors_thread_is_freed(serve, monkeypatch, caplog):
    # A generous deadline: the claim is "served on the first attempt" (LeRobot alone: never served),
    # not "within 2 s", which a loaded machine misses.
    monkeypatch.setattr(
        ACTOR, "settings", FaultSettings(connect_timeout_s=60, ready_timeout_s=30, retry_interval_s=0.5)
    )
    port, handlers = serve(with_faults=True)
    hung = HungActor(port, handlers)
    channel, stub = new_actor_stub(port)
    try:
        with caplog.at_level(logging.INFO):
            assert wait_for_learner(stub, threading.Event())
            assert "is ready (attempt 1," in caplog.text  # served at once, not queued behind the hung actor
            hung.die()
            wait_for(lambda: "parameter stream ended (actor gone)" in caplog.text, 60, "the freed handler")
    finally:
        channel.close()
        hung.die()


def test_message_in_flight_when_a_stream_breaks_is_sent_again_first():
    import queue

    from lerobot_policy_e2hil.actor.hooks import AttemptQueue, Backlog

    transport, backlog = queue.Queue(), Backlog()
    for message in ("episode 1", "episode 2", "episode 3"):
        transport.put(message)
    first = AttemptQueue(transport, backlog, threading.Event())
    assert first.get(timeout=1) == "episode 1"
    assert first.get(timeout=1) == "episode 2"  # asking for the next one: episode 1 was handed over
    first.close()  # the stream broke while episode 2 was being sent
    with pytest.raises(queue.Empty):  # an abandoned generator gets nothing more...
        first.get(timeout=1)
    second = AttemptQueue(transport, backlog, threading.Event())
    assert [second.get(timeout=1) for _ in range(2)] == ["episode 2", "episode 3"]  # ...and loses nothing
    assert len(backlog) == 0
