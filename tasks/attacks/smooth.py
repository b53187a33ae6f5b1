"""Zhang et al. (2019)'s smooth attacks: qPGD2 (sec. 4.1) and sC&W (sec. 4.2).

Both use the normalised Laplacian smoothing ``s^_alpha`` guided by the clean
image (:mod:`tasks.smoothing`; ImageNet settings alpha = 0.997, Laplacian
feature kernel, 50 CG iterations).

* ``qpgd2``: PGD2 whose gradient is smoothed before normalisation each step,
  ``x <- c(x - n(s^_alpha(g)))`` (eq. 12), then the shared budget doubling and
  line search of :mod:`tasks.attacks.pgd`.
* ``scw``: C&W with the latent variable ``z`` (eq. 18):
  ``min_z lambda ||s^(z)||^2 + l(f(c(x_o + s^(z))), t)``, ``z`` initialised
  at 0, the clipping ``c`` instead of C&W's tanh box, Adam, and the same
  binary search on ``c = 1/lambda``, early abort and best-adversarial
  tracking as ``cw`` (:mod:`tasks.attacks.cw`; same parameters and defaults,
  so the two are compared like for like). ``z`` is in units of 255 like
  ``cw``'s distances, i.e. the paper's [0, 1] image scale.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from tasks.attacks.base import Attack, Proposal
from tasks.attacks.cw import _UNIT, _weighted_hinge
from tasks.attacks.pgd import PGD2
from tasks.attacks.registry import ATTACKS
from tasks.attacks.tracking import BestAdversarial
from tasks.context import QueryContext
from tasks.smoothing import LaplacianSmoother, SmoothingCfg

_SMOOTHING_PARAMS = ("alpha", "cg_iters", "neighbours", "sigma")


def smoothing_cfg(params: dict[str, object]) -> SmoothingCfg:
    """The attack's smoothing settings (defaults: the paper's ImageNet ones)."""
    chosen = {k: params[k] for k in _SMOOTHING_PARAMS if k in params}
    return SmoothingCfg(**chosen)  # type: ignore[arg-type]


@ATTACKS.register("qpgd2")
class QuickSmoothPGD2(PGD2):
    """PGD2 with the gradient smoothed like the clean image at every step (eq. 12)."""

    @classmethod
    def param_names(cls) -> tuple[str, ...]:
        return PGD2.param_names() + _SMOOTHING_PARAMS

    def perturb(self, ctx: QueryContext, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        self._smoother = LaplacianSmoother(x, smoothing_cfg(self.params))
        return super().perturb(ctx, x, eps)

    def transform_gradient(
        self, ctx: QueryContext, x: torch.Tensor, g: torch.Tensor, idx: torch.Tensor
    ) -> torch.Tensor:
        return self._smoother.subset(idx)(g)


@ATTACKS.register("scw")
class SmoothCarliniWagner(Attack):
    """sC&W: C&W L2 on the latent ``z`` with ``r = s^_alpha(z)`` (Zhang et al. eq. 16-18).

    Parameters as ``cw`` (``binary_steps``, ``max_iter``, ``lr``,
    ``initial_const``, ``kappa``, ``abort_early``) plus the smoothing's
    ``alpha``, ``cg_iters``, ``neighbours``, ``sigma``.
    """

    norm: ClassVar[str] = "l2"

    @classmethod
    def param_names(cls) -> tuple[str, ...]:
        cw = ("binary_steps", "max_iter", "lr", "initial_const", "kappa", "abort_early")
        return cw + _SMOOTHING_PARAMS

    def propose(self, ctx: QueryContext, x: torch.Tensor) -> Proposal:
        p = self.params
        max_iter = int(p.get("max_iter", 1000))
        kappa = float(p.get("kappa", 0.0))
        abort_every = max(1, max_iter // 10) if p.get("abort_early", True) else max_iter + 1
        n = x.shape[0]
        smoother = LaplacianSmoother(x, smoothing_cfg(p))
        c = torch.full((n,), float(p.get("initial_const", 1e-3)), device=x.device)
        c_lo, c_hi = torch.zeros_like(c), torch.full_like(c, float("inf"))
        best = BestAdversarial(x, norm="l2")

        for _ in range(int(p.get("binary_steps", 9))):
            succeeded = torch.zeros(n, dtype=torch.bool, device=x.device)
            z = torch.zeros_like(x).requires_grad_(True)
            opt = torch.optim.Adam([z], lr=float(p.get("lr", 1e-2)))
            active = torch.arange(n, device=x.device)
            prev = torch.full((n,), float("inf"), device=x.device)
            for it in range(max_iter):
                with torch.enable_grad():
                    r = _UNIT * smoother.subset(active)(z[active])
                    xa = ctx.clip(x[active] + r)
                    hinge, g_x, logits = ctx.value_and_grad(
                        _weighted_hinge(ctx, c[active], kappa), xa, active
                    )
                    dist = r.flatten(1).pow(2).sum(1) / _UNIT**2
                    (grad_z,) = torch.autograd.grad(dist.sum() + (g_x * xa).sum(), z)
                opt.zero_grad()
                z.grad = grad_z
                opt.step()
                adversarial = ctx.criterion.is_adversarial(logits, ctx.label(active))
                best.update(active, (xa - x[active]).detach(), adversarial)
                succeeded[active] |= adversarial
                if (it + 1) % abort_every == 0:
                    loss = (dist + hinge).detach()
                    stalled = loss > 0.9999 * prev[active]
                    prev[active] = loss
                    active = active[~stalled]
                    if active.numel() == 0:
                        break
            c_hi = torch.where(succeeded, torch.minimum(c_hi, c), c_hi)
            c_lo = torch.where(succeeded, c_lo, torch.maximum(c_lo, c))
            c = torch.where(torch.isinf(c_hi), c * 10, (c_lo + c_hi) / 2)

        direction = torch.where(
            best.found.view(-1, *[1] * (x.dim() - 1)), best.delta, torch.zeros_like(x)
        )
        return Proposal(direction=direction, init_scale=torch.ones(n, device=x.device))
