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
        return combine(model(crops), owner, len(wins), self.aggregate)


def combine(
    scores: torch.Tensor,
    owner: torch.Tensor,
    n: int,
    aggregate: Literal["prob", "logit"] = "prob",
) -> torch.Tensor:
    """``(n, classes)``: each image's views' scores combined (``owner[i]``: the image of row
    ``i``): one view keeps its logits; several average softmax confidences (Caffe's
    multi-crop, returned as the log of the mean, so top-k is the mean's) or logits."""
    counts_long = torch.bincount(owner, minlength=n)
    if bool((counts_long == 1).all()):
        return scores[torch.argsort(owner)]
    counts = counts_long.to(scores.dtype).unsqueeze(1)
    if aggregate == "logit":
        total = scores.new_zeros((n, scores.shape[1])).index_add_(0, owner, scores)
        return total / counts
    probs = scores.softmax(dim=1)
    mean = probs.new_zeros((n, probs.shape[1])).index_add_(0, owner, probs) / counts
    return mean.clamp_min(1e-30).log()  # monotone in the mean confidence: same top-k
