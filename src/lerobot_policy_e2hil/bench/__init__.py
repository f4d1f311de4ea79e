"""Reproducible sim benchmark of E2HiL against HIL-SERL (LeRobot's SAC): ``e2hil-bench``.

* :mod:`.trainer` -- synchronous single-process trainer built from LeRobot's own pieces;
* :mod:`.probe` -- entropy change and per-sample influence around actor steps;
* :mod:`.analysis` -- statistics as pure functions (CI, correlations, Table II);
* :mod:`.suite` -- {sac, e2hil} x seeds, the sensitivity sweep, the reports;
* :mod:`.plots` -- PNG figures.
"""
