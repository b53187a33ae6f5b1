"""Carlini & Wagner's L2 attack (2017, sec. V-A and VI), for the top-k criterion.

The box is removed by the tanh change of variables ``x' = lo + (hi - lo) *
(tanh(w) + 1) / 2`` (sec. V-A, method 3) and ``||x' - x||_2^2 + c * f(x')``
is minimised with Adam, with ``f = max(margin, -kappa)`` and the margin the
criterion's (label score minus the k-th other score), so that ``f <= 0``
means out of the top-k. ``c`` is binary-searched per image (x10 until the
first success, then bisection), with early abort when the loss stalls, a
stop at the query budget, and every iterate is offered to the best-adversarial tracker (smallest L2).
Without bounds ``x' = x + s * w`` with ``s`` the tanh map's slope at the
centre, so Adam's step has the same meaning. Distances are measured in units
of 255 so that ``initial_const`` and ``lr`` keep the paper's magnitudes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from tasks.attacks.base import Attack, Proposal
from tasks.attacks.iterate import STEP_PASSES
from tasks.attacks.losses import LossFn
from tasks.attacks.params import CWParams
from tasks.attacks.tracking import BestAdversarial
from tasks.context import QueryContext

_UNIT = 255.0


class _BoxMap:
    """``w -> x'`` (tanh into the box, or affine without one) and its inverse."""

    def __init__(self, x: torch.Tensor, bounds: tuple[float, float] | None) -> None:
        self.x, self.bounds = x, bounds
        self.half = (bounds[1] - bounds[0]) / 2 if bounds else _UNIT / 2

    def to_pixels(self, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.bounds is None:
            return x + self.half * w
        return self.bounds[0] + self.half * (torch.tanh(w) + 1)

    def initial(self) -> torch.Tensor:
        if self.bounds is None:
            return torch.zeros_like(self.x)
        z = (self.x - self.bounds[0]) / self.half - 1
        return torch.atanh(z.clamp(-1 + 1e-6, 1 - 1e-6))


def _weighted_hinge(ctx: QueryContext, c: torch.Tensor, kappa: float) -> LossFn:
    """``c * max(margin, -kappa)``: C&W's f_6 with the top-k margin."""

    def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return c * ctx.criterion.margin(logits, labels).clamp_min(-kappa)

    return loss


#: ``(variable rows, their batch rows) -> (adversarial images, squared L2 in units of 255)``
Parametrization = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def cw_minimize(
    ctx: QueryContext,
    x: torch.Tensor,
    params: CWParams,
    init: torch.Tensor,
    parametrize: Parametrization,
) -> Proposal:
    """C&W's optimisation, shared by ``cw`` and Zhang's ``scw``.

    Adam on a variable that ``parametrize`` maps to an image, minimising the
    squared distance + ``c * max(margin, -kappa)``; ``c`` binary-searched per
    image (x10 until the first success, then bisection); early abort when the
    loss stalls; every iterate offered to the best-adversarial tracker.
    """
    max_iter, kappa = params.max_iter, params.kappa
    abort_every = max(1, max_iter // 10) if params.abort_early else max_iter + 1
    n = x.shape[0]
    c = torch.full((n,), params.initial_const, device=x.device)
    c_lo, c_hi = torch.zeros_like(c), torch.full_like(c, float("inf"))
    best = BestAdversarial(x, norm="l2")

    for _ in range(params.binary_steps):
        succeeded = torch.zeros(n, dtype=torch.bool, device=x.device)
        var = init.clone().requires_grad_(True)
        opt = torch.optim.Adam([var], lr=params.lr)
        active = torch.arange(n, device=x.device)
        prev = torch.full((n,), float("inf"), device=x.device)
        for it in range(max_iter):
            active = active[ctx.affordable(active, STEP_PASSES)]
            if active.numel() == 0:
                break
            loss_fn = _weighted_hinge(ctx, c[active], kappa)
            with torch.enable_grad():
                xa, dist = parametrize(var[active], active)
                hinge, g_x, logits = ctx.value_and_grad(loss_fn, xa, active)
                # Chain rule: the model's gradient from ctx, the parametrisation's by autograd.
                (grad,) = torch.autograd.grad(dist.sum() + (g_x * xa).sum(), var)
            opt.zero_grad()
            var.grad = grad
            opt.step()
            adversarial = ctx.criterion.is_adversarial(logits, ctx.label(active))
            best.update(active, (xa - x[active]).detach(), adversarial, logits)
            succeeded[active] |= adversarial
            if it % abort_every == 0:  # from iteration 0, as C&W's code and Foolbox do
                loss = (dist + hinge).detach()
                stalled = loss > 0.9999 * prev[active]
                prev[active] = loss
                active = active[~stalled]
                if active.numel() == 0:
                    break
        c_hi = torch.where(succeeded, torch.minimum(c_hi, c), c_hi)
        c_lo = torch.where(succeeded, c_lo, torch.maximum(c_lo, c))
        c = torch.where(torch.isinf(c_hi), c * 10, (c_lo + c_hi) / 2)

    return best.proposal(fallback=torch.zeros_like(x))


class CarliniWagnerL2(Attack[CWParams]):
    """Adam on tanh-reparametrised L2 + c * hinge on the top-k margin (the paper allows
    up to 10000 iterations per c)."""

    def propose(self, ctx: QueryContext, x: torch.Tensor) -> Proposal:
        box = _BoxMap(x, ctx.bounds)

        def parametrize(w: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            xa = box.to_pixels(w, x[rows])
            return xa, (xa - x[rows]).flatten(1).pow(2).sum(1) / _UNIT**2

        return cw_minimize(ctx, x, self.params, box.initial(), parametrize)
