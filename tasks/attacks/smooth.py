"""Zhang et al. (2019)'s smooth attacks: qPGD2 (sec. 4.1) and sC&W (sec. 4.2).

Both use the normalised Laplacian smoothing ``s^_alpha`` guided by the clean
image (:mod:`tasks.smoothing`; ImageNet settings alpha = 0.997, Laplacian
feature kernel; each solve stops at a relative residual of 1e-3, warm-started,
where the paper runs 50 CG iterations from zero: ``tol = 0`` does that).

* ``qpgd2``: PGD2 whose gradient is smoothed before normalisation each step,
  ``x <- c(x - n(s^_alpha(g)))`` (eq. 12), then the shared budget doubling and
  line search of :mod:`tasks.attacks.pgd`.
* ``scw``: C&W with the latent variable ``z`` (eq. 18):
  ``min_z lambda ||s^(z)||^2 + l(f(c(x_o + s^(z))), t)``, ``z`` initialised
  at 0, the clipping ``c`` instead of C&W's tanh box, Adam, and the same
  binary search on ``c = 1/lambda``, early abort and best-adversarial
  tracking as ``cw`` (:mod:`tasks.attacks.cw`, same parameters; the search's
  defaults are smaller, see :class:`~tasks.attacks.params.SmoothCWParams`).
  ``z`` is in units of 255 like ``cw``'s distances, i.e. the paper's [0, 1]
  image scale.
"""

from __future__ import annotations

import torch

from tasks.attacks.base import Attack, Proposal
from tasks.attacks.cw import _UNIT, cw_minimize
from tasks.attacks.params import SmoothCWParams, SmoothPGDParams
from tasks.attacks.pgd import PGD2
from tasks.context import QueryContext
from tasks.smoothing import LaplacianSmoother


class QuickSmoothPGD2(PGD2[SmoothPGDParams]):
    """PGD2 with the gradient smoothed like the clean image at every step (eq. 12).

    One smoother per call of :meth:`propose` (its graph and ``s(1)`` are built once);
    each budget doubling works on a subset of it, so its solves keep their warm starts.
    """

    def propose(self, ctx: QueryContext, x: torch.Tensor) -> Proposal:
        self._smoother = LaplacianSmoother(x, self.params)
        self._position = torch.full((int(ctx.rows.max()) + 1,), -1, dtype=torch.long)
        self._position[ctx.rows] = torch.arange(x.shape[0])
        return super().propose(ctx, x)

    def perturb(self, ctx: QueryContext, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        self._images = self._smoother.subset(self._position[ctx.rows].to(x.device))
        return super().perturb(ctx, x, eps)

    def transform_gradient(
        self, ctx: QueryContext, x: torch.Tensor, g: torch.Tensor, idx: torch.Tensor
    ) -> torch.Tensor:
        return self._images.subset(idx)(g)


class SmoothCarliniWagner(Attack[SmoothCWParams]):
    """sC&W: C&W L2 on the latent ``z`` with ``r = s^_alpha(z)`` (Zhang et al. eq. 16-18);
    ``cw``'s parameters plus the smoothing's (:class:`~tasks.attacks.params.SmoothCWParams`)."""

    def propose(self, ctx: QueryContext, x: torch.Tensor) -> Proposal:
        smoother = LaplacianSmoother(x, self.params)

        def parametrize(z: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            r = _UNIT * smoother.subset(rows)(z)
            return ctx.clip(x[rows] + r), r.flatten(1).pow(2).sum(1) / _UNIT**2

        return cw_minimize(ctx, x, self.params, torch.zeros_like(x), parametrize)
