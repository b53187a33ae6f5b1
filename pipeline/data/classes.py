"""ILSVRC-2012 classes: wnid -> class index, from timm's bundled ImageNet info.

The index is the position of the wnid in sorted order of the 1000 wnids, the
convention of every pretrained ImageNet classifier (and of the devkit's
``ILSVRC2012_ID - 1`` after sorting). timm ships the list, so no download.
"""

from __future__ import annotations

from functools import cache

N_CLASSES = 1000


@cache
def _wnids_and_names() -> tuple[tuple[str, ...], dict[str, str]]:
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    wnids = list(info.label_names())
    names = {w: info.index_to_description(i) for i, w in enumerate(wnids)}
    if len(wnids) != N_CLASSES or len(set(wnids)) != N_CLASSES:
        raise RuntimeError(f"timm's ImageNet info lists {len(wnids)} wnids, expected {N_CLASSES}")
    return tuple(sorted(wnids)), names


def wnids() -> tuple[str, ...]:
    """The 1000 ILSVRC-2012 wnids in class-index order."""
    return _wnids_and_names()[0]


@cache
def wnid_to_index() -> dict[str, int]:
    return {w: i for i, w in enumerate(wnids())}


def class_name(wnid: str) -> str:
    """Human-readable description, e.g. ``'tench, Tinca tinca'``."""
    return _wnids_and_names()[1][wnid]
