"""What the network alone sustains: the yardstick for our attacks' bookkeeping.

An attack's time is its network passes plus everything else (line searches,
active-set shrinking, optimiser steps). :class:`Profiled` records every pass
an attack makes: a no-grad forward, a forward that builds the graph, or a
backward to the input (DeepFool's Jacobian: one graph forward, K backwards),
each with its batch size. :func:`measure_ceiling` times those passes alone,
the way the attacks make them: the same images and dtype, weights frozen and
``requires_grad`` on the input only, after warm-up passes, as the fastest of
several repetitions (load from other jobs only ever slows a pass down, so the
fastest is the bound; a median can land in a burst of load), at every batch size the attack used (its active set
shrinks as images finish; on a CPU a small batch can cost less per image).

:func:`least_seconds` is then the time the attack's own passes take at that
pace, so on a quiet machine its share of the attack's wall time cannot exceed
100% except by timing noise; the rest is bookkeeping.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

REPEATS = 3
WARMUP = 2

Pass = Literal["forward", "graph", "backward"]
#: (pass, batch size) -> how many times the attack made it.
Calls = Mapping[tuple[Pass, int], int]


@dataclass(frozen=True)
class Ceiling:
    """Images/s of the network's passes at one batch size (warm, fastest of ``repeats``)."""

    batch: int
    dtype: str
    repeats: int
    forward_per_s: float  # no-grad forward
    graph_per_s: float  # forward that builds the graph to the input
    backward_per_s: float  # one backward to the input

    @property
    def gradient_per_s(self) -> float:
        """A graph forward and one backward: one input gradient."""
        return 1.0 / (1.0 / self.graph_per_s + 1.0 / self.backward_per_s)

    def per_s(self, kind: Pass) -> float:
        return {"forward": self.forward_per_s, "graph": self.graph_per_s}.get(
            kind, self.backward_per_s
        )

    def describe(self) -> str:
        return f"{self.forward_per_s:.1f} / {self.gradient_per_s:.1f} / {self.backward_per_s:.1f}"


class Profiled(nn.Module):
    """``model`` that records each pass it makes, by kind and batch size, in ``calls``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.calls: collections.Counter[tuple[Pass, int]] = collections.Counter()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        b = int(x.shape[0])
        if out.requires_grad:
            self.calls["graph", b] += 1
            out.register_hook(functools.partial(self._backward, b))  # once per backward
        else:
            self.calls["forward", b] += 1
        return out

    def _backward(self, batch: int, grad: torch.Tensor) -> None:
        self.calls["backward", batch] += 1


def image_passes(calls: Calls, kind: Pass) -> int:
    """Image-passes of ``kind`` (a call at batch b counts b), as the attacks count queries."""
    return sum(b * n for (k, b), n in calls.items() if k == kind)


def least_seconds(calls: Calls, ceilings: Mapping[int, Ceiling]) -> tuple[float, float]:
    """(forwards, backwards): the time ``calls`` take at the ceiling of their batch sizes."""
    fwd = bwd = 0.0
    for (kind, b), n in calls.items():
        seconds = n * b / ceilings[b].per_s(kind)
        if kind == "backward":
            bwd += seconds
        else:
            fwd += seconds
    return fwd, bwd


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
            logits = model(xi)
            _sync(xb)
            graph = time.perf_counter() - start
            loss = nn.functional.cross_entropy(logits, labels, reduction="sum")  # not a pass
            _sync(xb)
            start = time.perf_counter()
            torch.autograd.grad(loss, xi)
        _sync(xb)
        return graph, time.perf_counter() - start

    with frozen(model):
        for _ in range(warmup):
            forward()
            gradient()
        fwd = [forward() for _ in range(repeats)]
        graph, back = zip(*(gradient() for _ in range(repeats)), strict=True)
    return Ceiling(
        batch=batch,
        dtype=str(xb.dtype).removeprefix("torch."),
        repeats=repeats,
        forward_per_s=batch / min(fwd),
        graph_per_s=batch / min(graph),
        backward_per_s=batch / min(back),
    )
