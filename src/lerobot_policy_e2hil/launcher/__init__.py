"""The launcher: one command that runs a learner and its actors, and what those processes add.

* :mod:`.train`: ``python -m lerobot_policy_e2hil.launcher.train`` (``make sim``, ``e2hil-sim``):
  starts the sim learner and actors, prints progress, stops them, evaluates and summarises;
* :mod:`.learner`, :mod:`.actor`, :mod:`.roles`: the processes it starts (LeRobot's, with the
  runtime's hooks and the launcher's);
* :mod:`.hooks`: the metrics file, the actor's budget and pacing, the intervention buffer;
* :mod:`.lockstep`: a fixed number of learner updates per env step;
* :mod:`.report`: progress lines, the summary and the plots from ``metrics.jsonl``;
* :mod:`.children`: how the processes of a run start and stop (also used by the SO101 dry run,
  the several-actors benchmark and the tests);
* :mod:`.parent`: a started learner or actor stops once its launcher is gone (also used by the
  SO101 dry run).
"""
