"""The attack stage's unit of work: consecutive shards of images for one model, and its output.

A unit is usually one shard; when shards are smaller than the batch size, the
planner joins consecutive ones (with the same missing tasks) so every batch is
full, and the writer splits the rows back into their shards.
"""

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
    sizes: tuple[int, ...] = ()  # images of each shard from ``shard`` on (empty: one shard)

    @property
    def key(self) -> str:
        """Identity of the unit in logs and retry counts."""
        last = self.shard + max(1, len(self.sizes)) - 1
        tail = f"..{last:05d}" if last != self.shard else ""
        return f"{self.model}/shard-{self.shard:05d}{tail}"

    def shards(self) -> list[tuple[int, tuple[str, ...]]]:
        """(shard index, its image ids) for every shard of the unit."""
        sizes = self.sizes or (len(self.image_ids),)
        out, lo = [], 0
        for k, n in enumerate(sizes):
            out.append((self.shard + k, self.image_ids[lo : lo + n]))
            lo += n
        return out


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
    load_seconds: float = (
        0.0  # a pooled actor loading the network first (pipeline/stages/model_pool.py)
    )
