"""Out-of-memory detection shared by the attack and evaluation stages (they halve batches)."""

from __future__ import annotations

import torch


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA/CPU allocation failures: worth retrying with a smaller batch."""
    oom_type = getattr(torch, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        isinstance(exc, MemoryError) or "out of memory" in str(exc).lower()
    )
