"""Out-of-memory detection shared by the attack and evaluation stages (they halve batches),
and the evaluation stage's batch growth towards the device's memory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA/CPU allocation failures: worth retrying with a smaller batch."""
    oom_type = getattr(torch, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        isinstance(exc, MemoryError) or "out of memory" in str(exc).lower()
    )


def cuda_memory_share(device: torch.device) -> float | None:
    """Peak share of the device's memory allocated since the last call (the peak is then
    reset); None off CUDA, where growing a batch buys nothing (the CPU is saturated)."""
    if device.type != "cuda":
        return None
    peak = torch.cuda.max_memory_allocated(device)
    total = torch.cuda.get_device_properties(device).total_memory
    torch.cuda.reset_peak_memory_stats(device)
    return peak / total


@dataclass
class BatchGrowth:
    """Doubles a batch while the last one peaked under ``headroom`` of the memory, up to
    ``cap``; a size that ran out of memory becomes a ceiling growth stays below."""

    cap: int
    headroom: float = 0.4
    ceiling: int | None = None

    def after_success(self, size: int, share: float | None) -> int:
        if share is None or share >= self.headroom:
            return size
        grown = min(2 * size, self.cap)
        if self.ceiling is not None and grown >= self.ceiling:
            return size
        return grown

    def after_out_of_memory(self, size: int) -> int:
        self.ceiling = size if self.ceiling is None else min(self.ceiling, size)
        return max(1, size // 2)


T = TypeVar("T")


def bisecting(
    idx: list[int],
    attempt: Callable[[list[int]], T],
    give_up: Callable[[int, BaseException, bool], T],
    join: Callable[[T, T], T],
    remedy: Callable[[BaseException, bool, int], bool] | None = None,
    on_split: Callable[[], None] | None = None,
) -> T:
    """``attempt(idx)``; on failure split the batch in halves down to single images, so
    one bad image (or one that does not fit in memory) costs only its own rows.

    Every stage's batches go through here. ``remedy(exc, out_of_memory, n)`` may act
    first (free the cache, shrink a forward batch) and return True to retry the same
    batch; ``give_up(i, exc, out_of_memory)`` makes the rows of an image that failed
    alone; ``join`` merges two halves' results; ``on_split`` counts the halvings.
    """
    try:
        return attempt(idx)
    except Exception as exc:
        oom = is_out_of_memory(exc)
        if remedy is not None and remedy(exc, oom, len(idx)):
            return bisecting(idx, attempt, give_up, join, remedy, on_split)
        if len(idx) == 1:
            return give_up(idx[0], exc, oom)
        if on_split is not None:
            on_split()
        mid = len(idx) // 2
        first = bisecting(idx[:mid], attempt, give_up, join, remedy, on_split)
        return join(first, bisecting(idx[mid:], attempt, give_up, join, remedy, on_split))
