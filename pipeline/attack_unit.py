"""The attack stage's unit of work: one shard of images for one model, and what it returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa


@dataclass(frozen=True)
class AttackUnit:
    """One shard of images for one model: which tasks are still missing."""

    model: str
    shard: int
    image_ids: tuple[str, ...]
    paths: tuple[str, ...]
    labels: tuple[int, ...]
    attacks: tuple[str, ...]  # attack names still to compute for this shard
    clean: bool
    bounds: bool = False  # Peck's certified lower bounds still to compute

    @property
    def key(self) -> str:
        """Identity of the unit in logs and retry counts."""
        return f"{self.model}/shard-{self.shard:05d}"


@dataclass
class AttackOutput:
    unit: AttackUnit
    clean: pa.Table | None
    attacks: dict[str, tuple[pa.Table, pa.Table]] = field(default_factory=dict)
    bounds: pa.Table | None = None
    seconds: float = 0.0
    worker: str = ""
    pid: int = 0  # process of the actor that computed it (fault-injection tests kill it)
    node_id: str = ""  # Ray node it ran on ("" outside Ray)
    halvings: int = 0  # times a batch was split after running out of memory
