"""The E2HiL math and algorithm, and the same-result fast update.

* :mod:`.influence`: the influence values, the entropy-bounded mask and the actor loss as pure
  tensor functions (paper Eq. 9-12, and the first-order estimate);
* :mod:`.configuration_e2hil`: ``"algorithm": {"type": "e2hil"}`` and its fields;
* :mod:`.e2hil_algorithm`: LeRobot's SAC with the E2HiL actor loss;
* :mod:`.fast_update`: a faster ``update()`` computing the same numbers, for SAC and E2HiL;
* :mod:`.sac_fast`: ``"algorithm": {"type": "sac_fast"}``, LeRobot's SAC with that update.

Both algorithm types register with LeRobot when the package ``lerobot_policy_e2hil`` is imported.
"""
