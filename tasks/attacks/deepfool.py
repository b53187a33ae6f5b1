"""DeepFool (Moosavi-Dezfooli et al., 2016, Alg. 2 and sec. 3.3 for Linf).

At each iteration the classifier is linearised around the current point;
for every candidate class ``j`` the margin ``f_j = z_label - z_j`` and its
gradient ``w_j`` (one backward per candidate) give the distance to that
class's boundary, ``|f_j| / ||w_j||_q`` with ``q`` the dual norm (2 for L2,
1 for Linf). Candidates are the ``candidates`` highest other classes at the
current point, not all 1000 (the paper's speed-up for ImageNet).

Top-k: the label is out when ``k`` other classes beat it, so the boundary to
cross is the ``k``-th closest candidate's (signed distances, crossed classes
count as closest); for k = 1 this is the paper's ``argmin``. Steps are
accumulated and the total is applied with ``(1 + overshoot)``; iteration stops
per image once ``ctx.criterion`` holds, and that perturbation (adversarial
at scale 1) goes to the base's line search.
"""

from __future__ import annotations

import torch

from tasks.attacks.base import Attack, Proposal
from tasks.attacks.params import DeepFoolParams
from tasks.context import QueryContext


def candidate_classes(logits: torch.Tensor, labels: torch.Tensor, n: int) -> torch.Tensor:
    """The ``n`` highest-scoring classes other than the label, per image."""
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return others.topk(min(n, logits.shape[1] - 1), dim=1).indices


class DeepFoolAttack(Attack[DeepFoolParams]):
    """Iterated linearised minimal step to the k-th closest candidate boundary."""

    def propose(self, ctx: QueryContext, x: torch.Tensor) -> Proposal:
        p = self.params
        norm, n_cand, overshoot = p.norm, p.candidates, p.overshoot
        k = ctx.criterion.k
        if n_cand < k:
            raise ValueError(f"deepfool needs candidates >= top_k ({k}), got {n_cand}")

        n = x.shape[0]
        r_total = torch.zeros_like(x)
        pert = torch.zeros_like(x)
        active = torch.arange(n, device=x.device)

        def margins(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            cand = candidate_classes(logits, labels, n_cand)
            return logits.gather(1, labels[:, None]) - logits.gather(1, cand)

        for _ in range(p.max_iter):
            f, w, _ = ctx.jacobian(margins, ctx.clip(x[active] + pert[active]), active)
            w = w.flatten(2)
            dual = w.norm(dim=2) if norm == "l2" else w.abs().sum(2)
            j = (f / dual.clamp_min(1e-12)).kthvalue(k, dim=1).indices  # k-th closest boundary
            rows = torch.arange(active.numel(), device=x.device)
            wj, fj = w[rows, j], f[rows, j].clamp_min(0) + 1e-4
            dj = dual[rows, j]
            dj = torch.where(dj > 0, dj, torch.full_like(dj, float("inf")))  # flat: no step
            step = (
                (fj / dj.pow(2))[:, None] * wj if norm == "l2" else (fj / dj)[:, None] * wj.sign()
            )
            # The margin is z_label - z_j: moving against its gradient lowers it.
            r_total[active] -= step.view(-1, *x.shape[1:])
            pert[active] = (1 + overshoot) * r_total[active]
            # A forward-only check: the next Jacobian (K backwards) only where still needed.
            adversarial, _ = ctx.is_adversarial(ctx.clip(x[active] + pert[active]), active)
            active = active[~adversarial]
            if active.numel() == 0:
                break

        direction = ctx.clip(x + pert) - x
        return Proposal(direction=direction, init_scale=torch.ones(n, device=x.device))
