"""A tiny network for plumbing tests, and labels it gets right.

Where a test checks scheduling, storage or faults, the network's weights are not the
claim: timm's ``test_convnext`` (random weights, seeded; about 0.3M parameters) at
32 x 32 px costs milliseconds per image where an EfficientNet at 224 px costs seconds.
With random weights almost no photo is classified correctly, so nothing would be
attacked or evaluated; :func:`planted_wnids` labels each photo with the class this
network gives it, so every photo is correct clean and every stage has work to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

TINY = "untrained_timm:test_convnext"
TINY_INPUT: dict[str, Any] = {"input_size": [32, 32]}


def planted_wnids(paths: Sequence[Path]) -> list[str]:
    """The wnid of :data:`TINY`'s first guess on each photo, preprocessed as a run does."""
    import torch

    from pipeline.data.classes import wnids
    from pipeline.models.images import load_batch
    from pipeline.models.networks import load_model

    model = load_model(TINY, TINY_INPUT)
    with torch.no_grad():
        top1 = model(load_batch(paths, model.cfg)).argmax(dim=1)
    return [wnids()[int(k)] for k in top1]
