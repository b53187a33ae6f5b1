"""Peck (2017)'s certified lower bounds on minimum adversarial perturbations (task ``bounds``).

>>> from tasks.bounds import peck_bound
>>> result = peck_bound(model, x)     # x in the model's input space (0..255 for pixel models)
>>> result.bound_l2                   # per image; result.kappas: per-layer chain
"""

from tasks.bounds.layers import UnsupportedLayerError
from tasks.bounds.network import BoundResult, peck_bound, sequential_layers

__all__ = ["BoundResult", "UnsupportedLayerError", "peck_bound", "sequential_layers"]
