"""Per-layer robustness rules of Peck (2017), chapter 5, each made certifiable.

Algorithm 5.1 walks a network backwards: given ``kappa``, a lower bound on the
L2 (Frobenius) norm of any perturbation of a layer's *output* that changes the
classification, a rule returns a lower bound on the norm of any perturbation
of the layer's *input*. For every layer type the thesis gives a formula; here
each rule returns two numbers per image:

``thesis``
    The thesis's formula as written (Theorem 5.1 for convolutions, 5.3 for
    pooling, 5.6 for batch norm, 5.9 with Lemma 5.11 for LRN).
``certified``
    ``kappa / Lip``, with ``Lip`` a provable Lipschitz constant of the layer in
    L2. Any input perturbation ``R`` whose output change has norm ``>= kappa``
    satisfies ``||R|| >= kappa / Lip``.

The chain uses ``min(thesis, certified)``, which is always a true lower bound.
It matters because some of the thesis's steps do not hold in general:
Lemma A.4 (``||W * R|| <= ||W||_F ||R||``) drops the cross terms and the
overlap of receptive fields (each input pixel is seen by up to
``ceil(q/s)^2`` windows), Lemma 5.4 holds only for the coordinate the
argument exhibits (so Theorem 5.6's ``max_j`` should be a ``min_j``), and the
pooling step (5.4) ignores the channel count. Where the thesis's number is
the smaller one (pooling's ``kappa / t`` usually is), it is used as written.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class LayerBound:
    """Per-image bounds on the input perturbation of one layer (float64, length B)."""

    thesis: torch.Tensor
    certified: torch.Tensor

    @property
    def used(self) -> torch.Tensor:
        return torch.minimum(self.thesis, self.certified)


Rule = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], LayerBound]

#: |g'| bounds (A_i) and |g''| bounds (B_i) of activations: thesis Table 4.1.
#: ReLU's second-order bound is set to 1, the thesis's choice (sec. 4.3.1, option 3).
ACTIVATIONS: dict[type[nn.Module], tuple[float, float]] = {
    nn.ReLU: (1.0, 1.0),
    nn.ReLU6: (1.0, 1.0),
    nn.Tanh: (1.0, 4.0 / (3.0 * math.sqrt(3.0))),
    nn.Sigmoid: (0.25, 1.0 / (6.0 * math.sqrt(3.0))),
    nn.Softplus: (1.0, 0.25),
}
IDENTITIES: tuple[type[nn.Module], ...] = (nn.Dropout, nn.Flatten, nn.Identity)


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[-1]))


def axis_windows(n_in: int, n_out: int, k: int, s: int, p: int, d: int = 1) -> list[list[int]]:
    """Input indices read by each output index of a strided window along one axis."""
    return [
        [i * s - p + j * d for j in range(k) if 0 <= i * s - p + j * d < n_in] for i in range(n_out)
    ]


def adaptive_windows(n_in: int, n_out: int) -> list[list[int]]:
    """Windows of torch's adaptive pooling along one axis."""
    return [list(range((i * n_in) // n_out, -((-(i + 1) * n_in) // n_out))) for i in range(n_out)]


def max_overlap(windows: list[list[int]]) -> int:
    """Largest number of windows any input index belongs to."""
    counts = Counter(i for w in windows for i in w)
    return max(counts.values(), default=1)


def _windows2d(module: nn.Module, x_in: torch.Tensor, x_out: torch.Tensor) -> list[list[list[int]]]:
    """Per-axis windows (height, width) of a conv or pooling module."""
    h_in, w_in = x_in.shape[-2:]
    h_out, w_out = x_out.shape[-2:]
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return [adaptive_windows(h_in, h_out), adaptive_windows(w_in, w_out)]
    k = _pair(module.kernel_size)  # type: ignore[arg-type]
    s = _pair(module.stride or module.kernel_size)  # type: ignore[arg-type]
    p = _pair(getattr(module, "padding", 0))
    d = _pair(getattr(module, "dilation", 1))
    return [
        axis_windows(h_in, h_out, k[0], s[0], p[0], d[0]),
        axis_windows(w_in, w_out, k[1], s[1], p[1], d[1]),
    ]


def _full(kappa: torch.Tensor, value: float | torch.Tensor) -> torch.Tensor:
    return (kappa / value).to(torch.float64)


def _side(x_out: torch.Tensor) -> float:
    """The thesis's ``t``: output side length (geometric mean for non-square maps)."""
    return math.sqrt(x_out.shape[-2] * x_out.shape[-1])


def conv(
    module: nn.Module, x_in: torch.Tensor, x_out: torch.Tensor, kappa: torch.Tensor
) -> LayerBound:
    """Theorem 5.1: ``kappa / ||W||_F``; certified with the receptive-field overlap."""
    assert isinstance(module, nn.Conv2d)
    if isinstance(module.padding, str) or module.padding_mode != "zeros":
        raise UnsupportedLayerError(f"Conv2d with padding={module.padding!r}/{module.padding_mode}")
    w_norm = float(module.weight.detach().double().norm())
    hw = _windows2d(module, x_in, x_out)
    lip = w_norm * math.sqrt(max_overlap(hw[0]) * max_overlap(hw[1]))
    return LayerBound(_full(kappa, w_norm), _full(kappa, lip))


def activation(
    module: nn.Module, x_in: torch.Tensor, x_out: torch.Tensor, kappa: torch.Tensor
) -> LayerBound:
    """Lemma A.2: ReLU is 1-Lipschitz; others by their first-derivative bound (Table 4.1)."""
    a = ACTIVATIONS[type(module)][0]
    return LayerBound(_full(kappa, a), _full(kappa, a))


def identity(
    module: nn.Module, x_in: torch.Tensor, x_out: torch.Tensor, kappa: torch.Tensor
) -> LayerBound:
    """Dropout (eval), flattening (sec. 5.2.5) and identities keep the norm."""
    return LayerBound(kappa.double(), kappa.double())


def pooling(
    module: nn.Module, x_in: torch.Tensor, x_out: torch.Tensor, kappa: torch.Tensor
) -> LayerBound:
    """Theorem 5.3: ``kappa / t`` (max, average), ``kappa / (t q^(2/p))`` (Lp).

    Certified: a window's max moves by at most ``max|r_w| <= ||r_w||``, its
    mean by at most ``||r_w|| sqrt(|w|) / divisor``, its Lp norm by at most
    ``||r_w||_p <= max(1, |w|^(1/p - 1/2)) ||r_w||``; summing over windows
    counts each input at most ``overlap`` times.
    """
    hw = _windows2d(module, x_in, x_out)
    overlap = max_overlap(hw[0]) * max_overlap(hw[1])
    t = _side(x_out)
    if isinstance(module, (nn.MaxPool2d, nn.AdaptiveMaxPool2d)):
        return LayerBound(_full(kappa, t), _full(kappa, math.sqrt(overlap)))
    if isinstance(module, nn.LPPool2d):
        p = float(module.norm_type)
        q = math.sqrt(len(hw[0][0]) * len(hw[1][0]))
        biggest = max(len(a) for a in hw[0]) * max(len(b) for b in hw[1])
        lip = math.sqrt(overlap) * max(1.0, biggest ** (1.0 / p - 0.5))
        return LayerBound(_full(kappa, t * q ** (2.0 / p)), _full(kappa, lip))
    # Average pooling: divisor is the window size, or the full kernel with count_include_pad.
    include_pad = bool(getattr(module, "count_include_pad", False))
    if getattr(module, "divisor_override", None):
        raise UnsupportedLayerError("AvgPool2d with divisor_override")
    k = _pair(getattr(module, "kernel_size", 1))
    worst = 0.0
    for a in hw[0]:
        for b in hw[1]:
            size = len(a) * len(b)
            divisor = k[0] * k[1] if include_pad else size
            worst = max(worst, size / divisor**2)
    return LayerBound(_full(kappa, t), _full(kappa, math.sqrt(overlap * worst)))


def batchnorm(
    module: nn.Module, x_in: torch.Tensor, x_out: torch.Tensor, kappa: torch.Tensor
) -> LayerBound:
    """Theorem 5.6 (``max_j delta_j``); certified by BN's slope ``max |gamma| / sqrt(var + eps)``."""
    assert isinstance(module, nn.BatchNorm2d | nn.BatchNorm1d)
    if module.running_var is None or module.running_mean is None:
        raise UnsupportedLayerError("BatchNorm without running statistics")
    shape = (1, -1) + (1,) * (x_in.dim() - 2)
    var = (module.running_var.double() + module.eps).view(shape)
    mean = module.running_mean.double().view(shape)
    ones = torch.ones_like(var)
    gamma = module.weight.double().view(shape) if module.weight is not None else ones
    beta = module.bias.double().view(shape) if module.bias is not None else 0 * ones
    x = x_in.double()
    n = x[0].numel()
    k = kappa.double().view(-1, *[1] * (x.dim() - 1))
    psi = (2 * k * x_out.double().flatten(1).norm(dim=1).view_as(k) + k**2) / n
    phi = gamma / var
    chi = 2 * gamma * (x - mean) + 2 * beta * var.sqrt()
    root = (phi**2 * chi**2 + 4 * phi * gamma * psi).sqrt()
    denom = 2 * phi * gamma
    rho1 = -(root + phi * chi) / denom
    rho2 = (root - phi * chi) / denom
    delta = torch.minimum(rho1.abs(), rho2.abs()).nan_to_num(nan=0.0)
    thesis = delta.flatten(1).amax(dim=1)
    slope = float((gamma.abs() / var.sqrt()).max())
    return LayerBound(thesis, _full(kappa, slope))


def lrn(
    module: nn.Module, x_in: torch.Tensor, x_out: torch.Tensor, kappa: torch.Tensor
) -> LayerBound:
    """Theorem 5.9 with Lemma 5.11's ``M_a``; certified by a global Jacobian bound.

    torch's LRN is ``b_i = a_i (k + alpha/n sum_window a_l^2)^(-beta)``, so the
    thesis's ``alpha`` is ``alpha / n`` here. Every Jacobian entry is at most
    ``k^-beta`` on the diagonal plus ``2 beta k^-beta`` (off and on), with at most
    ``n`` nonzeros per row and column, so ``Lip <= k^-beta (1 + 2 beta n)``.
    """
    assert isinstance(module, nn.LocalResponseNorm)
    n, k, beta = module.size, float(module.k), float(module.beta)
    alpha = float(module.alpha) / n
    if not (alpha > 0 and 0 < beta < 1 and k > 0):
        raise UnsupportedLayerError(
            "LocalResponseNorm outside Assumption 5.10 (alpha>0, 0<beta<1, k>0)"
        )
    a = x_in.double()
    out = x_out.double()
    d_term = _window_sum(a, n, alpha, k)  # k + alpha * sum over the channel window
    grad_diag = d_term ** (-beta) - 2 * alpha * beta * a**2 * d_term ** (-beta - 1)
    others = ((d_term - k) / alpha - a**2).clamp_min(0)
    grad_off = 2 * alpha * beta * a.abs() * d_term ** (-beta - 1) * others.sqrt()
    g = (grad_diag**2 + grad_off**2).sqrt().flatten(1)
    count = a[0].numel()
    kk = kappa.double().view(-1, 1)
    delta = out.abs().flatten(1) - (out.flatten(1).norm(dim=1, keepdim=True) + kk) / math.sqrt(
        count
    )
    xmax = a.abs().flatten(1).amax(dim=1, keepdim=True)
    m = (
        4
        * xmax
        * alpha
        * beta
        * (xmax**2 * alpha * (beta + 1) * k ** (-beta - 2) + k ** (-beta - 1))
    )
    m = m + 2 * xmax * alpha * beta * k ** (-beta - 1)
    lam = ((g**2 - 2 * m * delta).clamp_min(0).sqrt() - g) / m.clamp_min(1e-300)
    lam = torch.where(delta < 0, lam, torch.zeros_like(lam))
    thesis = lam.amax(dim=1)
    lip = k**-beta * (1 + 2 * beta * n)
    return LayerBound(thesis, _full(kappa, lip))


def _window_sum(a: torch.Tensor, n: int, alpha: float, k: float) -> torch.Tensor:
    """``k + alpha * sum_window a^2`` with torch's channel window (as ``F.local_response_norm``)."""
    sq = torch.nn.functional.pad(a.pow(2).unsqueeze(1), (0, 0, 0, 0, n // 2, (n - 1) // 2))
    summed = torch.nn.functional.avg_pool3d(sq, (n, 1, 1), stride=1).squeeze(1) * n
    return k + alpha * summed


class UnsupportedLayerError(TypeError):
    """A layer Peck's bounds do not cover; the message names it."""


RULES: dict[type[nn.Module], Rule] = {
    nn.Conv2d: conv,
    nn.MaxPool2d: pooling,
    nn.AvgPool2d: pooling,
    nn.AdaptiveAvgPool2d: pooling,
    nn.AdaptiveMaxPool2d: pooling,
    nn.LPPool2d: pooling,
    nn.BatchNorm2d: batchnorm,
    nn.LocalResponseNorm: lrn,
    **{t: activation for t in ACTIVATIONS},
    **{t: identity for t in IDENTITIES},
}
