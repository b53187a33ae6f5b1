"""Iterative fixed-budget attacks (PGD2, I-FGSM) made minimum-perturbation attacks.

Zhang et al. (2019, sec. 2.1, 5.1) treat I-FGSM (Kurakin et al.) and PGD2 as
*target distortion* attacks: run at a budget ``eps`` and, over a set of
budgets, keep the smallest distortion that succeeds. Here the budget is
chosen per image: the first-order estimate ``2 * margin / ||grad margin||_dual``
(Balda et al.'s Proposition 1 distance, doubled), doubled again (at most
``max_doublings`` times) until the attack succeeds; the perturbation found
at that budget, divided by the budget, is the direction handed to the
shared line search, which then shrinks (or grows) it to the smallest
adversarial scale. The scale is therefore in units of the budget: the L2
norm for ``pgd2``, the Linf norm for ``ifgsm``.

Both descend the criterion's margin (Zhang's loss, eq. 3, with m = 0 and
the top-k margin); an image stops moving as soon as it is adversarial, where
the paper's hinge has zero gradient.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TypeVar

import torch

from tasks.attacks.base import Attack, Proposal
from tasks.attacks.params import BudgetParams, IterativeParams
from tasks.context import QueryContext

B = TypeVar("B", bound=BudgetParams)
I = TypeVar("I", bound=IterativeParams)  # noqa: E741

DUAL = {"l2": 2.0, "linf": 1.0}


def _view(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *[1] * (like.dim() - 1))


def dual_norm(g: torch.Tensor, norm: str) -> torch.Tensor:
    """``||g||_q`` with ``q`` dual to ``norm`` ("l2" -> 2, "linf" -> 1), per image."""
    return g.flatten(1).norm(p=DUAL[norm], dim=1)


class BudgetAttack(Attack[B]):
    """An attack run at a per-image budget ``eps``; the base line search then minimises."""

    @abstractmethod
    def perturb(self, ctx: QueryContext, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """A perturbation of norm ``<= eps`` (in ``self.norm``) for each image."""

    def first_budget(self, ctx: QueryContext, x: torch.Tensor) -> torch.Tensor:
        """Twice the first-order distance to the boundary, ``margin / ||grad||_dual``."""
        margin, grad, _ = ctx.value_and_grad(ctx.criterion.margin, x)
        eps = 2 * margin.clamp_min(1e-3) / dual_norm(grad, self.norm).clamp_min(1e-12)
        return eps.clamp(1e-2, 1e5)

    def propose(self, ctx: QueryContext, x: torch.Tensor) -> Proposal:
        eps = self.first_budget(ctx, x)
        delta = torch.zeros_like(x)
        done = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        for attempt in range(self.params.max_doublings + 1):
            todo = (~done).nonzero().squeeze(1)
            if todo.numel() == 0:
                break
            if attempt > 0:
                eps[todo] *= 2
            d = self.perturb(ctx.subset(todo), x[todo], eps[todo])
            adv, _ = ctx.is_adversarial(ctx.clip(x[todo] + d), todo)
            delta[todo] = d
            done[todo] = adv
        return Proposal(direction=delta / _view(eps, x), init_scale=eps.clone())


class IterativeGradientAttack(BudgetAttack[I]):
    """``x <- clip(P_eps(x - step * n(g)))`` for ``steps`` iterations (Zhang eq. 10-11)."""

    def normalise(self, g: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def project(self, delta: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def transform_gradient(
        self, ctx: QueryContext, x: torch.Tensor, g: torch.Tensor, idx: torch.Tensor
    ) -> torch.Tensor:
        """Hook applied to the raw gradient before normalisation (qPGD2 smooths here)."""
        return g

    def perturb(self, ctx: QueryContext, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        steps = self.params.steps
        step = self.params.rel_step * eps
        delta = torch.zeros_like(x)
        active = torch.arange(x.shape[0], device=x.device)
        for _ in range(steps):
            xa = ctx.clip(x[active] + delta[active])
            _margin, grad, logits = ctx.value_and_grad(ctx.criterion.margin, xa, active)
            still = ~ctx.criterion.is_adversarial(logits, ctx.label(active))
            active, grad = active[still], grad[still]
            if active.numel() == 0:
                break
            g = self.transform_gradient(ctx, x, grad, active)
            moved = delta[active] - _view(step[active], g) * self.normalise(g)
            moved = self.project(moved, eps[active])
            delta[active] = ctx.clip(x[active] + moved) - x[active]
        return delta


class PGD2(IterativeGradientAttack[I]):
    """L2 projected gradient descent (Zhang et al.'s PGD2; the L2 I-FGSM of cleverhans)."""

    def normalise(self, g: torch.Tensor) -> torch.Tensor:
        return g / _view(g.flatten(1).norm(dim=1).clamp_min(1e-30), g)

    def project(self, delta: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        n = delta.flatten(1).norm(dim=1).clamp_min(1e-30)
        return delta * _view(torch.clamp(eps / n, max=1.0), delta)


class IFGSM(IterativeGradientAttack[IterativeParams]):
    """Kurakin et al.'s iterative FGSM: sign steps, projected on the Linf ball."""

    def normalise(self, g: torch.Tensor) -> torch.Tensor:
        return g.sign()

    def project(self, delta: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        e = _view(eps, delta)
        return torch.maximum(torch.minimum(delta, e), -e)
