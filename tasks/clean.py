"""The ``clean`` task: how each network does on the unperturbed images."""

from __future__ import annotations

import torch
from torch import nn


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
