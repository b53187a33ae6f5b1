"""Decoupled Direction and Norm (Rony et al., CVPR 2019, Alg. 1), top-k version.

Each step moves ``delta`` along the normalised gradient of the loss (step
size cosine-annealed, as in the authors' code), then projects it onto the
sphere of radius ``epsilon``; ``epsilon`` shrinks by ``(1 - gamma)`` while
the current point is adversarial and grows by ``(1 + gamma)`` while it is
not, so the norm oscillates down onto the boundary. The loss is by default the
criterion's margin (label score minus the k-th other score) rather than the
paper's cross-entropy, so that "adversarial" and the descent direction refer to
the same top-k boundary; ``loss="ce"`` is the paper's (and adv_lib's) choice,
measured against it in docs/benchmarks.md. The smallest adversarial iterate is
kept.
Sizes (``init_norm``, ``alpha``) are in units of 255 (images in [0, 1]).
"""

from __future__ import annotations

import torch

from tasks.attacks.base import Attack, Proposal
from tasks.attacks.iterate import budgeted_steps, cosine, per_image
from tasks.attacks.losses import neg_cross_entropy
from tasks.attacks.params import DDNParams
from tasks.attacks.tracking import BestAdversarial
from tasks.context import QueryContext

_UNIT = 255.0


class DDNAttack(Attack[DDNParams]):
    """L2 attack alternating a gradient step and a norm adjustment (:class:`DDNParams`)."""

    def propose(self, ctx: QueryContext, x: torch.Tensor) -> Proposal:
        p = self.params
        steps, gamma, alpha = p.steps, p.gamma, p.alpha * _UNIT
        n = x.shape[0]
        eps = torch.full((n,), p.init_norm * _UNIT, device=x.device)
        delta = torch.zeros_like(x)
        best = BestAdversarial(x, norm="l2")
        loss = ctx.criterion.margin if p.loss == "margin" else neg_cross_entropy
        for i, rows in budgeted_steps(ctx, n, steps):
            step = cosine(i, steps, alpha, alpha / 100)
            xr = x[rows]
            xa = ctx.clip(xr + delta[rows])
            _, grad, logits = ctx.value_and_grad(loss, xa, rows)
            adversarial = ctx.criterion.is_adversarial(logits, ctx.label(rows))
            best.update(rows, xa - xr, adversarial, logits)
            gnorm = grad.flatten(1).norm(dim=1).clamp_min(1e-30)
            d = delta[rows] - step * grad / per_image(gnorm, x)
            e = torch.where(adversarial, eps[rows] * (1 - gamma), eps[rows] * (1 + gamma))
            dnorm = d.flatten(1).norm(dim=1).clamp_min(1e-30)
            delta[rows] = ctx.clip(xr + d * per_image(e / dnorm, x)) - xr
            eps[rows] = e
        return best.proposal(fallback=delta)
