"""Bounded waits, limits and transport security of the runtime: the ``faults`` section of the config.

:class:`FaultSettings` is the ``faults`` field of :class:`~..train_config.E2HiLTrainConfig`, the
config every learner and actor entry point parses: ``"faults": {...}`` in the JSON file or
``--faults.<field>=<value>`` flags, saved in each checkpoint's ``train_config.json``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

#: The command-line prefix of the section's fields
FLAG_PREFIX = "--faults."


@dataclass
class FaultSettings:
    """Fault-handling settings shared by the learner and the actor entry points."""

    # Actor: give up after this many seconds without reaching the learner (at start and after a loss)
    connect_timeout_s: float = 300.0
    # Actor: deadline of one Ready() call to the learner (LeRobot 0.6.1 has none, issue 3979)
    ready_timeout_s: float = 5.0
    # Actor: pause between two connection attempts; also caps gRPC's reconnect back-off
    retry_interval_s: float = 2.0
    # Learner: gRPC server threads; one actor holds 3 streams, LeRobot 0.6.1 has exactly 3
    grpc_workers: int = 16
    # Learner: at most one warning about rejected transitions per this many seconds
    warn_interval_s: float = 10.0
    # Learner: the newest N complete checkpoints keep their replay buffers (older ones keep the model)
    keep_buffers: int = 2
    # Learner: largest interaction message (JSON, one per episode) it decodes, in KiB; larger ones are skipped
    max_interaction_kb: int = 64
    # Learner: largest message one stream may deliver (a transitions batch), in MiB; the call is refused beyond
    max_message_mb: int = 1024
    # Learner: PEM certificate chain for TLS (with tls_key); empty: plaintext
    tls_cert: str = ""
    # Learner: PEM private key of tls_cert
    tls_key: str = ""
    # Actor: PEM certificate(s) to trust for the learner (its self-signed cert or your CA); empty: plaintext
    tls_ca: str = ""
    # Actor: host name to check in the learner's certificate when it differs from learner_host
    tls_server_name: str = ""
    # Both: file holding the shared token (one line); empty: the token comes from the variable token_env
    token_file: str = ""
    # Both: environment variable holding the shared token when token_file is empty (unset: no token)
    token_env: str = "E2HIL_LEARNER_TOKEN"
    # Learner: allow a non-loopback learner_host without TLS and a token (it then warns); never on a shared network
    insecure: bool = False
    # Actor: its name in the learner's records when several actors share a learner; empty: <host>-<pid>
    actor_id: str = ""

    def __post_init__(self) -> None:
        for name in ("connect_timeout_s", "ready_timeout_s", "retry_interval_s", "warn_interval_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"faults.{name}={getattr(self, name)!r} is invalid; allowed values: > 0")
        for name in ("grpc_workers", "keep_buffers", "max_interaction_kb", "max_message_mb"):
            if getattr(self, name) < 1:
                raise ConfigError(f"faults.{name}={getattr(self, name)!r} is invalid; allowed values: >= 1")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError(
                f"faults.tls_cert={self.tls_cert!r} and faults.tls_key={self.tls_key!r} are invalid; "
                "allowed values: both set (PEM files) or both empty"
            )
        if self.actor_id:
            from ..wire.actor_id import check_actor_id

            check_actor_id(self.actor_id)
        if not self.token_env.strip():
            raise ConfigError("faults.token_env='' is invalid; allowed values: an environment variable name")
