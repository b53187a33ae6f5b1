"""The loop every budgeted gradient attack runs (DDN, FMN, ALMA): steps under a query cap.

Each iteration is one forward and one backward pass per image; an image that
cannot afford another one (its ``budget`` on the query context) leaves the
active set, so the attack stops it at an exact count, and the best-adversarial
tracker (:mod:`tasks.attacks.tracking`) holds what it returns.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from tasks.context import QueryContext

#: Passes per image of one iteration (``QueryContext.value_and_grad``).
STEP_PASSES = 2


def per_image(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A ``(B,)`` tensor shaped to broadcast over images like ``like``."""
    return v.view(-1, *[1] * (like.dim() - 1))


def cosine(i: int, steps: int, start: float, end: float) -> float:
    """Cosine annealing from ``start`` (step 0) towards ``end`` (DDN's and FMN's schedules)."""
    return end + (start - end) * (1 + math.cos(math.pi * i / steps)) / 2


def budgeted_steps(ctx: QueryContext, n: int, steps: int) -> Iterator[tuple[int, torch.Tensor]]:
    """``(iteration, active images)`` for up to ``steps`` iterations; the active images are
    those that can still afford one; ends early once none can."""
    everyone = torch.arange(n, device=ctx.labels.device)
    for i in range(steps):
        active = everyone[ctx.affordable(everyone, STEP_PASSES)]
        if active.numel() == 0:
            return
        yield i, active
