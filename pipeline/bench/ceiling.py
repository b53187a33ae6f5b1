"""What the network alone sustains: the yardstick for our attacks' bookkeeping.

An attack's time is its network passes plus everything else (line searches,
active-set shrinking, optimiser steps). :func:`measure_ceiling` times the
passes alone, the way the attacks make them: the same images, batch size and
dtype, weights frozen and ``requires_grad`` on the input only, after warm-up
passes (allocator, kernel selection), as the median of several repetitions.

Every attack query is a no-grad forward or a forward that builds the graph
followed by one or more input-gradient backwards (DeepFool's Jacobian: one
forward, K backwards). A graph forward costs at least a no-grad forward, so
``n_forward`` forwards and ``n_backward`` backwards take at least
:meth:`Ceiling.seconds` of them: the share of our wall time that this least
time makes up cannot exceed 100% except by timing noise.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

REPEATS = 5
WARMUP = 2


@dataclass(frozen=True)
class Ceiling:
    """Images/s of the network's passes at one batch size (warm, median of ``repeats``)."""

    batch: int
    dtype: str
    repeats: int
    forward_per_s: float  # no-grad forward
    gradient_per_s: float  # graph forward + one backward to the input
    backward_per_s: float  # that backward alone

    def seconds(self, n_forward: int, n_backward: int) -> float:
        """The least time ``n_forward`` image-forwards and ``n_backward`` image-backwards take."""
        return n_forward / self.forward_per_s + n_backward / self.backward_per_s

    def describe(self) -> str:
        return (
            f"batch {self.batch} ({self.dtype}): forward {self.forward_per_s:.1f} img/s, "
            f"forward+backward {self.gradient_per_s:.1f} img/s, backward alone "
            f"{self.backward_per_s:.1f} img/s"
        )


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    """Weights without gradients for the block (as ``load_model`` leaves them), then restored."""
    before = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in before:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in before:
            p.requires_grad_(flag)


def _batch_of(x: torch.Tensor, batch: int) -> torch.Tensor:
    """The first ``batch`` images, repeated when there are fewer."""
    xb = x[:batch]
    if xb.shape[0] < batch:
        xb = xb.repeat((batch + xb.shape[0] - 1) // xb.shape[0], *[1] * (x.dim() - 1))[:batch]
    return xb.detach()


def _sync(x: torch.Tensor) -> None:
    if x.is_cuda:
        torch.cuda.synchronize(x.device)


def measure_ceiling(
    model: nn.Module, x: torch.Tensor, batch: int, repeats: int = REPEATS, warmup: int = WARMUP
) -> Ceiling:
    """Time the forward and the input-gradient passes of ``model`` on ``batch`` images of ``x``."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    xb = _batch_of(x, batch)
    labels = torch.zeros(batch, dtype=torch.long, device=xb.device)

    def forward() -> float:
        _sync(xb)
        start = time.perf_counter()
        with torch.no_grad():
            model(xb)
        _sync(xb)
        return time.perf_counter() - start

    def gradient() -> tuple[float, float]:
        xi = xb.detach().requires_grad_(True)  # as QueryContext.value_and_grad
        _sync(xb)
        start = time.perf_counter()
        with torch.enable_grad():
            loss = nn.functional.cross_entropy(model(xi), labels, reduction="sum")
            _sync(xb)
            mid = time.perf_counter()
            torch.autograd.grad(loss, xi)
        _sync(xb)
        return mid - start, time.perf_counter() - mid

    with frozen(model):
        for _ in range(warmup):
            forward()
            gradient()
        fwd = [forward() for _ in range(repeats)]
        graph, back = zip(*(gradient() for _ in range(repeats)), strict=True)
    both = [g + b for g, b in zip(graph, back, strict=True)]
    return Ceiling(
        batch=batch,
        dtype=str(xb.dtype).removeprefix("torch."),
        repeats=repeats,
        forward_per_s=batch / statistics.median(fwd),
        gradient_per_s=batch / statistics.median(both),
        backward_per_s=batch / statistics.median(back),
    )
