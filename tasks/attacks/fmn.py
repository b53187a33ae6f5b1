"""Fast Minimum-Norm attack (Pintor et al., NeurIPS 2021, Alg. 1), top-k version, L1/L2/Linf.

FMN keeps a ball of radius ``epsilon`` around the clean image. Each step takes
a gradient step of length ``alpha`` (L2-normalised gradient of the criterion's
margin, descended) and projects it onto the Lp ball, then into the pixel box.
The radius adapts: while the point is adversarial it shrinks by ``(1 - gamma)``
(never above the best norm found); before the first success it jumps to the
first-order distance to the boundary, ``||delta|| + |margin| / ||grad||_dual``;
after it, it grows by ``(1 + gamma)``. ``alpha`` and ``gamma`` are
cosine-annealed as in the authors' code. The smallest adversarial iterate is
kept (:mod:`tasks.attacks.tracking`). Sizes are in units of 255 (images in
[0, 1] in the paper), so the paper's ``alpha`` keeps its meaning.
"""

from __future__ import annotations

import torch

from tasks.attacks.base import Attack, Proposal
from tasks.attacks.iterate import budgeted_steps, cosine, per_image
from tasks.attacks.params import FMNParams
from tasks.attacks.tracking import BestAdversarial
from tasks.context import QueryContext

_UNIT = 255.0
#: The order of each norm and of its dual (the distance to a linear boundary).
_ORDER = {"l1pp": (1.0, float("inf")), "l2": (2.0, 2.0), "linf": (float("inf"), 1.0)}


def lp(t: torch.Tensor, p: float) -> torch.Tensor:
    """Per-image ``||t||_p`` (plain L1 for p = 1, not per pixel)."""
    return t.flatten(1).norm(p=p, dim=1)


def project_l1(v: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Euclidean projection of each row of ``v`` onto the L1 ball of radius ``eps``
    (Duchi et al. 2008: soft-threshold at the level that leaves L1 norm ``eps``)."""
    flat = v.flatten(1)
    outside = flat.abs().sum(1) > eps
    if not outside.any():
        return v
    a = flat[outside].abs()
    e = eps[outside]
    u = a.sort(dim=1, descending=True).values
    cssv = u.cumsum(1) - e[:, None]
    j = torch.arange(1, u.shape[1] + 1, device=v.device, dtype=u.dtype)
    rho = (u * j > cssv).sum(1).clamp_min(1)  # the support: u_j > (cumsum_j - eps) / j
    theta = cssv.gather(1, (rho - 1)[:, None]).squeeze(1) / rho
    out = flat.clone()
    out[outside] = flat[outside].sign() * (a - theta[:, None]).clamp_min(0)
    return out.view_as(v)


def project(v: torch.Tensor, eps: torch.Tensor, norm: str) -> torch.Tensor:
    """``v`` projected onto the ``norm`` ball of radius ``eps`` (per image)."""
    if norm == "l1pp":
        return project_l1(v, eps)
    if norm == "linf":
        e = per_image(eps, v)
        return torch.maximum(torch.minimum(v, e), -e)
    return v * per_image((eps / lp(v, 2.0).clamp_min(1e-12)).clamp(max=1.0), v)


def largest_norm(x: torch.Tensor, ctx: QueryContext, p: float) -> torch.Tensor:
    """The largest perturbation the box allows (inf without one): the radius never needs more."""
    if ctx.bounds is None:
        return torch.full((x.shape[0],), float("inf"), device=x.device)
    lo, hi = ctx.bounds
    return lp(torch.maximum(x - lo, hi - x), p)


class FMNAttack(Attack[FMNParams]):
    """Gradient steps projected on an adaptive Lp ball (:class:`FMNParams`)."""

    def propose(self, ctx: QueryContext, x: torch.Tensor) -> Proposal:
        prm = self.params
        norm, steps = prm.norm, prm.steps
        p, dual = _ORDER[norm]
        n = x.shape[0]
        per_pixel = float(x[0].numel()) if norm == "l1pp" else 1.0  # tracker's l1pp -> L1
        delta = torch.zeros_like(x)
        eps = torch.full((n,), float("inf"), device=x.device)
        worst = largest_norm(x, ctx, p)
        found = torch.zeros(n, dtype=torch.bool, device=x.device)
        best = BestAdversarial(x, norm=norm)
        for i, rows in budgeted_steps(ctx, n, steps):
            alpha = cosine(i, steps, prm.alpha_init, prm.alpha_final) * _UNIT
            gamma = cosine(i, steps, prm.gamma_init, prm.gamma_final)
            xr, d = x[rows], delta[rows]
            margin, grad, logits = ctx.value_and_grad(ctx.criterion.margin, xr + d, rows)
            adversarial = ctx.criterion.is_adversarial(logits, ctx.label(rows))
            best.update(rows, d, adversarial, logits)
            found[rows] |= adversarial

            d_norm = lp(d, p)
            to_boundary = margin.abs() / lp(grad, dual).clamp_min(1e-12)
            e = torch.where(
                adversarial,
                torch.minimum(eps[rows] * (1 - gamma), best.size[rows] * per_pixel),
                torch.where(found[rows], eps[rows] * (1 + gamma), d_norm + to_boundary),
            )
            e = torch.minimum(e, worst[rows])
            d = d - alpha * grad / per_image(lp(grad, 2.0).clamp_min(1e-12), x)
            delta[rows] = ctx.clip(xr + project(d, e, norm)) - xr
            eps[rows] = e
        return best.proposal(fallback=delta)


class FMNLinf(FMNAttack):
    """FMN on the linf ball, as its own catalogue entry (the evaluation stage reads an
    attack on its entry's norm axis)."""
