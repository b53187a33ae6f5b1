"""Tabacof & Valle's box-constrained L-BFGS attack (sec. III-A, Alg. 1).

Minimise ``||D||_2 + C * H(p(x + D), p_A)`` for a random adversarial
target (seeded), inside the pixel box, with the same batched projected
L-BFGS as ``bfgs`` (:mod:`tasks.attacks.lbfgs`; one optimiser, two
objectives). ``C`` is searched per image as in Alg. 1: grow it
exponentially from a small value until the optimum reaches the target, then
bisect between the last failure and the first success, each solve
warm-started from the previous ``D``.

Top-k: a single target at the top leaves the label second, still in the
top-5, so ``p_A`` is uniform over ``k`` random targets and "reached" means
they hold the top-k; for k = 1 this is the paper's one-hot target and its
``argmax == target`` test.

Success for the benchmark is the shared top-k criterion, not the target:
every L-BFGS iterate is offered to a best-adversarial tracker and the
smallest-L2 adversarial ``D`` is returned for the base's line search. The
norm is measured in units of 255 (images in [0, 1]) so that ``C`` has the
magnitudes of the literature.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tasks.attacks.base import Attack, Proposal
from tasks.attacks.lbfgs import LBFGS, minimize, perturbation_box
from tasks.attacks.params import LBFGSBParams
from tasks.attacks.tracking import BestAdversarial
from tasks.context import QueryContext

_UNIT = 255.0


def random_targets(logits: torch.Tensor, labels: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """``k`` distinct random classes other than the label, per image (seeded), ``(B, k)``."""
    g = torch.Generator().manual_seed(seed)
    n, n_classes = logits.shape
    order = torch.rand(n, n_classes - 1, generator=g).argsort(dim=1)[:, :k].to(labels.device)
    return (labels[:, None] + 1 + order) % n_classes  # shifts 1..C-1 never hit the label


class LBFGSBAttack(Attack[LBFGSBParams]):
    """Random-target L2 + C * cross-entropy, bisection on C per image (the paper doubles C;
    ``c_growth`` defaults to a faster growth)."""

    def propose(self, ctx: QueryContext, x: torch.Tensor) -> Proposal:
        p = self.params
        settings = LBFGS(max_iter=p.max_iter, history=p.history)
        n = x.shape[0]
        k = ctx.criterion.k
        clean = ctx.logits(x)
        target = random_targets(clean, ctx.label(), k, p.seed)
        p_adv = torch.zeros_like(clean).scatter_(1, target, 1.0 / k)
        c = torch.full((n,), p.c_init, device=x.device)
        c_lo = torch.zeros_like(c)
        c_hi = torch.full_like(c, float("inf"))
        growth = p.c_growth
        best = BestAdversarial(x, norm="l2")
        lower, upper = perturbation_box(x, ctx.bounds)
        d = torch.zeros_like(x)

        def objective(
            e: torch.Tensor, idx: torch.Tensor
        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            tgt = p_adv[idx]
            ce, grad, logits = ctx.value_and_grad(
                lambda z, _y: F.cross_entropy(z, tgt, reduction="none"), x[idx] + e, idx
            )
            norm = (e.flatten(1).pow(2).sum(1) + 1e-12).sqrt()
            grad_norm = e / norm.view(-1, *[1] * (e.dim() - 1))
            scale = c[idx].view(-1, *[1] * (e.dim() - 1))
            return norm / _UNIT + c[idx] * ce, grad_norm / _UNIT + scale * grad, logits

        def on_eval(idx: torch.Tensor, e: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
            best.update(idx, e, ctx.criterion.is_adversarial(logits, ctx.label(idx)), logits)
            return torch.zeros_like(idx, dtype=torch.bool)

        def step0(g: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
            return 1.0 / g.flatten(1).norm(dim=1).clamp_min(1e-12)  # a 1-pixel L2 first step

        for _ in range(p.search_steps):
            d = minimize(objective, d, step0, lower, upper, settings, on_eval).e
            top = ctx.logits(ctx.clip(x + d)).topk(k, dim=1).indices
            reached = (top.sort(1).values == target.sort(1).values).all(1)
            c_hi = torch.where(reached, c, c_hi)
            c_lo = torch.where(reached, c_lo, c)
            c = torch.where(torch.isinf(c_hi), c * growth, (c_lo + c_hi) / 2)

        return best.proposal(fallback=d)
