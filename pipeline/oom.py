"""Out-of-memory detection shared by the attack and evaluation stages (they halve batches),
and the evaluation stage's batch growth towards the device's memory."""

from __future__ import annotations

from dataclasses import dataclass

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
