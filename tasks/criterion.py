"""The misclassification criterion: the true label is not among the top-k scores.

Luo et al. (sec. 2, B) use the ImageNet top-5 error; top-1 is k=1. Ties count
in the label's favour (a class must score strictly higher to push it out), so
an image is adversarial only when at least k other classes beat the label.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TopK:
    """Misclassified when the label is not among the ``k`` highest logits."""

    k: int = 5

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.k}")

    def rank(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Number of classes scoring strictly above the label (0 = top-1)."""
        true = logits.gather(1, labels[:, None])
        return (logits > true).sum(dim=1)

    def is_adversarial(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Boolean per image: the label has fallen out of the top-k."""
        return self.rank(logits, labels) >= self.k

    def margin(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Label logit minus the k-th largest other logit: > 0 iff still correct.

        The decision boundary of the criterion is margin = 0, so attacks that
        need a differentiable distance to it (DeepFool, C&W) use this.
        """
        true = logits.gather(1, labels[:, None]).squeeze(1)
        others = logits.scatter(1, labels[:, None], float("-inf"))
        kth = others.topk(self.k, dim=1).values[:, -1]
        return true - kth
