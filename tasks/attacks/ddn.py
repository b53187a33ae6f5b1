"""Decoupled Direction and Norm (Rony et al., CVPR 2019, Alg. 1), top-k version.

Each step moves ``delta`` along the normalised gradient of the loss (step
size cosine-annealed, as in the authors' code), then projects it onto the
sphere of radius ``epsilon``; ``epsilon`` shrinks by ``(1 - gamma)`` while
the current point is adversarial and grows by ``(1 + gamma)`` while it is
not, so the norm oscillates down onto the boundary. The loss is the
criterion's margin (label score minus the k-th other score) rather than the
cross-entropy, so that "adversarial" and the descent direction refer to the
same top-k boundary. The smallest adversarial iterate is kept.
Sizes (``init_norm``, ``alpha``) are in units of 255 (images in [0, 1]).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from tasks.attacks.base import Attack, Proposal
from tasks.attacks.registry import ATTACKS
from tasks.attacks.tracking import BestAdversarial
from tasks.context import QueryContext

_UNIT = 255.0


def _per_image(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *[1] * (like.dim() - 1))


@ATTACKS.register("ddn")
class DDNAttack(Attack):
    """L2 attack alternating a gradient step and a norm adjustment.

    Parameters: ``steps`` (100), ``gamma`` (0.05), ``init_norm`` (1.0),
    ``alpha`` (1.0, annealed to ``alpha / 100``), all from the paper.
    """

    norm: ClassVar[str] = "l2"

    @classmethod
    def param_names(cls) -> tuple[str, ...]:
        return ("steps", "gamma", "init_norm", "alpha")

    def propose(self, ctx: QueryContext, x: torch.Tensor) -> Proposal:
        p = self.params
        steps = int(p.get("steps", 100))
        gamma = float(p.get("gamma", 0.05))
        alpha = float(p.get("alpha", 1.0)) * _UNIT
        n = x.shape[0]
        eps = torch.full((n,), float(p.get("init_norm", 1.0)) * _UNIT, device=x.device)
        delta = torch.zeros_like(x)
        best = BestAdversarial(x, norm="l2")
        for i in range(steps):
            step = alpha / 100 + (alpha - alpha / 100) * (1 + math.cos(math.pi * i / steps)) / 2
            xa = ctx.clip(x + delta)
            _, grad, logits = ctx.value_and_grad(ctx.criterion.margin, xa)
            adversarial = ctx.criterion.is_adversarial(logits, ctx.label())
            best.update(torch.arange(n, device=x.device), xa - x, adversarial)
            gnorm = grad.flatten(1).norm(dim=1).clamp_min(1e-30)
            delta = delta - step * grad / _per_image(gnorm, x)
            eps = torch.where(adversarial, eps * (1 - gamma), eps * (1 + gamma))
            dnorm = delta.flatten(1).norm(dim=1).clamp_min(1e-30)
            delta = delta * _per_image(eps / dnorm, x)
            delta = ctx.clip(x + delta) - x

        direction = torch.where(_per_image(best.found, x), best.delta, delta)
        return Proposal(direction=direction, init_scale=torch.ones(n, device=x.device))
