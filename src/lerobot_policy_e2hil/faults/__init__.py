"""The ``--faults.*`` settings of the runtime, and how its entry points end.

* :mod:`.settings`: the bounded waits, limits, TLS and token settings (``--faults.<field>``);
* :mod:`.entry`: how an entry point reports a bad setup or a fatal fault and exits.

The runtime they configure has rooms of its own: :mod:`..learner` and :mod:`..actor` (the hooks
each side installs), :mod:`..wire`, :mod:`..security`, :mod:`..checkpoints` and
:mod:`..setup_checks`. What survives which fault, and how to resume: ``docs/faults.md``.
"""

from ..errors import SetupError
from .entry import fatal_message, record_fatal, run_entry
from .settings import FaultSettings

__all__ = ["FaultSettings", "SetupError", "fatal_message", "record_fatal", "run_entry"]
