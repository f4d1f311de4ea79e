"""Transport security of the learner's gRPC port: TLS, a shared token on every call, a safe bind.

LeRobot 0.6.1 serves the learner on a plaintext port that checks nobody
(``add_insecure_port``) and its actors open plaintext channels. Here, set with ``--faults.*``
flags (:class:`~.faults.settings.FaultSettings`):

* the learner serves TLS when ``tls_cert`` and ``tls_key`` are given, and actors that have
  ``tls_ca`` open TLS channels that check the learner's certificate against it;
* with a token (``token_file``, or the environment variable ``token_env``; never the JSON config or
  the command line), the actor adds it to every call and the learner's :class:`TokenCheck`
  refuses every call without it, before the call's handler reads anything: a refused actor's
  transitions and messages are never used. Each refusal is counted and logged (rate-limited)
  with the caller's address; the actor ends with one line that says what to fix;
* :func:`check_bind` refuses a learner address other than loopback without TLS and a token,
  unless ``insecure`` is set (then it warns).

The learner side hooks ``grpc.server`` in ``lerobot.rl.learner`` with :class:`SecureServers` (a row
of :mod:`.lerobot_layer.patches`), through which LeRobot's own ``start_learner`` builds its server: the same
server, with the token check as an interceptor and its ``add_insecure_port`` turned into
``add_secure_port`` with gRPC's server credentials when TLS is on, so TLS ends in gRPC itself.
gRPC closes a plaintext connection to a TLS port inside its C core without telling Python code,
so the learner does not count those; the plaintext actor says what to fix (:func:`tls_mismatch`).
"""

from __future__ import annotations

import collections
import hmac
import ipaddress
import logging
import os
import socket
import ssl
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc

from .errors import ConfigError, SetupError
from .faults.settings import FaultSettings
from .wire.actor_id import ACTOR_METADATA_KEY

TOKEN_METADATA_KEY = "x-e2hil-token"
LOOPBACK_NAMES = ("localhost", "ip6-localhost", "ip6-loopback")


def read_token(settings: FaultSettings) -> str | None:
    """The shared token: the first line of ``token_file``, or the variable ``token_env``; None if unset.

    Raises:
        ConfigError: ``token_file`` cannot be read or is empty.
    """
    if settings.token_file:
        try:
            text = Path(settings.token_file).read_text()
        except OSError as err:
            raise ConfigError(
                f"faults.token_file={settings.token_file!r} is invalid ({err.strerror or err}); "
                "allowed values: a readable file holding the token"
            ) from None
        token = text.strip().splitlines()[0].strip() if text.strip() else ""
        if not token:
            raise ConfigError(
                f"faults.token_file={settings.token_file!r} is invalid (empty); allowed values: a file "
                "whose first line is the token"
            )
        return token
    token = os.environ.get(settings.token_env, "").strip()
    return token or None


def _read_pem(name: str, path: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ConfigError(
            f"faults.{name}={path!r} is invalid ({err.strerror or err}); allowed values: a readable PEM file"
        ) from None
    if b"-----BEGIN" not in data:
        raise ConfigError(f"faults.{name}={path!r} is invalid (not PEM); allowed values: a PEM file")
    return data


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1); False for anything else."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind(host: str, port: int, settings: FaultSettings, token: str | None) -> None:
    """Refuse to serve a non-loopback address without TLS and a token, unless ``insecure``.

    Raises:
        SetupError: Non-loopback, not both TLS and a token, and ``insecure`` is not set.
    """
    if is_loopback(host):
        return
    missing = [what for what, have in (("TLS", settings.tls_cert), ("a token", token)) if not have]
    if not missing:
        return
    if settings.insecure:
        logging.warning(
            f"[LEARNER] Serving {host}:{port} without {' and '.join(missing)} (--faults.insecure=true): "
            "anyone who reaches this port can send transitions and read the policy weights"
        )
        return
    raise SetupError(
        f"the learner would serve {host}:{port}, which is not loopback, without {' and '.join(missing)}: "
        "anyone who reaches the port could send it transitions and read its weights. Give it "
        "--faults.tls_cert and --faults.tls_key and a token (the variable "
        f"{settings.token_env} or --faults.token_file; docs/faults.md, 'Several robots over a network'), "
        "or add --faults.insecure=true on a network you trust"
    )


class TokenCheck(grpc.ServerInterceptor):
    """Server interceptor: a call without the token in its metadata is refused (UNAUTHENTICATED).

    The refusing handler aborts before it reads the request stream, so nothing a refused caller
    sent reaches the learner's queues.

    Args:
        token: The shared token.
        on_refused: Called with (caller address, method, reason) for every refused call.
    """

    def __init__(self, token: str, on_refused: Callable[[str, str, str], None]):
        self._token = token.encode()
        self._on_refused = on_refused

    def intercept_service(self, continuation: Callable, details: Any) -> Any:
        handler = continuation(details)
        supplied = dict(details.invocation_metadata or ()).get(TOKEN_METADATA_KEY)
        if isinstance(supplied, str) and hmac.compare_digest(supplied.encode(), self._token):
            return handler
        if handler is None:
            return None
        reason = "no token" if supplied is None else "wrong token"
        return _refusing(handler, details.method, reason, self._on_refused)


def _refusing(handler: Any, method: str, reason: str, on_refused: Callable[[str, str, str], None]) -> Any:
    """A handler of the same kind as ``handler`` that aborts every call with UNAUTHENTICATED."""

    def refuse(_request: Any, context: Any) -> Any:
        on_refused(context.peer(), method, reason)
        context.abort(grpc.StatusCode.UNAUTHENTICATED, f"the learner refused the call: {reason}")

    kinds = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }
    make = kinds[bool(handler.request_streaming), bool(handler.response_streaming)]
    return make(
        refuse,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class SecureServers:
    """The hook of ``grpc.server`` in ``lerobot.rl.learner`` (:mod:`.lerobot_layer.patches`): its servers are secured.

    Args:
        interceptors: Server interceptors added to every server (the token check).
        credentials: Server TLS credentials, or None for plaintext.
        before_bind: Called with the address before the port is added (the bind check).
        workers: Server threads (LeRobot's pool has ``MAX_WORKERS``; None keeps it).
    """

    def __init__(
        self,
        interceptors: list[Any],
        credentials: Any,
        before_bind: Callable[[str], None],
        workers: int | None = None,
    ):
        self._interceptors = interceptors
        self._credentials = credentials
        self._before_bind = before_bind
        self._workers = workers

    def __call__(self, call: Any) -> Any:
        interceptors = [*(call.arguments["interceptors"] or ()), *self._interceptors]
        changes: dict[str, Any] = {"interceptors": interceptors}
        if self._workers is not None:
            # LeRobot's pool has started no thread yet (they start with the first call)
            changes["thread_pool"] = ThreadPoolExecutor(max_workers=self._workers)
        return _SecureServer(call.proceed(**changes), self._credentials, self._before_bind)


class _SecureServer:
    """A gRPC server whose ``add_insecure_port`` checks the address and adds a TLS port when there are credentials."""

    def __init__(self, server: Any, credentials: Any, before_bind: Callable[[str], None]):
        self._server = server
        self._credentials = credentials
        self._before_bind = before_bind

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)

    def add_insecure_port(self, address: str) -> int:
        self._before_bind(address)
        if self._credentials is None:
            return self._server.add_insecure_port(address)
        return self._server.add_secure_port(address, self._credentials)


def server_credentials(settings: FaultSettings) -> Any:
    """TLS credentials of the learner's server, or None without ``tls_cert``.

    Raises:
        ConfigError: A certificate or key file that cannot be read or is not PEM.
    """
    if not settings.tls_cert:
        return None
    chain = _read_pem("tls_cert", settings.tls_cert)
    key = _read_pem("tls_key", settings.tls_key)
    return grpc.ssl_server_credentials([(key, chain)])


def split_address(address: str) -> tuple[str, int]:
    """``host`` and ``port`` of ``host:port`` or ``[v6]:port``."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


_Details = collections.namedtuple(
    "_Details", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")
)


class _CallDetails(_Details, grpc.ClientCallDetails):
    """The details of one client call, with the token added to its metadata."""


class MetadataSender(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Client interceptor: every call carries ``pairs`` (the token, the actor id) in its metadata."""

    def __init__(self, pairs: list[tuple[str, str]]):
        self._pairs = pairs

    def _details(self, details: Any) -> _CallDetails:
        return _CallDetails(
            details.method,
            details.timeout,
            [*(details.metadata or ()), *self._pairs],
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Callable, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Callable, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Callable, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Callable, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


def actor_channel(
    host: str, port: int, settings: FaultSettings, options: list[tuple[str, Any]], actor_id: str | None = None
) -> Any:
    """The actor's channel to the learner: TLS when ``tls_ca`` is set, the token and ``actor_id`` on every call.

    Raises:
        ConfigError: ``tls_ca`` or ``token_file`` cannot be read.
    """
    target = f"{host}:{port}"
    if settings.tls_ca:
        credentials = grpc.ssl_channel_credentials(root_certificates=_read_pem("tls_ca", settings.tls_ca))
        if settings.tls_server_name:
            options = [*options, ("grpc.ssl_target_name_override", settings.tls_server_name)]
        channel = grpc.secure_channel(target, credentials, options)
    else:
        channel = grpc.insecure_channel(target, options)
    token = read_token(settings)
    pairs = [(TOKEN_METADATA_KEY, token)] if token else []
    if actor_id:
        pairs.append((ACTOR_METADATA_KEY, actor_id))
    return grpc.intercept_channel(channel, MetadataSender(pairs)) if pairs else channel


def refusal_hint(code: Any, details: str, settings: FaultSettings) -> str | None:
    """What an actor should change when the learner refused it, or None for other errors.

    Args:
        code: The call's ``grpc.StatusCode``.
        details: The call's error details.
        settings: The actor's settings (which token source, TLS or not).
    """
    if code == grpc.StatusCode.UNAUTHENTICATED:
        source = (
            f"the file {settings.token_file}" if settings.token_file else f"the variable {settings.token_env}"
        )
        return (
            f"the learner refused the actor's token ({details}): the token the actor read from {source} "
            "is not the learner's. Replace it with the token the learner reads (its --faults.token_file "
            f"or ${settings.token_env}); the learner's log names this refusal too"
        )
    lowered = details.lower()
    if code == grpc.StatusCode.UNAVAILABLE and (
        "ssl" in lowered or "handshake" in lowered or "tls" in lowered
    ):
        if settings.tls_ca:
            return (
                f"the TLS handshake with the learner failed ({details}). Check that the learner serves "
                "TLS (--faults.tls_cert/--faults.tls_key), that --faults.tls_ca is its certificate or CA, "
                "and --faults.tls_server_name if the certificate names another host"
            )
        return (
            f"the learner did not accept a plaintext connection ({details}); it probably serves TLS. "
            "Give the actor the learner's certificate with --faults.tls_ca"
        )
    return None


def _handshake(
    host: str, port: int, context: ssl.SSLContext, server_hostname: str, timeout_s: float
) -> tuple[bool, Exception | None]:
    """Connect and do a TLS handshake: (whether anything accepted the connection, the handshake's error)."""
    try:
        raw = socket.create_connection((host, port), timeout=timeout_s)
    except OSError:
        return False, None
    try:
        with context.wrap_socket(raw, server_hostname=server_hostname):
            return True, None
    except (OSError, ssl.SSLError) as err:
        return True, err
    finally:
        raw.close()


def speaks_tls(host: str, port: int, timeout_s: float = 2.0) -> bool | None:
    """Whether ``host:port`` completes a TLS handshake; None when nothing accepts a connection there.

    Only a probe (the certificate is not checked), used after ``Ready()`` failed to tell a TLS
    mismatch from a learner that is not up.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    connected, error = _handshake(host, port, context, host, timeout_s)
    return error is None if connected else None


def untrusted_certificate(
    host: str, port: int, settings: FaultSettings, timeout_s: float = 2.0
) -> str | None:
    """What to change when the learner's certificate does not verify against the actor's ``tls_ca``.

    gRPC reports a failed verification as an unavailable learner, so the actor checks the
    certificate itself, with its ``tls_ca`` and the name gRPC checks (``tls_server_name`` or ``host``).
    None when it verifies or nothing answers.
    """
    try:
        context = ssl.create_default_context(cafile=settings.tls_ca)
    except (OSError, ssl.SSLError):
        return None
    context.set_alpn_protocols(["h2"])
    _, error = _handshake(host, port, context, settings.tls_server_name or host, timeout_s)
    if not isinstance(error, ssl.SSLCertVerificationError):
        return None
    return (
        f"the learner at {host}:{port} serves TLS with a certificate that --faults.tls_ca does not "
        f"verify ({error.verify_message}). Give the actor the learner's certificate (or the CA that "
        "signed it) with --faults.tls_ca, and --faults.tls_server_name if the certificate names "
        "another host"
    )


def tls_mismatch(host: str, port: int, settings: FaultSettings) -> str | None:
    """What to change when the actor uses TLS and the learner does not, the other way round, or the
    learner's certificate does not verify against the actor's ``tls_ca``.

    gRPC reports each case as an unavailable learner (or, waiting for it, a deadline), so
    :func:`speaks_tls` and :func:`untrusted_certificate` ask the port itself.
    """
    learner_tls = speaks_tls(host, port)
    if learner_tls and settings.tls_ca:
        return untrusted_certificate(host, port, settings)
    if learner_tls is None or learner_tls == bool(settings.tls_ca):
        return None
    if learner_tls:
        return (
            f"the learner at {host}:{port} serves TLS and closed the actor's plaintext connection. Give "
            "the actor the learner's certificate (or its CA) with --faults.tls_ca"
        )
    return (
        f"the TLS handshake with the learner at {host}:{port} failed: it serves plaintext. Give the "
        "learner --faults.tls_cert and --faults.tls_key, or drop --faults.tls_ca on a loopback-only setup"
    )
