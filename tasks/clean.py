"""The ``clean`` task: how each network does on the unperturbed images."""

from __future__ import annotations

import torch
from torch import nn

from tasks import measures


def clean_scores(
    model: nn.Module, x: torch.Tensor, labels: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Top-1/top-5 correctness, prediction, true-class logit and margin per image.

    ``margin`` = true logit minus the best other logit (> 0 iff top-1 correct).
    """
    with torch.no_grad():
        logits = model(x)
    true = logits.gather(1, labels[:, None]).squeeze(1)
    rank = (logits > true[:, None]).sum(dim=1)
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return {
        "top1_correct": rank < 1,
        "top5_correct": rank < 5,
        "pred_label": logits.argmax(dim=1),
        "true_logit": true,
        "margin": true - others.amax(dim=1),
    }


def clean_measures(
    model: nn.Module, x: torch.Tensor, labels: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Per image, what Balda's rho1 and rho2 need besides the attacks (0..255 units).

    ``x_l2``/``x_linf``: the image's own norms (rho1 = mean ||e*|| / ||x||);
    ``fo_l2``/``fo_linf``: the first-order distance L(x) / ||grad L(x)||_q with
    L the softmax margin of the label (rho2), one gradient for both norms.
    """
    distances = measures.first_order_distances(model, x, labels, ("l2", "linf"))
    return {
        "x_l2": measures.lp(x, "l2"),
        "x_linf": measures.lp(x, "linf"),
        "fo_l2": distances["l2"],
        "fo_linf": distances["linf"],
    }
