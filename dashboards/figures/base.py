"""The figure record every builder returns, and the helpers shared by builders."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from pipeline.summary.axes import native_norm


@dataclass(frozen=True)
class Figure:
    """One rendered figure: ``name`` is its file stem, ``caption`` one sentence for readers."""

    name: str
    section: str
    title: str
    caption: str
    data: bytes
    fmt: str = "png"

    @property
    def filename(self) -> str:
        return f"{self.name}.{self.fmt}"

    @property
    def mime(self) -> str:
        return "image/jpeg" if self.fmt == "jpg" else "image/png"


def safe(name: str) -> str:
    """File-name-safe stem (model names may hold ``:`` as in ``timm:resnet50``)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def attacks_of(df: pl.DataFrame, column: str = "attack") -> list[str]:
    return sorted(df[column].unique().to_list()) if df.height else []


def norm_for(attack: str) -> str:
    """The norm the paper plots an attack's results against (BFGS: l1pp, Sign: linf)."""
    return native_norm(attack)


def max_n(df: pl.DataFrame) -> int:
    """Largest image count among a panel's points (for "n≤..." in titles)."""
    return int(df["n"].to_numpy().max(initial=0)) if df.height else 0
