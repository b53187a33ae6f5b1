"""Linear classifiers whose minimum perturbations are known in closed form."""

from __future__ import annotations

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
    model = Linear(torch.randn(n_classes, d, generator=g) * 0.002, torch.randn(n_classes, generator=g))
    x = 64 + 128 * torch.rand(16, *shape, generator=g)
    return model, x


def binary_linf_minimum(model: Linear, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Exact minimum Linf perturbation that flips a 2-class linear model (no box)."""
    other = 1 - labels
    w = model.weight[labels] - model.weight[other]
    margin = (x.flatten(1) * w).sum(1) + model.bias[labels] - model.bias[other]
    return margin / w.abs().sum(1)
