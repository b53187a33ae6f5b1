"""Bounds on what one image or annotation may cost before any work: set per run.

Why configurable: the defaults are far above anything in ILSVRC (a few dozen boxes, a
few KB of XML, photos under 6:1) and far below what a crafted file needs to exhaust
memory; a dataset that legitimately exceeds them (panoramas, dense annotations) raises
them in its config (``dataset.max_boxes``, ``dataset.max_xml_bytes``,
``dataset.max_aspect``). The manifest builder sets them for the build
(:func:`limits_in_force`); the readers ask :func:`current`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class DataLimits:
    max_boxes: int = 1000  # boxes for one image
    max_xml_bytes: int = 1_000_000  # one bounding-box XML file
    max_aspect: float = 30.0  # longest side over shortest (a 1x60000 strip plans 11.8 GB)


DEFAULT = DataLimits()
#: Process-wide, not a context variable: the manifest builder reads files on a thread
#: pool, whose threads do not inherit a context.
_in_force = [DEFAULT]


def current() -> DataLimits:
    return _in_force[-1]


@contextmanager
def limits_in_force(limits: DataLimits | None) -> Iterator[DataLimits]:
    """``limits`` (the defaults when None) for the readers while the block runs."""
    _in_force.append(limits or DEFAULT)
    try:
        yield _in_force[-1]
    finally:
        _in_force.pop()
