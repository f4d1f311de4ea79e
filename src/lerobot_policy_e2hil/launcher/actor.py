"""LeRobot's actor with the sim hooks: ``python -m lerobot_policy_e2hil.launcher.actor --config_path ...``.

The sim's gym id registered with its env options, the fault handling of :mod:`..actor.hooks` (bounded
waits for the learner, streams that reconnect after a learner restart; ``--faults.*`` flags), no
real-time pacing in simulation, and an exit once ``policy.online_steps`` env steps are done. The
body is the ``actor`` role of :mod:`.roles`, which the sim learner shares.
"""

from ..faults.entry import exit_process, run_entry
from .roles import role_main

#: The entry body for :func:`..faults.entry.run_entry` (parses ``sys.argv``)
main = role_main("actor")

if __name__ == "__main__":
    exit_process(lambda: run_entry(main))
