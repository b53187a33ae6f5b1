"""Luo et al.'s BFGS perturbation (sec. B, after Szegedy et al. 2014).

Minimise ``eta * ||e||_1 + hinge(e)`` where the hinge is the true class's
score while the label is still in the top-k and 0 once it is out (the logit
by default; ``score="prob"`` is the softmax reading of the paper's "classification
score", see :mod:`tasks.attacks.losses`; the logit hinge is the one that meets
the closed-form minima of linear models, the probability's gradient saturates
on confident images), with the
batched projected L-BFGS of :mod:`tasks.attacks.lbfgs` (the box is the pixel
range of ``x + e``). An image leaves the optimisation at the first point
that is adversarial; the base's line search then shrinks ``e`` ("line search
of the norm"). Images where L-BFGS never reaches an adversarial point fall
back, as in the paper, on the perturbation after one L-BFGS iteration, whose
scale the line search then grows; ``Proposal.info["fallback"]`` marks them.

Scale: logits are O(10) while ``||e||_1`` sums ~1.5e5 pixel values, so with
the paper's ``eta = 1e-6`` the hinge dominates until the label leaves the
top-k, which is what makes the method reach adversarial points. The first
step length is the first-order guess of where the score reaches the margin,
``margin / ||g||^2`` along ``-g``; later steps grow geometrically while the
objective stays linear (no curvature pairs), see :mod:`tasks.attacks.lbfgs`.
"""

from __future__ import annotations

import torch

from tasks.attacks.base import Attack, Proposal
from tasks.attacks.lbfgs import LBFGS, minimize, perturbation_box
from tasks.attacks.losses import true_prob, true_score
from tasks.attacks.params import BFGSParams
from tasks.attacks.tracking import BestAdversarial
from tasks.context import QueryContext

SCORES = {"prob": true_prob, "logit": true_score}


class BFGSAttack(Attack[BFGSParams]):
    """L1-penalised hinge on the true score, projected L-BFGS, Luo's fallback.

    ``polish`` > 0 keeps L-BFGS going past the first adversarial point and
    keeps the smallest-L1 adversarial iterate (docs/benchmarks.md has what it buys).
    """

    def propose(self, ctx: QueryContext, x: torch.Tensor) -> Proposal:
        p = self.params
        eta = p.eta
        settings = LBFGS(max_iter=p.max_iter, history=p.history)
        criterion = ctx.criterion
        score = SCORES[p.score]

        def hinge(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            out = criterion.is_adversarial(logits, labels)
            return torch.where(out, torch.zeros_like(logits[:, 0]), score(logits, labels))

        def objective(
            e: torch.Tensor, idx: torch.Tensor
        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            return ctx.value_and_grad(hinge, x[idx] + e, idx)

        def step0(g: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
            margin = criterion.margin(logits, ctx.label()).clamp_min(1e-3)
            return margin / g.flatten(1).pow(2).sum(1).clamp_min(1e-30)

        best = BestAdversarial(x, norm="l1pp")
        polish = p.polish
        since = torch.full((x.shape[0],), -1, dtype=torch.long, device=x.device)

        def on_eval(idx: torch.Tensor, e: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
            adversarial = criterion.is_adversarial(logits, ctx.label(idx))
            best.update(idx, e, adversarial, logits)
            seen = since[idx]
            seen = torch.where(adversarial & (seen < 0), torch.zeros_like(seen), seen)
            seen = torch.where(seen >= 0, seen + 1, seen)
            since[idx] = seen
            return seen > polish  # evaluations past the first adversarial point

        lower, upper = perturbation_box(x, ctx.bounds)
        result = minimize(
            objective, torch.zeros_like(x), step0, lower, upper, settings, on_eval, l1=eta
        )
        return best.proposal(fallback=result.first, info={"fallback": ~best.found})
