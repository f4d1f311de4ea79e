"""The ``--faults.*`` settings of the runtime, and how its entry points end.

* :mod:`.settings`: the bounded waits, limits, TLS and token settings (``--faults.<field>``);
* :mod:`.entry`: how an entry point reports a bad setup or a fatal fault and exits.

The runtime they configure has rooms of its own: :mod:`..learner` and :mod:`..actor` (the hooks
each side installs), :mod:`..wire`, :mod:`..security`, :mod:`..checkpoints` and
:mod:`..setup_checks`. What survives which fault, and how to resume: ``docs/faults.md``.
"""

from ..errors import SetupError
from .entry import fatal_message, record_fatal, run_entry
from .settings import FaultSettings, split_fault_args

# For cli.py (faults.install_learner_faults, ...) until it imports them from their rooms; the learner
# and actor hooks import .entry, so this package reaches them only on first use.
_ELSEWHERE = {
    "ACTOR": "actor",
    "install_actor_faults": "actor",
    "LEARNER": "learner",
    "install_learner_faults": "learner",
    "save_final_checkpoint": "learner",
    "check_features": "setup_checks",
}

__all__ = [
    "ACTOR",
    "LEARNER",
    "FaultSettings",
    "SetupError",
    "check_features",
    "fatal_message",
    "install_actor_faults",
    "install_learner_faults",
    "record_fatal",
    "save_final_checkpoint",
    "run_entry",
    "split_fault_args",
]


def __getattr__(name: str):
    """The names of ``__all__`` defined in the runtime's rooms (:mod:`..learner.hooks`, ...)."""
    room = _ELSEWHERE.get(name)
    if room == "actor":
        from ..actor import hooks as module
    elif room == "learner":
        from ..learner import hooks as module
    elif room == "setup_checks":
        from .. import setup_checks as module
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(module, name)
