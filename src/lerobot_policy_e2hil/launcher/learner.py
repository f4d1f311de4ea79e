"""LeRobot's learner with the sim hooks: ``python -m lerobot_policy_e2hil.launcher.learner --config_path ...``.

The fault handling of :mod:`..learner.hooks` (atomic checkpoints, resume, transition checks;
``--faults.*`` flags), the metrics file and a final checkpoint once LeRobot's loop has stopped;
``--resume=true`` with the run's ``--output_dir`` resumes it. The body is the ``learner`` role of
:mod:`.roles`, which the sim actor shares.
"""

from ..faults.entry import exit_process, run_entry
from .roles import role_main

#: The entry body for :func:`..faults.entry.run_entry` (parses ``sys.argv``)
main = role_main("learner")

if __name__ == "__main__":
    exit_process(lambda: run_entry(main))
