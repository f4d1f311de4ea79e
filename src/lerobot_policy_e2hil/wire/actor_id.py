"""The name every actor sends with each call to the learner, and how the learner reads it.

Several actors can share one learner (:mod:`..learner.actors`). Each names itself
(``--faults.actor_id``; default ``<host>-<pid>``) in the metadata of every gRPC call, under
:data:`ACTOR_METADATA_KEY`; the learner's server reads it back with :func:`caller`, and a call
without a valid name counts as :data:`UNKNOWN_ACTOR`.
"""

from __future__ import annotations

import os
import re
import socket
from typing import Any

from ..errors import ConfigError

ACTOR_METADATA_KEY = "x-e2hil-actor"
UNKNOWN_ACTOR = "unknown"
_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def check_actor_id(actor_id: str) -> str:
    """``actor_id`` if it is a valid name.

    Raises:
        ConfigError: Not 1-64 letters, digits, ``_``, ``.``, ``:`` or ``-``.
    """
    if not _ID_PATTERN.fullmatch(actor_id):
        raise ConfigError(
            f"faults.actor_id={actor_id!r} is invalid; allowed values: 1-64 letters, digits, '_', '.', ':' or '-'"
        )
    return actor_id


def default_actor_id() -> str:
    """``<host>-<pid>``: distinct for every actor process, stable while it runs."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:40] or "host"
    return f"{host}-{os.getpid()}"


def caller(context: Any) -> str:
    """The actor id a call carries in its metadata (:data:`UNKNOWN_ACTOR` when absent or malformed)."""
    value = dict(context.invocation_metadata() or ()).get(ACTOR_METADATA_KEY)
    return value if isinstance(value, str) and _ID_PATTERN.fullmatch(value) else UNKNOWN_ACTOR
