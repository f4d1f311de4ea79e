"""The learner side of the runtime: LeRobot's learner with the hooks this plugin installs.

* :mod:`.hooks`: resume that restores everything, atomic checkpoints, run counters across
  restarts, a gRPC server that serves several actors and frees the threads of dead ones;
  installed by :func:`.hooks.install_learner_faults`;
* :mod:`.transitions`: the check of every transition an actor sends before it reaches the
  replay buffer;
* :mod:`.actors`: several actors on one learner (messages tagged by sender, every actor gets
  every new set of weights).

What survives which fault, and how to resume: docs/faults.md.
"""
