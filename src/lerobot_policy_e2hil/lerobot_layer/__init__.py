"""The LeRobot layer: every change this plugin makes to LeRobot, and what installs it.

* :mod:`.patches`: the table of rows (each LeRobot attribute changed, how, why), checked against
  the installed LeRobot and installed once per role; features hook into its rows
  (docs/patches.md lists it);
* :mod:`.registry`: how LeRobot learns the algorithm types this plugin adds, and every LeRobot
  device type registered for the entry points;
* :mod:`.fixes`: small fixes for LeRobot bugs that stop or slow these workflows.
"""
