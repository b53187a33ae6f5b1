"""Balda et al. (2018): gradient-based norm-constrained attacks (GNII, Algorithms 1, 1-n, 2).

GNII minimises the linearised loss ``L(x) + eta^T grad L(x)`` subject to
``||eta||_p <= eps``; Proposition 2 gives the closed form

    eta = -eps * sign(g) |g|^(q-1) / ||g||_q^(q-1),  q = p / (p - 1),

which for ``p = inf`` is ``-eps sign(g)`` (eq. 7). The direction does not
depend on ``eps``, so the fixed-budget attack becomes a minimum-scale attack
by handing the direction (unit ``||.||_p``) to the shared line search; the
first guess of the scale is Proposition 1's ``L(x) / ||grad L(x)||_q``, the
smallest budget at which GN is feasible.

* ``gn1`` (Algorithm 1): ``L`` is eq. (3), ``min_{l != k} f_k - f_l`` on the
  softmax probabilities ``f``. With a top-k criterion the margin is to the
  k-th other class (the criterion's margin), which is eq. (3) for k = 1; the
  class ``k(x)`` is the label (they coincide for images correct at top-1).
* ``gn1_iter`` (Algorithm 1-n): ``n`` successive GNII steps of budget
  ``eps / n`` each, relinearising at each step; its direction depends on
  ``eps``, so it runs at a per-image budget (doubled until it fools) and the
  line search rescales the summed perturbation (see :mod:`tasks.attacks.pgd`).
* ``gn2`` (Algorithm 2): ``L`` approximated by the label's probability
  ``f_k(x)`` (no search over classes).

Parameter ``p`` chooses the norm (:class:`~tasks.attacks.params.GNParams`).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from tasks.attacks.base import Attack, Proposal
from tasks.attacks.params import GNIterParams, GNParams
from tasks.attacks.pgd import DUAL, BudgetAttack, dual_norm
from tasks.context import QueryContext


def probability_margin(ctx: QueryContext) -> object:
    """Eq. (3) on softmax probabilities, generalised to the criterion's top-k margin."""

    def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return ctx.criterion.margin(logits.softmax(dim=1), labels)

    return loss


def label_probability(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Algorithm 2's surrogate ``f_k(x)``: the label's softmax probability."""
    return logits.softmax(dim=1).gather(1, labels[:, None]).squeeze(1)


def gnii_direction(g: torch.Tensor, norm: str) -> torch.Tensor:
    """Proposition 2 at ``eps = 1``: the unit-``||.||_p`` minimiser of ``eta^T g``."""
    if norm == "linf":
        return -g.sign()
    q = DUAL[norm]
    shaped = g.sign() * g.abs().pow(q - 1)
    return -shaped / dual_norm(g, norm).pow(q - 1).clamp_min(1e-30).view(-1, *[1] * (g.dim() - 1))


class _GNAttack(Attack[GNParams]):
    """One linearisation, Proposition 2's direction, the line search on ``eps``."""

    surrogate: ClassVar[str] = "margin"

    def propose(self, ctx: QueryContext, x: torch.Tensor) -> Proposal:
        loss = probability_margin(ctx) if self.surrogate == "margin" else label_probability
        value, grad, _ = ctx.value_and_grad(loss, x)  # type: ignore[arg-type]
        init = value.clamp_min(1e-6) / dual_norm(grad, self.norm).clamp_min(1e-30)
        return Proposal(direction=gnii_direction(grad, self.norm), init_scale=init.clamp(1e-3, 1e5))


class GN1(_GNAttack):
    """Algorithm 1: GNII with ``L`` = eq. (3) on probabilities, closed form."""


class GN2(_GNAttack):
    """Algorithm 2: GNII with ``L`` approximated by the label's probability."""

    surrogate: ClassVar[str] = "probability"


class GN1Iterative(BudgetAttack[GNIterParams]):
    """Algorithm 1-n: ``n = steps`` GNII steps of budget ``eps / n``."""

    def perturb(self, ctx: QueryContext, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        n = self.params.steps
        step = (eps / n).view(-1, *[1] * (x.dim() - 1))
        delta = torch.zeros_like(x)
        active = torch.arange(x.shape[0], device=x.device)
        loss = probability_margin(ctx)
        for _ in range(n):
            xa = ctx.clip(x[active] + delta[active])
            _, grad, logits = ctx.value_and_grad(loss, xa, active)  # type: ignore[arg-type]
            still = ~ctx.criterion.is_adversarial(logits, ctx.label(active))
            active, grad = active[still], grad[still]
            if active.numel() == 0:
                break
            moved = delta[active] + step[active] * gnii_direction(grad, self.norm)
            delta[active] = ctx.clip(x[active] + moved) - x[active]
        return delta
