"""The actor side of the runtime: LeRobot's actor with the hooks this plugin installs.

:mod:`.hooks` (installed by :func:`.hooks.install_actor_faults`): bounded, logged waits for the
learner, streams that reconnect by themselves, parameters and transitions on the checked wire
format, and one ``error:`` line for a fault that ends the actor. What survives which fault:
docs/faults.md.
"""
