"""A tiny network for plumbing tests, and labels it gets right.

Where a test checks scheduling, storage or faults, the network's weights are not the
claim: timm's ``test_convnext`` (random weights, seeded; about 0.3M parameters) at
32 x 32 px costs milliseconds per image where an EfficientNet at 224 px costs seconds.
With random weights almost no photo is classified correctly, so nothing would be
attacked or evaluated; :func:`planted_wnids` labels each photo with the class this
network gives it, so every photo is correct clean and every stage has work to do.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TINY = "untrained_timm:test_convnext"
TINY_INPUT: dict[str, Any] = {"input_size": [32, 32]}


def planted_wnids(paths: Sequence[Path], missed: int = 0) -> list[str]:
    """The wnid of :data:`TINY`'s first guess on each photo, preprocessed as a run does,
    except the last ``missed`` photos: a class outside its top five (its sixth guess)."""
    import torch

    from pipeline.data.classes import wnids
    from pipeline.models.images import load_batch
    from pipeline.models.networks import load_model

    model = load_model(TINY, TINY_INPUT)
    with torch.no_grad():
        ranked = model(load_batch(paths, model.cfg)).argsort(dim=1, descending=True)
    right = len(paths) - missed
    return [wnids()[int(ranked[i, 0 if i < right else 5])] for i in range(len(paths))]


def planted_ilsvrc(imagenet_sample: Path, dest: Path, n_images: int, missed: int = 0) -> Path:
    """The first ``n_images`` photos of the offline ImageNet sample in the ilsvrc layout, each
    labelled (its boxes' wnid) with :func:`planted_wnids`: :data:`TINY` is right clean on
    exactly the first ``n_images - missed`` photos, so those are attacked and evaluated."""
    (dest / "images").mkdir(parents=True)
    (dest / "bbox").mkdir()
    images = sorted((imagenet_sample / "images").iterdir())[:n_images]
    for image, planted in zip(images, planted_wnids(images, missed), strict=True):
        shutil.copy(image, dest / "images" / image.name)
        xml = (imagenet_sample / "bbox" / f"{image.stem}.xml").read_text()
        xml = re.sub(r"<name>n\d{8}</name>", f"<name>{planted}</name>", xml)
        (dest / "bbox" / f"{image.stem}.xml").write_text(xml)
    return dest
