"""The evaluation stage's science as plain PyTorch: conditions, batched scans, linearity.

A :class:`~tasks.evaluation.conditions.ConditionBatch` is one protocol condition
instantiated on a batch of images (a frame, a direction, its views);
:func:`~tasks.evaluation.engine.evaluate` runs every condition's grid scan in
shared rounds, each round one batched pass through the network.
"""
