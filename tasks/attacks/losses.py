"""Losses whose gradients give attack directions (per image, to be *decreased*).

Luo et al. (sec. B) use the pre-softmax score of the true class while the
label is still in the top-k: decreasing it pushes the label out. Goodfellow
et al.'s FGSM ascends the cross-entropy instead; both are offered.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def true_score(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Luo et al.'s loss: the true class's logit (to decrease)."""
    return logits.gather(1, labels[:, None]).squeeze(1)


def neg_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Goodfellow et al.'s loss, negated so that every loss here is decreased."""
    return -F.cross_entropy(logits, labels, reduction="none")


LOSSES: dict[str, LossFn] = {"score": true_score, "ce": neg_cross_entropy}


def get_loss(name: str) -> LossFn:
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; use one of {sorted(LOSSES)}") from None
