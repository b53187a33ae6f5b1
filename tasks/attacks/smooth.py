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
from tasks.attacks.cw import _UNIT, CW_PARAMS, cw_minimize
from tasks.attacks.pgd import PGD2
from tasks.attacks.registry import ATTACKS
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
        return CW_PARAMS + _SMOOTHING_PARAMS

    def propose(self, ctx: QueryContext, x: torch.Tensor) -> Proposal:
        smoother = LaplacianSmoother(x, smoothing_cfg(self.params))

        def parametrize(z: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            r = _UNIT * smoother.subset(rows)(z)
            return ctx.clip(x[rows] + r), r.flatten(1).pow(2).sum(1) / _UNIT**2

        return cw_minimize(ctx, x, self.params, torch.zeros_like(x), parametrize)
