"""Luo et al.'s random baseline (sec. 3, Fig. 2): uniform noise, then the line search.

Each pixel value gets an independent draw from U[-1, 1]; the shared line
search scales that direction to the smallest adversarial size, so the scale
is the Linf norm of the result. The generator is seeded (``seed``) so runs
repeat; draws depend on the batch order, which the pipeline keeps fixed.
"""

from __future__ import annotations

import torch

from tasks.attacks.base import Attack, Proposal
from tasks.attacks.params import NoiseParams
from tasks.context import QueryContext


class RandomNoiseAttack(Attack[NoiseParams]):
    """Uniform [-1, 1] noise direction."""

    def propose(self, ctx: QueryContext, x: torch.Tensor) -> Proposal:
        g = torch.Generator().manual_seed(self.params.seed)
        noise = torch.rand(x.shape, generator=g, dtype=x.dtype) * 2 - 1
        return Proposal(direction=noise.to(x.device))
