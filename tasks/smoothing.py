"""Image-guided smoothing of Zhang et al. (2019): Laplacian smoothing and magnification.

Section 3 of the paper. The graph has one vertex per pixel and edges to the
4 or 8 nearest neighbours, weighted (eq. 5) by a feature kernel on the
image's colours times a spatial kernel:

* feature kernel: Laplacian ``exp(-||x_i - x_j|| / sigma)`` (the paper's choice
  on ImageNet) or Gaussian ``exp(-||x_i - x_j||^2 / (2 sigma^2))``, colours in
  [0, 1] as in the paper; ``sigma`` is not given in the paper, 0.1 here;
* spatial kernel: 1 on the chosen neighbours, 0 elsewhere (the paper says only
  "nonzero only on nearest neighbours").

With ``D = diag(W 1)`` and ``Wn = D^-1/2 W D^-1/2`` the regularised Laplacian is
``L_a = (I - a Wn) / (1 - a)`` and ``s_a(z) = L_a^-1 z`` (eq. 8), solved per
channel by conjugate gradient, batched over images and channels, on the
tensors' device. The normalised smoothing (eq. 9) divides row-wise by
``s_a(1)``: ``s^_a(z) = s_a(z) / s_a(1)``.

Differentiation: ``s^_a`` is linear with a symmetric ``L_a``, so the backward
pass is one more CG solve on the incoming gradient (the implicit-function
adjoint), not automatic differentiation through the CG iterations as in the
paper (sec. 4.2 says both have the same cost; the adjoint needs no stored
iterates). With a fixed iteration budget both are approximations of
``L_a^-1``; the gradient check uses a converged solve.

Appendix A's adversarial magnification (guided bilateral local normalisation)
is :func:`magnify`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from tasks.attacks.params import SmoothingCfg

_HALF_4 = ((0, 1), (1, 0))
_HALF_8 = ((0, 1), (1, 0), (1, 1), (1, -1))


def shift(t: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``out[..., i, j] = t[..., i + dy, j + dx]``, zero outside the image."""
    h, w = t.shape[-2:]
    padded = F.pad(t, (max(-dx, 0), max(dx, 0), max(-dy, 0), max(dy, 0)))
    y0, x0 = max(dy, 0), max(dx, 0)
    return padded[..., y0 : y0 + h, x0 : x0 + w]


def conjugate_gradient(
    matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, iters: int, tol: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve ``A x = b`` for SPD ``A``; one system per leading index, dots over (H, W).

    Returns the solution and each system's relative residual ``||b - A x|| / ||b||``.
    """
    dims = (-2, -1)
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rs = (r * r).sum(dims, keepdim=True)
    tiny = torch.finfo(b.dtype).tiny  # a zero right-hand side must give 0, not 0/0
    b_norm = rs.sqrt().clamp_min(tiny)
    for _ in range(iters):
        ap = matvec(p)
        step = rs / (p * ap).sum(dims, keepdim=True).clamp_min(tiny)
        x = x + step * p
        r = r - step * ap
        rs_new = (r * r).sum(dims, keepdim=True)
        if tol > 0 and bool((rs_new.sqrt() / b_norm).max() <= tol):
            rs = rs_new
            break
        p = r + torch.where(rs > 0, rs_new / rs.clamp_min(tiny), torch.zeros_like(rs)) * p
        rs = rs_new
    return x, (rs.sqrt() / b_norm).squeeze(-1).squeeze(-1)


class LaplacianSmoother:
    """``s^_alpha`` guided by a batch of images ``x_o`` (B, C, H, W) in 0..255."""

    def __init__(self, image: torch.Tensor, cfg: SmoothingCfg | None = None) -> None:
        self.cfg = cfg or SmoothingCfg()
        guide = image.detach() / 255.0
        self.offsets = _HALF_8 if self.cfg.neighbours == 8 else _HALF_4
        self.weights = [self._edge(guide, dy, dx) for dy, dx in self.offsets]
        degree = self._adjacency(torch.ones_like(guide[:, :1]), normalised=False)
        self.inv_sqrt_degree = degree.clamp_min(1e-12).rsqrt()
        ones = torch.ones_like(guide[:, :1])
        self.row_sum, _ = self.solve(ones)  # s_alpha(1) for eq. (9)

    def subset(self, idx: torch.Tensor) -> LaplacianSmoother:
        """The same operator restricted to images ``idx`` (no recomputation)."""
        out = object.__new__(LaplacianSmoother)
        out.cfg, out.offsets = self.cfg, self.offsets
        out.weights = [w[idx] for w in self.weights]
        out.inv_sqrt_degree = self.inv_sqrt_degree[idx]
        out.row_sum = self.row_sum[idx]
        return out

    def _edge(self, guide: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
        """Weight of the edge from each pixel to its (dy, dx) neighbour (0 off the image)."""
        diff = guide - shift(guide, dy, dx)
        dist2 = (diff * diff).sum(1, keepdim=True)
        if self.cfg.kernel == "laplacian":
            k = torch.exp(-dist2.sqrt() / self.cfg.sigma)
        else:
            k = torch.exp(-dist2 / (2 * self.cfg.sigma**2))
        inside = shift(torch.ones_like(k), dy, dx)
        return k * inside

    def _adjacency(self, v: torch.Tensor, normalised: bool = True) -> torch.Tensor:
        """``W v`` or ``D^-1/2 W D^-1/2 v`` (symmetric: each edge counted both ways)."""
        if normalised:
            v = v * self.inv_sqrt_degree
        out = torch.zeros_like(v)
        for (dy, dx), w in zip(self.offsets, self.weights, strict=True):
            out = out + w * shift(v, dy, dx) + shift(w * v, -dy, -dx)
        return out * self.inv_sqrt_degree if normalised else out

    def laplacian(self, v: torch.Tensor) -> torch.Tensor:
        """``L_alpha v = (v - alpha Wn v) / (1 - alpha)``."""
        a = self.cfg.alpha
        return (v - a * self._adjacency(v)) / (1 - a)

    def solve(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``s_alpha(z) = L_alpha^-1 z`` by CG; also the relative residuals."""
        return conjugate_gradient(self.laplacian, z, self.cfg.cg_iters, self.cfg.tol)

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """``s^_alpha(z)`` (eq. 9), differentiable in ``z``."""
        out: torch.Tensor = _NormalisedSmoothing.apply(z, self)
        return out


class _NormalisedSmoothing(torch.autograd.Function):
    """``z -> L^-1 z / s(1)``; backward ``g -> L^-1 (g / s(1))`` since ``L`` is symmetric."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, smoother: LaplacianSmoother) -> torch.Tensor:
        ctx.smoother = smoother
        r, _ = smoother.solve(z.detach())
        return r / smoother.row_sum

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        smoother: LaplacianSmoother = ctx.smoother
        g, _ = smoother.solve(grad / smoother.row_sum)
        return g, None


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic TV per image: sum of |horizontal| + |vertical| differences."""
    dh = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).sum(1)
    dv = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).sum(1)
    return dh + dv


def guided_bilateral(
    values: torch.Tensor, guide: torch.Tensor, sigma_d: float, sigma_r: float
) -> torch.Tensor:
    """Bilateral filter of ``values`` with the range kernel taken from ``guide``.

    Range similarity is one scalar per pixel pair, the Euclidean distance over
    all channels of ``guide`` (Zhang et al., appendix A); window radius 2 sigma_d.
    """
    radius = max(1, round(2 * sigma_d))
    num = torch.zeros_like(values)
    den = torch.zeros_like(values[:, :1])
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            spatial = torch.exp(torch.tensor(-(dy * dy + dx * dx) / (2 * sigma_d**2)))
            g_shift = shift(guide, dy, dx)
            inside = shift(torch.ones_like(guide[:, :1]), dy, dx)
            dist2 = ((guide - g_shift) ** 2).sum(1, keepdim=True)
            k = spatial * torch.exp(-dist2 / (2 * sigma_r**2)) * inside
            num = num + k * shift(values, dy, dx)
            den = den + k
    return num / den.clamp_min(1e-12)


def magnify(
    x: torch.Tensor, beta: float = 0.8, sigma_d: float = 5.0, sigma_r: float = 5.0
) -> torch.Tensor:
    """Adversarial magnification ``mag(x)`` of Zhang et al. appendix A (eq. 22), per channel.

    ``mu = b(x)`` is the bilateral filter, ``sigma_x = sqrt(b_x((x - mu)^2))``
    the guided local deviation (the paper prints ``^(-1/2)``; a deviation is
    meant), ``sigma_Omega`` the image's global deviation per channel. ``x`` is
    in 0..255 and so are ``sigma_r`` (5, the paper's value) and the output's
    denominator; the output is unitless (zero-mean locally), ready to be shown
    as e.g. ``clamp(128 + 40 * mag, 0, 255)``.
    """
    mu = guided_bilateral(x, x, sigma_d, sigma_r)
    local = guided_bilateral((x - mu) ** 2, x, sigma_d, sigma_r).sqrt()
    global_sd = x.flatten(2).std(dim=2).view(x.shape[0], x.shape[1], 1, 1)
    return (x - mu) / (beta * local + (1 - beta) * global_sd).clamp_min(1e-6)
