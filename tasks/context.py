"""Query bookkeeping shared by every attack and evaluation.

A :class:`QueryContext` wraps a model in pixel space for a batch of images: it
counts forward and backward passes per image, applies the pixel bounds and
evaluates the criterion. Attacks never call the model directly, so the counts
in the result tables are exact. ``ctx.subset(idx)`` gives a view on some of the
images that shares the counters, which is how the active set shrinks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from tasks.criterion import TopK

if TYPE_CHECKING:
    from tasks.views import View

Bounds = tuple[float, float]
PIXEL_BOUNDS: Bounds = (0.0, 255.0)


@dataclass
class QueryCounts:
    """Forward and backward passes per image of the original batch."""

    forward: torch.Tensor
    backward: torch.Tensor

    @classmethod
    def zeros(cls, n: int) -> QueryCounts:
        return cls(torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.long))


@dataclass
class QueryContext:
    """A model, a criterion, labels and shared query counters for some images."""

    model: nn.Module
    labels: torch.Tensor
    criterion: TopK
    bounds: Bounds | None
    counts: QueryCounts
    rows: torch.Tensor  # row of each image in the original batch (for the counters)
    view: View | None = None  # how the model sees an image (crops, flips); None: as is
    budget: int | None = None  # forward + backward passes allowed per image; None: no limit

    @classmethod
    def create(
        cls,
        model: nn.Module,
        labels: torch.Tensor,
        criterion: TopK | None = None,
        bounds: Bounds | None = PIXEL_BOUNDS,
        view: View | None = None,
        budget: int | None = None,
    ) -> QueryContext:
        n = labels.shape[0]
        return cls(
            model=model,
            labels=labels,
            criterion=criterion or TopK(),
            bounds=bounds,
            counts=QueryCounts.zeros(n),
            rows=torch.arange(n),
            view=view,
            budget=budget,
        )

    def subset(self, idx: torch.Tensor) -> QueryContext:
        """View on images ``idx`` of this context; counters stay shared."""
        return QueryContext(
            model=self.model,
            labels=self.labels[idx],
            criterion=self.criterion,
            bounds=self.bounds,
            counts=self.counts,
            rows=self.rows[idx.cpu()],
            view=self.view,
            budget=self.budget,
        )

    def spent(self, idx: torch.Tensor | None = None) -> torch.Tensor:
        """Forward + backward passes spent so far by images ``idx`` (default: all)."""
        rows = self._rows(idx)
        return self.counts.forward[rows] + self.counts.backward[rows]

    def affordable(self, idx: torch.Tensor, cost: int) -> torch.Tensor:
        """Images ``idx`` (positions in this context) that can spend ``cost`` more passes.

        Attacks filter their active set with it before each step, so that no image
        goes over ``budget`` and the count where an attack stops is exact.
        """
        if self.budget is None:
            return torch.ones(idx.shape[0], dtype=torch.bool, device=idx.device)
        return (self.spent(idx) + cost <= self.budget).to(idx.device)

    def clip(self, x: torch.Tensor) -> torch.Tensor:
        if self.bounds is None:
            return x
        return x.clamp(self.bounds[0], self.bounds[1])

    def _rows(self, idx: torch.Tensor | None) -> torch.Tensor:
        return self.rows if idx is None else self.rows[idx.cpu()]

    def label(self, idx: torch.Tensor | None = None) -> torch.Tensor:
        return self.labels if idx is None else self.labels[idx]

    def _forward(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The model's scores for images ``rows`` as the view presents them."""
        if self.view is None:
            return self.model(x)
        return self.view.logits(self.model, x, rows)

    def logits(self, x: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        """Forward pass without gradients; ``x`` holds images ``idx`` (default: all)."""
        rows = self._rows(idx)
        self.counts.forward[rows] += 1
        with torch.no_grad():
            return self._forward(x, rows)

    def is_adversarial(
        self, x: torch.Tensor, idx: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(adversarial mask, logits) for images ``idx`` at pixel values ``x``."""
        logits = self.logits(x, idx)
        return self.criterion.is_adversarial(logits, self.label(idx)), logits

    def value_and_grad(
        self,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        x: torch.Tensor,
        idx: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-image loss, its gradient w.r.t. ``x``, and the logits.

        ``loss_fn(logits, labels)`` returns one value per image; images are
        independent, so the gradient of the sum is each image's own gradient.
        """
        rows = self._rows(idx)
        self.counts.forward[rows] += 1
        self.counts.backward[rows] += 1
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = self._forward(x, rows)
            loss = loss_fn(logits, self.label(idx))
            (grad,) = torch.autograd.grad(loss.sum(), x)
        return loss.detach(), grad.detach(), logits.detach()

    def jacobian(
        self,
        outputs_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        x: torch.Tensor,
        idx: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Several per-image outputs and their gradients from one forward pass.

        ``outputs_fn(logits, labels)`` returns ``(B, K)``; the result is the
        outputs, the Jacobian ``(B, K, *x.shape[1:])`` and the logits. One
        forward and ``K`` backward passes are counted per image (DeepFool's
        one backward per candidate class).
        """
        rows = self._rows(idx)
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = self._forward(x, rows)
            out = outputs_fn(logits, self.label(idx))
            k = out.shape[1]
            grads = [
                torch.autograd.grad(out[:, j].sum(), x, retain_graph=j < k - 1)[0] for j in range(k)
            ]
        self.counts.forward[rows] += 1
        self.counts.backward[rows] += k
        return out.detach(), torch.stack(grads, dim=1), logits.detach()
