"""Robustness measures: Balda et al. (2018) and Zhang et al. (2019)'s protocol.

Balda et al., sec. II and Table I:

* ``rho1 = mean ||r(x)||_p / ||x||_p`` over the images with a found minimum
  perturbation ``r`` (DeepFool's measure; images are in 0..255 pixel units);
* ``rho2 = mean L(x) / ||grad L(x)||_q`` (Proposition 1's first-order distance;
  ``q`` the dual of ``p``), ``L`` the margin of eq. (3): label score minus
  the best other class. The paper's ``f`` are softmax probabilities
  (``scores="probs"``, default); ``"logits"`` is offered. Averaged over the
  images correctly classified clean (``L > 0``), like rho1's images;
* the fooling ratio as a function of ``eps`` (the fraction of clean-correct
  images whose minimum perturbation has norm ``<= eps``; failures never fool)
  and the smallest ``eps`` fooling more than 99% (Table I's last column).

Zhang et al., sec. 5.1: ``P_suc = N_suc / N``, the conditional mean
distortion ``D-bar`` over successes, and the operating characteristic
``P(D)`` (eq. 20-21). Their perceptual score is MAD (Larson & Chandler); no
package kept offline here computes it (pyiqa, which implements MAD, is not in
the offline package lists; piq, which is, has no MAD), so :func:`tv_ratio`
is used instead: the total variation of the perturbation relative to the
image's own, the quantity smoothing "like the image" is meant to lower.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from tasks.context import QueryContext
from tasks.smoothing import total_variation

_P = {"l1": 1.0, "l2": 2.0, "linf": float("inf")}
_DUAL = {"l1": float("inf"), "l2": 2.0, "linf": 1.0}


def lp(x: torch.Tensor, p: str) -> torch.Tensor:
    """Per-image ``||x||_p`` for p in l1, l2, linf."""
    return x.flatten(1).norm(p=_P[p], dim=1)


def rho1(
    perturbation: torch.Tensor, x: torch.Tensor, success: torch.Tensor, p: str = "linf"
) -> float:
    """Balda's rho1 (DeepFool's): mean ``||r||_p / ||x||_p`` over successful images."""
    ratio = lp(perturbation, p) / lp(x, p).clamp_min(1e-12)
    return float(ratio[success].mean()) if bool(success.any()) else float("nan")


def margin_fn(
    scores: Literal["probs", "logits"],
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Eq. (3): the label's score minus the best other class's."""

    def margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        f = logits.softmax(dim=1) if scores == "probs" else logits
        true = f.gather(1, labels[:, None]).squeeze(1)
        return true - f.scatter(1, labels[:, None], float("-inf")).amax(dim=1)

    return margin


def first_order_distances(
    model: torch.nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    ps: tuple[str, ...] = ("linf",),
    scores: Literal["probs", "logits"] = "probs",
) -> dict[str, torch.Tensor]:
    """Per image and p: ``L(x) / ||grad L(x)||_q`` (Proposition 1); negative when misclassified.

    One gradient serves every p (only the dual norm of it changes).
    """
    ctx = QueryContext.create(model, labels, bounds=None)
    value, grad, _ = ctx.value_and_grad(margin_fn(scores), x)
    flat = grad.detach().flatten(1)
    return {p: value.detach() / flat.norm(p=_DUAL[p], dim=1).clamp_min(1e-30) for p in ps}


def first_order_distance(
    model: torch.nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    p: str = "linf",
    scores: Literal["probs", "logits"] = "probs",
) -> torch.Tensor:
    """Per image ``L(x) / ||grad L(x)||_q`` for one ``p``."""
    return first_order_distances(model, x, labels, (p,), scores)[p]


def rho2(distances: torch.Tensor) -> float:
    """Balda's rho2: mean first-order distance over the clean-correct images (``L > 0``)."""
    keep = distances > 0
    return float(distances[keep].mean()) if bool(keep.any()) else float("nan")


def fooling_ratio(min_norms: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Fraction of images whose minimum perturbation norm is ``<= eps`` (nan/inf: never)."""
    norms = torch.nan_to_num(min_norms, nan=float("inf"))
    return (norms[None, :] <= eps[:, None]).float().mean(dim=1)


def eps_fooling(min_norms: torch.Tensor, fraction: float = 0.99) -> float:
    """Smallest ``eps`` with fooling ratio strictly above ``fraction`` (inf if never)."""
    norms = torch.nan_to_num(min_norms, nan=float("inf")).sort().values
    n = norms.numel()
    index = int(fraction * n)  # need more than fraction * n images: the (index+1)-th smallest
    return float(norms[index]) if index < n else float("inf")


@dataclass(frozen=True)
class SuccessDistortion:
    """Zhang et al. eq. (20): success probability and conditional mean distortion."""

    p_suc: float
    d_bar: float
    n: int


def success_distortion(distortion: torch.Tensor, success: torch.Tensor) -> SuccessDistortion:
    """``P_suc`` and ``D-bar`` over images correct clean (pass only those)."""
    n = int(success.numel())
    n_suc = int(success.sum())
    d_bar = float(distortion[success].mean()) if n_suc else float("nan")
    return SuccessDistortion(p_suc=n_suc / max(n, 1), d_bar=d_bar, n=n)


def operating_characteristic(
    distortion: torch.Tensor, success: torch.Tensor, grid: torch.Tensor
) -> torch.Tensor:
    """Eq. (21): ``P(D) = |{x in X_suc : D(x) <= D}| / N`` at each ``D`` of ``grid``."""
    d = torch.where(success, distortion, torch.full_like(distortion, float("inf")))
    return fooling_ratio(d, grid)


def tv_ratio(perturbation: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per image ``TV(r) / TV(x)``: lower means smoother relative to the image."""
    return total_variation(perturbation) / total_variation(x).clamp_min(1e-12)
