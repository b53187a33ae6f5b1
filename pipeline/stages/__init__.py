"""The stages of a run on model actors.

- ``stage``: what a stage declares (:class:`Stage`: plan, compute, write, strip, booking),
  its plan and outcome; ``registry``: the run's stages in order (``STAGES``);
- ``execute``: every active stage, in order, on one set of actors;
- ``scheduler``: :class:`UnitScheduler`, units to actors, surviving crashes and lost nodes;
- ``actors``, ``placement``, ``model_pool``: Ray, actor requests against the nodes, a pool
  that serves every model;
- ``worker``: the model actor (one network, resident), whose one method runs any unit;
- ``oom``: out-of-memory detection and the one batch-halving helper; ``progress``: batches
  as they finish;
- attack stage: ``attack_stage`` (its declaration), ``attack_unit``, ``plan_attacks``,
  ``attack_batch``, ``attack_rows``, ``running_stats``;
- evaluation stage: ``eval_stage`` (its declaration), ``eval_unit``, ``plan_evals``,
  ``eval_worker``, ``eval_inputs``, ``eval_rows``, ``eval_adaptive``, ``eval_black_box``,
  ``eval_progress``.

Nothing is imported here: ``attack_unit`` and ``eval_unit`` stay light.
"""
