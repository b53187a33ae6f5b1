"""The stages of a run on model actors.

- ``execute``: the attack stage, then the evaluation stage, on one set of actors;
- ``scheduler``: :class:`UnitScheduler`, units to actors, surviving crashes and lost nodes;
- ``actors``, ``placement``, ``model_pool``: Ray, actor requests against the nodes, a pool
  that serves every model;
- ``worker``: the model actor (one network, resident) and the attack stage's computation;
- ``oom``: out-of-memory detection and batch halving; ``progress``: batches as they finish;
- attack stage: ``attack_unit``, ``plan_attacks``, ``running_stats``;
- evaluation stage: ``eval_unit``, ``plan_evals``, ``eval_worker``, ``eval_inputs``,
  ``eval_rows``, ``eval_adaptive``, ``eval_black_box``, ``eval_progress``.

Nothing is imported here: ``attack_unit`` and ``eval_unit`` stay light.
"""
