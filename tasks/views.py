"""Views: how a network sees an image under a foveation.

A view turns a batch of input-space images into the scores the criterion is
applied to. :class:`CropView` runs every crop of every image in one forward
pass and averages over an image's crops: softmax confidences for
classification (Caffe's multi-crop averaging, which the paper uses), or raw
logits when pre-softmax scores are studied (Fig. 6). A single-crop view
returns the crop's logits unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from torch import nn

from tasks.geometry import Window, crop_resize


class View(Protocol):
    def logits(self, model: nn.Module, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Scores ``(b, classes)`` for images ``x`` that are rows ``rows`` of the batch."""
        ...


@dataclass(frozen=True)
class CropView:
    """Per-image crop windows (indexed by batch row), resized to ``size``."""

    windows: tuple[tuple[Window, ...], ...]
    size: tuple[int, int]
    aggregate: Literal["prob", "logit"] = "prob"

    @classmethod
    def of(
        cls,
        windows: list[list[Window]],
        size: tuple[int, int],
        aggregate: Literal["prob", "logit"] = "prob",
    ) -> CropView:
        return cls(tuple(tuple(w) for w in windows), size, aggregate)

    def select(self, rows: list[int]) -> CropView:
        """The same view for a subset of the images (rows renumbered from 0)."""
        return CropView(tuple(self.windows[r] for r in rows), self.size, self.aggregate)

    def logits(self, model: nn.Module, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        wins = [list(self.windows[int(r)]) for r in rows]
        if any(not w for w in wins):
            raise ValueError(
                "CropView: an image has no crop window; leave it out of this condition"
            )
        crops, owner = crop_resize(x, wins, self.size)
        scores = model(crops)
        if all(len(w) == 1 for w in wins):
            return scores
        counts = torch.bincount(owner, minlength=len(wins)).to(scores.dtype).unsqueeze(1)
        if self.aggregate == "logit":
            total = scores.new_zeros((len(wins), scores.shape[1])).index_add_(0, owner, scores)
            return total / counts
        probs = scores.softmax(dim=1)
        mean = probs.new_zeros((len(wins), probs.shape[1])).index_add_(0, owner, probs) / counts
        return mean.clamp_min(1e-30).log()  # monotone in the mean confidence: same top-k
