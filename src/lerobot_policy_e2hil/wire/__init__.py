"""What travels between the actor and the learner, encoded and decoded without unpickling.

* :mod:`.tensors`: transitions (actor -> learner) and parameters (learner -> actor) as
  safetensors;
* :mod:`.messages`: the per-episode interaction message as JSON, size limits, rejection counts;
* :mod:`.actor_id`: the name each actor sends with every call.
"""
