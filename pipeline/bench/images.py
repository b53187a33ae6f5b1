"""The bench's photos: the first N of a dataset that the model gets right top-1."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from pipeline.models.networks import PreprocessCfg
from tasks.criterion import TopK


@dataclass
class BenchImages:
    """The photos of the bench: correct clean under the pair criterion."""

    x: torch.Tensor
    labels: torch.Tensor
    image_ids: list[str]
    examined: int
    top5_correct: int
    top1_correct: int


def load_images(
    model: nn.Module, layout: str, root: str | Path | None, n: int, cfg: PreprocessCfg
) -> BenchImages:
    """First ``n`` photos (by image_id) the model classifies correctly top-1.

    Top-1 because every pair runs under top-1 (the peers' criterion): an image
    that is top-5 but not top-1 correct is already adversarial and would put
    zeros into both medians. The counts of both are reported.
    """
    from pipeline.data import build_manifest
    from pipeline.models.images import load_batch

    table = build_manifest(layout, root).table.to_pylist()
    xs, ys, ids = [], [], []
    examined = top5 = top1 = 0
    for start in range(0, len(table), 32):
        rows = table[start : start + 32]
        x = load_batch([r["path"] for r in rows], cfg)
        y = torch.tensor([int(r["label"]) for r in rows])
        with torch.no_grad():
            logits = model(x)
        ok5 = ~TopK(5).is_adversarial(logits, y)
        ok1 = ~TopK(1).is_adversarial(logits, y)
        examined += len(rows)
        top5 += int(ok5.sum())
        top1 += int(ok1.sum())
        for i in ok1.nonzero().squeeze(1).tolist():
            xs.append(x[i])
            ys.append(y[i])
            ids.append(str(rows[i]["image_id"]))
        if len(xs) >= n:
            break
    if not xs:
        raise ValueError(
            f"none of the {examined} photos of the {layout!r} dataset ({root or 'built in'}) "
            "is classified correctly top-1 by the model; pick another --model or --layout/--root"
        )
    return BenchImages(
        x=torch.stack(xs[:n]),
        labels=torch.stack(ys[:n]),
        image_ids=ids[:n],
        examined=examined,
        top5_correct=top5,
        top1_correct=top1,
    )
