"""Linear classifiers whose minimum perturbations are known in closed form."""

from __future__ import annotations

import math

import torch
from torch import nn


class Linear(nn.Module):
    """logits = W vec(x) + b on images of shape (C, H, W)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.bias = nn.Parameter(bias, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.T + self.bias


def random_linear(
    n_classes: int, shape: tuple[int, ...] = (3, 8, 8), seed: int = 0
) -> tuple[Linear, torch.Tensor]:
    """A random linear model and mid-grey-ish images it classifies (the labels are its argmax)."""
    g = torch.Generator().manual_seed(seed)
    d = int(torch.tensor(shape).prod())
    model = Linear(
        torch.randn(n_classes, d, generator=g) * 0.002, torch.randn(n_classes, generator=g)
    )
    x = 64 + 128 * torch.rand(16, *shape, generator=g)
    return model, x


def binary_linf_minimum(model: Linear, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Exact minimum Linf perturbation that flips a 2-class linear model (no box)."""
    other = 1 - labels
    w = model.weight[labels] - model.weight[other]
    margin = (x.flatten(1) * w).sum(1) + model.bias[labels] - model.bias[other]
    return margin / w.abs().sum(1)


def decoy_linear(
    k: int,
    n_far: int = 0,
    tied: float | None = None,
    shape: tuple[int, ...] = (3, 8, 8),
    seed: int = 0,
    n_images: int = 16,
) -> tuple[Linear, torch.Tensor, torch.Tensor]:
    """A linear model whose top-k minimum perturbation is a binary closed form.

    Class 0 is every image's label (its bias puts every margin >= 1);
    classes ``1..k`` are decoys sharing one weight row and bias, so they
    cross the label together and the top-k boundary is the binary one
    between row 0 and the decoy row. ``n_far`` more classes have a bias so
    low they never matter (they make DeepFool's candidate list realistic).
    ``tied``: the decoy row is ``tied * w_0``; with ``tied < 1`` the true-score
    gradient is the optimal L2 direction (Luo's hinge, used by ``bfgs``).
    Images are mid-grey-ish, so the minimum is far from the [0, 255] box.
    """
    g = torch.Generator().manual_seed(seed)
    d = int(torch.tensor(shape).prod())
    w0 = torch.randn(d, generator=g) * 0.002
    wd = torch.randn(d, generator=g) * 0.002 if tied is None else tied * w0
    far = torch.randn(n_far, d, generator=g) * 0.002
    x = 64 + 128 * torch.rand(n_images, *shape, generator=g)
    raw = x.flatten(1) @ (w0 - wd)
    b0 = 1.0 - raw.min() + 2 * torch.rand((), generator=g)
    weight = torch.cat([w0[None], wd.expand(k, d), far])
    bias = torch.cat([b0[None], torch.zeros(k), torch.full((n_far,), -1e3)])
    return Linear(weight, bias), x, torch.zeros(n_images, dtype=torch.long)


def decoy_minimum(model: Linear, x: torch.Tensor, norm: str) -> torch.Tensor:
    """Exact minimum ``l2`` or ``linf`` perturbation for :func:`decoy_linear` (no box)."""
    w = model.weight[0] - model.weight[1]
    margin = x.flatten(1) @ w + model.bias[0] - model.bias[1]
    dual = {"l2": w.norm(), "linf": w.abs().sum()}[norm]
    return margin / dual


def binary_critical_scale(
    model: Linear, tx: torch.Tensor, td: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """s* = margin(T x) / -(w_y - w_o) . T d for a binary linear model (inf if it never flips)."""
    w = model.weight[labels] - model.weight[1 - labels]
    margin = (tx.flatten(1) * w).sum(1) + model.bias[labels] - model.bias[1 - labels]
    slope = -(td.flatten(1) * w).sum(1)
    return torch.where(slope > 0, margin / slope, torch.full_like(margin, math.inf))


def decoy_box_minimum(
    model: Linear, x: torch.Tensor, norm: str, bounds: tuple[float, float] | None
) -> torch.Tensor:
    """Exact minimum ``l1pp``, ``l2`` or ``linf`` perturbation for :func:`decoy_linear`
    inside the pixel box (``None``: no box), per image.

    The margin ``m`` falls by ``sum_i |w_i| a_i`` when pixel ``i`` moves by ``a_i``
    against ``sign(w_i)``, at most its room to the bound it moves to. L1 (the dual
    is Linf): fill pixels by decreasing ``|w_i|`` (a fractional knapsack; one pixel
    without a box). Linf: ``a_i = min(t, room_i)``; L2: ``a_i = min(t |w_i|, room_i)``,
    ``t`` found by bisection (in float64) so that the margin reaches 0.
    """
    w = (model.weight[0] - model.weight[1]).double()
    xs = x.flatten(1).double()
    m = xs @ w + float(model.bias[0] - model.bias[1])
    lo, hi = bounds if bounds is not None else (-math.inf, math.inf)
    room = torch.where(w > 0, xs - lo, hi - xs).clamp_min(0)  # (B, D)
    aw = w.abs().expand_as(room)
    if norm == "l1pp":
        order = aw.argsort(dim=1, descending=True)
        a_w, r = aw.gather(1, order), room.gather(1, order)
        cap = a_w * r  # margin each pixel can remove
        before = torch.cat([torch.zeros_like(m)[:, None], cap.cumsum(1)[:, :-1]], dim=1)
        need = ((m[:, None] - before) / a_w).clamp_min(0)
        amount = torch.minimum(need, r)
        return (amount.sum(1) / xs.shape[1]).float()

    def amounts(t: torch.Tensor) -> torch.Tensor:
        step = t[:, None] if norm == "linf" else t[:, None] * aw
        return torch.minimum(step, room)

    lo_t = torch.zeros_like(m)
    hi_t = torch.full_like(m, 1e6)
    for _ in range(200):
        mid = (lo_t + hi_t) / 2
        enough = (aw * amounts(mid)).sum(1) >= m
        hi_t, lo_t = torch.where(enough, mid, hi_t), torch.where(enough, lo_t, mid)
    a = amounts(hi_t)
    return (a.abs().amax(1) if norm == "linf" else a.norm(dim=1)).float()
