"""Reproducible sim benchmark of E2HiL against HIL-SERL (LeRobot's SAC): ``e2hil-bench``.

* :mod:`.config` -- the budget (:class:`.config.Budget`, one preset per command) and one run's settings;
* :mod:`.trainer` -- synchronous single-process trainer built from LeRobot's own pieces;
* :mod:`.probe` -- entropy change and per-sample influence around actor steps;
* :mod:`.runs` -- the runs of a suite or sweep, training them, the run cache;
* :mod:`.aggregate` -- per-run facts, summaries over seeds, curves, influence validation;
* :mod:`.analysis` -- statistics as pure functions (CI, correlations, Table II);
* :mod:`.report` -- the suite's and the sweep's JSON, markdown and figures;
* :mod:`.plots` -- PNG figures;
* :mod:`.influence_check` -- predicted vs measured entropy change of each influence form;
* :mod:`.cli` -- the ``e2hil-bench`` command line (draccus).
"""
