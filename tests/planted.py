"""Foveations planted for a test: registered in the protocol's registries, then removed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tasks.foveation import VIEWS, ViewInputs
from tasks.geometry import Window
from tasks.protocol import CONDITIONS, MP, ConditionSpec


@contextmanager
def identity_foveation(name: str = "identity_crop") -> Iterator[str]:
    """A foveation whose one view is the whole input, unchanged: it cannot help or hurt,
    so any effect a run reports for it is made by the measurement itself."""

    def whole(v: ViewInputs) -> list[list[Window]]:
        h, w = v.x.shape[-2:]
        return [[Window((0.0, 0.0, float(w), float(h)))] for _ in range(v.x.shape[0])]

    CONDITIONS.add(name, ConditionSpec(name, "foveation", "Identity", views=True, reference=MP))
    VIEWS.add(name, whole)
    try:
        yield name
    finally:
        CONDITIONS.remove(name)
        VIEWS.remove(name)
