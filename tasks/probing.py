"""Batched scoring: every pending query of an evaluation goes through the network together.

The evaluation of one batch of images asks the network many small questions
(a search step of some condition for some image, a dense-grid point, a
linearity alpha, a crop view...). Asked one condition at a time they make
hundreds of small forward calls (launch-bound on a GPU, Python-bound on a
CPU). Instead every question becomes a :class:`Query` in a :class:`ScoreQueue`
and one :meth:`ScoreQueue.flush` per search round evaluates all of them in
full batches. A query builds its inputs lazily, when its batch is formed, so
a round's memory is one batch of inputs, not the whole round.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class Query:
    """``n`` model inputs (views of one image) whose raw logits are wanted.

    ``make(views)`` builds the inputs of the listed views only: views whose
    ``key`` the queue has already scored (this batch) are not sent again.
    """

    n: int
    make: Callable[[list[int]], torch.Tensor]
    keys: list[Hashable] | None = None
    rows: list[torch.Tensor | None] = field(default_factory=list)
    compute: list[int] = field(default_factory=list)  # views this query sends
    links: list[tuple[int, Query, int]] = field(default_factory=list)  # view <- (query, view)

    @property
    def logits(self) -> torch.Tensor:
        """``(n, classes)`` raw logits, one row per view (after the queue was flushed)."""
        if any(r is None for r in self.rows):
            raise RuntimeError("query read before ScoreQueue.flush()")
        return torch.stack([r for r in self.rows if r is not None])


@dataclass
class QueueStats:
    calls: int = 0  # forward calls of the network
    images: int = 0  # images (crops included) that went through it
    reused: int = 0  # views answered from the cache instead


class ScoreQueue:
    """Collects queries and evaluates them in batches of ``batch_size`` images.

    Views with the same key (the same image, frame, window and scale, asked by
    two conditions such as ``ten_crop`` and ``three_crop``) go through the
    network once per :meth:`reset` (the caller resets per batch of images).
    """

    def __init__(
        self,
        model: nn.Module,
        batch_size: int,
        autocast: torch.dtype | None = None,
        channels_last: bool = False,
    ) -> None:
        self.model = model
        self.batch_size = max(1, batch_size)
        self.autocast = autocast
        self.channels_last = channels_last
        self.pending: list[Query] = []
        self.stats = QueueStats()
        self._cache: dict[Hashable, torch.Tensor] = {}
        self._inflight: dict[Hashable, tuple[Query, int]] = {}

    def reset(self) -> None:
        """Forget cached views (a new batch of images) and drop anything pending."""
        self._cache.clear()
        self._inflight.clear()
        self.pending.clear()

    def add(
        self,
        n: int,
        make: Callable[[list[int]], torch.Tensor],
        keys: list[Hashable] | None = None,
    ) -> Query:
        query = Query(n, make, keys, rows=[None] * n)
        for v in range(n):
            key = keys[v] if keys is not None else None
            if key is not None and key in self._cache:
                query.rows[v] = self._cache[key]
                self.stats.reused += 1
            elif key is not None and key in self._inflight:
                query.links.append((v, *self._inflight[key]))
                self.stats.reused += 1
            else:
                query.compute.append(v)
                if key is not None:
                    self._inflight[key] = (query, v)
        self.pending.append(query)
        return query

    def flush(self) -> None:
        """Evaluate every pending query; batches span query boundaries."""
        pending, self.pending = self.pending, []
        buffer: list[torch.Tensor] = []
        owners: list[tuple[Query, list[int]]] = []  # (query, its views still in the buffer)
        held = 0
        for query in pending:
            if not query.compute:
                continue
            x = query.make(list(query.compute))
            if x.shape[0] != len(query.compute):
                raise ValueError(f"a query asked {len(query.compute)} views and got {x.shape[0]}")
            buffer.append(x)
            owners.append((query, list(query.compute)))
            held += x.shape[0]
            while held >= self.batch_size:
                buffer, owners, held = self._run(buffer, owners, self.batch_size)
        if held:
            self._run(buffer, owners, held)
        for query in pending:
            for v, other, w in query.links:
                query.rows[v] = other.rows[w]
            if query.keys is not None:
                for v in query.compute:
                    self._cache[query.keys[v]] = query.rows[v]  # type: ignore[assignment]
        self._inflight.clear()

    def _run(
        self, buffer: list[torch.Tensor], owners: list[tuple[Query, list[int]]], take: int
    ) -> tuple[list[torch.Tensor], list[tuple[Query, list[int]]], int]:
        x = buffer[0] if len(buffer) == 1 else torch.cat(buffer)
        logits = self.forward(x[:take])
        offset = 0
        while offset < take:
            query, views = owners[0]
            used = min(len(views), take - offset)
            for k, v in enumerate(views[:used]):
                query.rows[v] = logits[offset + k]
            offset += used
            if used == len(views):
                owners.pop(0)
            else:
                owners[0] = (query, views[used:])
        rest = x[take:]
        return ([rest] if rest.shape[0] else []), owners, int(rest.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One forward call: no autograd, optional bf16 autocast, logits back in fp32."""
        self.stats.calls += 1
        self.stats.images += int(x.shape[0])
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            if self.autocast is not None:
                with torch.autocast(x.device.type, dtype=self.autocast):
                    return self.model(x).float()
            return self.model(x).float()


def aggregate(logits: torch.Tensor, how: str = "prob") -> torch.Tensor:
    """One score vector from a query's views: mean softmax (Caffe's multi-crop) or mean logit.

    Mean softmax is returned as its log, which has the same top-k.
    """
    if logits.shape[0] == 1:
        return logits[0]
    if how == "logit":
        return logits.mean(dim=0)
    return logits.softmax(dim=1).mean(dim=0).clamp_min(1e-30).log()
