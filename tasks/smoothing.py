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

Solver: CG on the stencil of :class:`_Stencil` (degree normalisation and alpha
folded into the edge weights once per image). By default (``tol > 0``) each image
of a solve stops at a relative residual (so its solution does not depend on the
images beside it in the batch) and starts from its previous solution (an attack's
consecutive steps solve nearly the same system); ``tol = 0``
is the paper's fixed count of ``cg_iters`` iterations from zero. ``adjoint_tol``
may stop the backward solve earlier (it only sets the direction of sC&W's Adam
step): 1e-2 saves a fifth of sC&W's iterations but moves its L2 by about 1%,
beyond the line search's precision, so by default the backward uses ``tol``.

Differentiation: ``s^_a`` is linear with a symmetric ``L_a``, so the backward
pass is one more CG solve on the incoming gradient (the implicit-function
adjoint), not automatic differentiation through the CG iterations as in the
paper (sec. 4.2 says both have the same cost; the adjoint needs no stored
iterates). Both are approximations of ``L_a^-1`` to the solver's accuracy;
the gradient check uses a converged solve.

Appendix A's adversarial magnification (guided bilateral local normalisation)
is :func:`magnify`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

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


class CGResult(NamedTuple):
    """A CG solve: the solution, each system's relative residual, the iterations run."""

    x: torch.Tensor
    residual: torch.Tensor
    iterations: int


def _dots(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum((-2, -1), keepdim=True)


class Operator(Protocol):
    """A batched SPD operator that can be restricted to some of its images."""

    def __call__(self, v: torch.Tensor) -> torch.Tensor: ...

    def subset(self, idx: torch.Tensor) -> Operator: ...


def conjugate_gradient(
    op: Operator,
    b: torch.Tensor,
    iters: int,
    tol: float = 0.0,
    x0: torch.Tensor | None = None,
) -> CGResult:
    """Solve ``A x = b`` for SPD ``A``; one system per leading index, dots over (H, W).

    ``tol = 0`` runs exactly ``iters`` iterations; with ``tol > 0`` an image (first
    index) leaves the iteration as soon as the relative residuals ``||b - A x|| / ||b||``
    of all its systems are at most ``tol`` (``iters`` is then a cap): it costs its own
    iterations, not the slowest image's, and its solution does not depend on which
    images share the batch. ``x0`` starts from a guess; a system whose guess is no
    better than zero (``||b - A x0|| >= ||b||``, e.g. ``b = 0``) starts from zero.
    """
    tiny = torch.finfo(b.dtype).tiny  # a zero right-hand side must give 0, not 0/0
    b_norm = _dots(b, b).sqrt().clamp_min(tiny)
    if x0 is None:
        x, r = torch.zeros_like(b), b.clone()
    else:
        r = b - op(x0)
        worse = _dots(r, r).sqrt() >= b_norm
        x = torch.where(worse, torch.zeros_like(x0), x0)
        r = torch.where(worse, b, r)
    rs = _dots(r, r)
    live = torch.arange(b.shape[0], device=b.device)  # images still iterating
    xl, rl, pl, rsl, bl = x, r, r.clone(), rs, b_norm  # their state
    done = 0
    while done < iters and live.numel() > 0:
        if tol > 0:
            ok = (rsl.sqrt() / bl).flatten(1).amax(1) <= tol
            if bool(ok.any()):
                x[live[ok]], rs[live[ok]] = xl[ok], rsl[ok]
                keep = (~ok).nonzero().squeeze(1)
                live, op = live[keep], op.subset(keep)
                xl, rl, pl, rsl, bl = xl[keep], rl[keep], pl[keep], rsl[keep], bl[keep]
                continue
        ap = op(pl)
        step = rsl / _dots(pl, ap).clamp_min(tiny)
        xl.addcmul_(step, pl)
        rl.addcmul_(step, ap, value=-1)
        rs_new = _dots(rl, rl)
        pl.mul_(torch.where(rsl > 0, rs_new / rsl.clamp_min(tiny), torch.zeros_like(rsl)))
        pl.add_(rl)
        rsl = rs_new
        done += 1
    if xl is not x and live.numel() > 0:
        x[live], rs[live] = xl, rsl
    elif xl is x:
        rs = rsl
    return CGResult(x, (rs.sqrt() / b_norm).squeeze(-1).squeeze(-1), done)


class _Stencil:
    """``L_alpha`` as one 3x3 stencil per image, its weights combined once.

    ``L_alpha v = v / (1 - a) - sum_k c_k * v(p + k)`` over the neighbour offsets
    ``k``, with ``c_k = a / (1 - a) * d(p)^-1/2 w(p, p + k) d(p + k)^-1/2``: the
    degree normalisation and alpha folded into the edge weights when the graph is
    built, so an iteration is one pad and one multiply-add per neighbour.
    """

    def __init__(self, offsets: tuple[tuple[int, int], ...], coeff: torch.Tensor, diag: float):
        self.offsets, self.coeff, self.diag = offsets, coeff, diag

    def subset(self, idx: torch.Tensor) -> _Stencil:
        return _Stencil(self.offsets, self.coeff[idx], self.diag)

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        h, w = v.shape[-2:]
        vp = F.pad(v, (1, 1, 1, 1))
        out = v * self.diag
        for k, (dy, dx) in enumerate(self.offsets):
            near = vp[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
            out.addcmul_(self.coeff[:, k : k + 1], near, value=-1)
        return out


@dataclass
class SolveStats:
    """What the solves of one smoother (and its subsets) cost, for benchmarks."""

    solves: int = 0
    systems: int = 0  # images x channels solved
    iterations: int = 0  # CG iterations, summed over solves (each covers all its systems)
    seconds: float = 0.0


class _WarmStarts:
    """The last solution of each image row, per kind of solve (forward, adjoint).

    Consecutive attack steps solve nearly the same systems, so each CG solve starts
    from the previous step's solution for the same image; rows are positions in the
    batch the smoother was built for, so a subset reads and writes its own rows.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.last: dict[str, torch.Tensor] = {}

    def get(self, key: str, rows: torch.Tensor, like: torch.Tensor) -> torch.Tensor | None:
        prev = self.last.get(key)
        if prev is None or prev.shape[1:] != like.shape[1:]:
            return None
        return prev[rows]

    def put(self, key: str, rows: torch.Tensor, x: torch.Tensor) -> None:
        prev = self.last.get(key)
        if prev is None or prev.shape[1:] != x.shape[1:]:
            prev = self.last[key] = torch.zeros(
                (self.n, *x.shape[1:]), dtype=x.dtype, device=x.device
            )
        prev[rows] = x


class LaplacianSmoother:
    """``s^_alpha`` guided by a batch of images ``x_o`` (B, C, H, W) in 0..255.

    With ``cfg.tol > 0`` (the default) every solve stops at that relative residual
    and starts from the previous solution of the same image and kind
    (:class:`_WarmStarts`); ``cfg.tol = 0`` runs ``cfg.cg_iters`` iterations from
    zero, the paper's fixed-count solve.
    """

    def __init__(self, image: torch.Tensor, cfg: SmoothingCfg | None = None) -> None:
        self.cfg = cfg or SmoothingCfg()
        guide = image.detach() / 255.0
        half = _HALF_8 if self.cfg.neighbours == 8 else _HALF_4
        raw = [self._edge(guide, dy, dx) for dy, dx in half]
        # Every neighbour both ways: the weight at p towards p - k is w(p - k, p).
        offsets = half + tuple((-dy, -dx) for dy, dx in half)
        full = raw + [shift(w, -dy, -dx) for w, (dy, dx) in zip(raw, half, strict=True)]
        inv_sqrt_degree = torch.stack(full).sum(0).clamp_min(1e-12).rsqrt()
        a = self.cfg.alpha
        coeff = [
            a / (1 - a) * inv_sqrt_degree * w * shift(inv_sqrt_degree, dy, dx)
            for w, (dy, dx) in zip(full, offsets, strict=True)
        ]
        self.operator = _Stencil(offsets, torch.cat(coeff, 1), 1 / (1 - a))
        self.rows = torch.arange(image.shape[0], device=image.device)
        self.warm = _WarmStarts(image.shape[0])
        self.stats = SolveStats()
        self._last_subset: tuple[torch.Tensor, LaplacianSmoother] | None = None
        self.row_sum, _ = self.solve(torch.ones_like(guide[:, :1]))  # s_alpha(1) for eq. (9)

    def subset(self, idx: torch.Tensor) -> LaplacianSmoother:
        """The same operator restricted to images ``idx``, sharing warm starts and stats.

        The last subset is kept: an attack asks for the same rows step after step.
        """
        last = self._last_subset
        if last is not None and last[0].shape == idx.shape and bool((last[0] == idx).all()):
            return last[1]
        out = object.__new__(LaplacianSmoother)
        out.cfg, out.operator = self.cfg, self.operator.subset(idx)
        out.rows, out.warm, out.stats = self.rows[idx], self.warm, self.stats
        out.row_sum, out._last_subset = self.row_sum[idx], None
        self._last_subset = (idx.clone(), out)
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

    def laplacian(self, v: torch.Tensor) -> torch.Tensor:
        """``L_alpha v = (v - alpha Wn v) / (1 - alpha)``."""
        return self.operator(v)

    def solve(self, z: torch.Tensor, kind: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``s_alpha(z) = L_alpha^-1 z`` by CG; also the relative residuals.

        ``kind`` names a sequence of related solves ("forward", "adjoint") whose
        previous solution starts this one (only when ``cfg.tol > 0``); the adjoint
        stops at ``cfg.adjoint_tol`` where set.
        """
        tol = self.cfg.tol
        if kind == "adjoint" and tol > 0 and self.cfg.adjoint_tol is not None:
            tol = self.cfg.adjoint_tol
        key = kind if tol > 0 else None
        x0 = None if key is None else self.warm.get(key, self.rows, z)
        start = time.perf_counter()
        result = conjugate_gradient(self.operator, z, self.cfg.cg_iters, tol, x0)
        self.stats.seconds += time.perf_counter() - start
        self.stats.solves += 1
        self.stats.systems += z.shape[0] * z.shape[1]
        self.stats.iterations += result.iterations
        if key is not None:
            self.warm.put(key, self.rows, result.x)
        return result.x, result.residual

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """``s^_alpha(z)`` (eq. 9), differentiable in ``z``."""
        out: torch.Tensor = _NormalisedSmoothing.apply(z, self)
        return out


class _NormalisedSmoothing(torch.autograd.Function):
    """``z -> L^-1 z / s(1)``; backward ``g -> L^-1 (g / s(1))`` since ``L`` is symmetric."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, smoother: LaplacianSmoother) -> torch.Tensor:
        ctx.smoother = smoother
        r, _ = smoother.solve(z.detach(), "forward")
        return r / smoother.row_sum

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        smoother: LaplacianSmoother = ctx.smoother
        g, _ = smoother.solve(grad / smoother.row_sum, "adjoint")
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
