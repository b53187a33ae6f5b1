"""Linearity of the network along a perturbation (Luo et al. sec. 3, Fig. 4, 6, 9-12).

Scores are the pre-softmax logit of the true class. ``f(e)`` — the network
applied to the perturbation alone — needs an input that the network treats as
"zero": in Caffe the input is mean-subtracted, so ``f(e)`` meant the mean image
plus ``e``. Here the model takes 0..255 pixels and normalises inside, so we
evaluate ``f(reference + a e)`` with ``reference`` = the normalisation mean in
pixel units (no clipping: it is a probe of the linear hypothesis, not an image).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tasks.context import PIXEL_BOUNDS, Bounds
from tasks.views import View


def true_score(
    model: nn.Module, x: torch.Tensor, labels: torch.Tensor, view: View | None = None
) -> torch.Tensor:
    with torch.no_grad():
        logits = model(x) if view is None else view.logits(model, x, torch.arange(x.shape[0]))
    return logits.gather(1, labels[:, None]).squeeze(1)


def _clip(x: torch.Tensor, bounds: Bounds | None) -> torch.Tensor:
    return x if bounds is None else x.clamp(*bounds)


@dataclass
class LinearityCurves:
    """Per image and grid value ``a``: f(x + a e) - f(x) and f(a e) (Fig. 4, 9-11)."""

    alphas: list[float]
    response: torch.Tensor  # (B, A): f(x + a e) - f(x)
    alone: torch.Tensor  # (B, A): f(reference + a e)


def linearity_curves(
    model: nn.Module,
    x: torch.Tensor,
    e: torch.Tensor,
    labels: torch.Tensor,
    alphas: list[float],
    reference: torch.Tensor | float,
    bounds: Bounds | None = PIXEL_BOUNDS,
) -> LinearityCurves:
    f_x = true_score(model, x, labels)
    response, alone = [], []
    for a in alphas:
        response.append(true_score(model, _clip(x + a * e, bounds), labels) - f_x)
        alone.append(true_score(model, reference + a * e, labels))
    return LinearityCurves(alphas, torch.stack(response, 1), torch.stack(alone, 1))


@dataclass
class LinearityErrors:
    """Fig. 12: error of the local linear interpolation vs error of ``f(e*)``."""

    interpolation: torch.Tensor  # |f(x+e) - (f(x) + f(x+2e)) / 2|
    alone: torch.Tensor  # |(f(x+e) - f(x)) - f(e)|


def linearity_errors(
    model: nn.Module,
    x: torch.Tensor,
    e: torch.Tensor,
    labels: torch.Tensor,
    reference: torch.Tensor | float,
    bounds: Bounds | None = PIXEL_BOUNDS,
) -> LinearityErrors:
    f_x = true_score(model, x, labels)
    f_1 = true_score(model, _clip(x + e, bounds), labels)
    f_2 = true_score(model, _clip(x + 2 * e, bounds), labels)
    f_e = true_score(model, reference + e, labels)
    return LinearityErrors(
        interpolation=(f_1 - (f_x + f_2) / 2).abs(),
        alone=((f_1 - f_x) - f_e).abs(),
    )


@dataclass
class FoveationEffect:
    """Fig. 6: how a foveation T changes the image's and the perturbation's scores."""

    image: torch.Tensor  # f(x) - f(T(x))
    perturbation: torch.Tensor  # (f(x+e) - f(x)) - (f(T(x+e)) - f(T(x)))


def foveation_effect(
    model: nn.Module,
    x: torch.Tensor,
    e: torch.Tensor,
    labels: torch.Tensor,
    view: View,
    bounds: Bounds | None = PIXEL_BOUNDS,
) -> FoveationEffect:
    xe = _clip(x + e, bounds)
    f_x, f_xe = true_score(model, x, labels), true_score(model, xe, labels)
    t_x, t_xe = true_score(model, x, labels, view), true_score(model, xe, labels, view)
    return FoveationEffect(image=f_x - t_x, perturbation=(f_xe - f_x) - (t_xe - t_x))
