"""Losses whose gradients give attack directions (per image, to be *decreased*).

Luo et al. (sec. B) decrease "the classification score" of the true class
while the label is in the top-k. We read that score as the softmax output
(Caffe's ``prob``): sec. 3 says the soft-max layer is *removed* specifically
for the linearity study, the paper's eta = 1e-6 on ||e||_1 (~1e5 pixel
units) is commensurate with a probability, not a logit, and the images
L-BFGS failed on "had a classification score higher than 0.9", which is
where a probability's gradient vanishes. For the *sign* of a gradient,
``prob`` and ``ce`` are identical (grad p_y = -p_y grad CE) and ``ce`` is
numerically safer, so sign/fgv default to ``ce`` (also what ART's FGSM
ascends). bfgs keeps the logit hinge by default (see its docstring).
docs/protocol.md records both choices.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from tasks.attacks.params import LossName

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def true_score(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Luo et al.'s loss: the true class's logit (to decrease)."""
    return logits.gather(1, labels[:, None]).squeeze(1)


def true_prob(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The paper's classification score: softmax probability of the true class."""
    return logits.softmax(dim=1).gather(1, labels[:, None]).squeeze(1)


def neg_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Goodfellow et al.'s loss, negated so that every loss here is decreased."""
    return -F.cross_entropy(logits, labels, reduction="none")


#: Every :data:`~tasks.attacks.params.LossName` (a test checks that none is missing).
LOSSES: dict[LossName, LossFn] = {"score": true_score, "prob": true_prob, "ce": neg_cross_entropy}
