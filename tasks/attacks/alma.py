"""Augmented Lagrangian attack, ALMA (Rony et al., CVPR 2021, Alg. 1), top-k version, L1/L2.

ALMA minimises ``distance(delta) + P2(dlr(x + delta), rho, mu)``: the
constraint ``dlr < 0`` (out of the top-k) enters through the penalty-Lagrangian
function P2 (the paper's Table 1 choice), whose multiplier ``mu`` follows the
derivative of P2 at the current constraint value (a moving average) and whose
penalty ``rho`` grows by ``rho_growth`` every ``check_steps`` iterations in
which the constraint neither held nor improved by ``tau``. The step is RMSProp
with momentum; after an image's first success its learning rate decays
exponentially to ``lr_reduction`` times the first by the last step.

The constraint is the difference of logits ratio (Croce & Hein's DLR) on the
criterion's margin: ``(margin + tolerance) / (z_(1) - z_(k+2))``, the label's
logit minus the k-th other, over the spread of the top logits (top-3 for
k = 1, the paper's). Distances and step sizes are in units of 255 (images in
[0, 1] in the paper). The smallest adversarial iterate is kept
(:mod:`tasks.attacks.tracking`).
"""

from __future__ import annotations

import torch

from tasks.attacks.base import Attack, Proposal
from tasks.attacks.iterate import budgeted_steps, per_image
from tasks.attacks.losses import LossFn
from tasks.attacks.params import ALMAParams
from tasks.attacks.tracking import BestAdversarial
from tasks.context import QueryContext
from tasks.criterion import TopK

_UNIT = 255.0


def dlr_loss(criterion: TopK, tolerance: float) -> LossFn:
    """The constraint: the criterion's margin over the spread of the top ``k + 2`` logits."""

    def dlr(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        top = logits.topk(min(criterion.k + 2, logits.shape[1]), dim=1).values
        spread = top[:, 0] - top[:, -1]
        return (criterion.margin(logits, labels) + tolerance) / (spread + 1e-8)

    return dlr


def p2_derivative(y: torch.Tensor, rho: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """d/dy of the penalty P2: ``mu y + mu rho y^2 + rho^2 y^3 / 6`` for y >= 0,
    ``mu y / (1 - rho y)`` below; the multiplier update and the chain rule both use it."""
    above = mu + 2 * mu * rho * y + 0.5 * rho**2 * y**2
    below = mu / (1 - rho * y.clamp(max=0)) ** 2
    return torch.where(y >= 0, above, below)


def distance_gradient(d: torch.Tensor, norm: str) -> torch.Tensor:
    """Gradient of the L2 or L1 norm of ``d`` in units of 255 w.r.t. ``d`` in units of 255."""
    if norm == "l1pp":
        return d.sign()
    return d / per_image(d.flatten(1).norm(dim=1).clamp_min(1e-12), d)


class ALMAAttack(Attack[ALMAParams]):
    """Penalty-Lagrangian descent with RMSProp (:class:`ALMAParams`)."""

    def propose(self, ctx: QueryContext, x: torch.Tensor) -> Proposal:
        prm = self.params
        n, steps, a = x.shape[0], prm.steps, prm.alpha
        delta = torch.zeros_like(x)
        square_avg = torch.ones_like(x)
        momentum = torch.zeros_like(x)
        mu = torch.full((n,), prm.mu_init, device=x.device)
        rho = torch.full((n,), prm.rho_init, device=x.device)
        prev = torch.zeros(n, device=x.device)
        found = torch.zeros(n, dtype=torch.bool, device=x.device)
        step_found = torch.full((n,), float(steps + 1), device=x.device)
        best = BestAdversarial(x, norm=prm.norm)
        dlr = dlr_loss(ctx.criterion, prm.logit_tolerance)

        for i, rows in budgeted_steps(ctx, n, steps):
            xr, d = x[rows], delta[rows]
            y, grad_y, logits = ctx.value_and_grad(dlr, xr + d, rows)
            r, m = rho[rows], mu[rows]
            if i == 0:
                prev[rows] = y
            elif (i + 1) % prm.check_steps == 0:
                improved = y < prm.tau * prev[rows]
                r = torch.where(found[rows] | improved, r, r * prm.rho_growth)
                prev[rows] = y
            if i > 0:
                m = torch.lerp(m, p2_derivative(y, r, m), 1 - a).clamp(1e-6, 1e12)
            adversarial = ctx.criterion.is_adversarial(logits, ctx.label(rows))
            best.update(rows, d, adversarial, logits)
            first = adversarial & ~found[rows]
            step_found[rows] = torch.where(first, float(i), step_found[rows])
            found[rows] |= adversarial

            # The gradient w.r.t. delta in units of 255: the model's is per pixel value.
            grad = per_image(p2_derivative(y, r, m), x) * grad_y * _UNIT
            if i > 0:  # the first step follows the constraint alone (delta = 0 there)
                grad = grad + distance_gradient(d, prm.norm)
            sf = step_found[rows]
            decay = prm.lr_reduction ** ((i - sf).clamp_min(0) / (steps - sf))
            sq = a * square_avg[rows] + (1 - a) * grad**2
            mom = a * momentum[rows] + grad / (sq.sqrt() + 1e-8)
            step = per_image(prm.lr_init * _UNIT * decay, x) * mom
            delta[rows] = ctx.clip(xr + d - step) - xr
            square_avg[rows], momentum[rows], rho[rows], mu[rows] = sq, mom, r, m
        return best.proposal(fallback=delta)
