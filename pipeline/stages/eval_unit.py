"""The evaluation stage's unit of work: one shard of one (source, target, attack) pair."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from pipeline.models.networks import PreprocessCfg
from tasks.geometry import Box


@dataclass(frozen=True)
class EvalUnit:
    """Every image of a shard (not only those with a perturbation: the paper's population)."""

    source: str
    target: str
    attack: str
    shard: int
    image_ids: tuple[str, ...]
    paths: tuple[str, ...]
    labels: tuple[int, ...]
    sizes: tuple[tuple[int, int], ...]  # (width, height) of each original image
    boxes: tuple[tuple[Box, ...], ...]  # original pixel edges
    run_dir: str  # the run's location (local path or URI): the actor reads and writes there
    perturbations: str  # the source's perturbation partition (this shard's rows are read)
    target_attacks: str  # the target's attack partition (its clean correctness), "" if none
    source_cfg: PreprocessCfg
    tasks: tuple[str, ...]
    #: the target's evaluation points for this attack (its norm axis): they join the search
    #: grid, so every finding's verdict at a point is exact, whatever the grid
    points: tuple[float, ...] = ()

    @property
    def model(self) -> str:
        """The network that evaluates this unit (the scheduler routes on it)."""
        return self.target

    @property
    def key(self) -> str:
        return f"{self.source}->{self.target}/{self.attack}/shard-{self.shard:05d}"


@dataclass
class EvalOutput:
    unit: EvalUnit
    tables: dict[str, pa.Table] = field(default_factory=dict)  # task -> rows
    object_perturbations: pa.Table | None = None  # MP-Object directions of self pairs
    seconds: float = 0.0
    forward_calls: int = 0  # network calls of the unit (batched rounds)
    image_forwards: int = 0  # network inputs (crops counted) of the unit
    halvings: int = 0  # batches split after running out of memory
    load_seconds: float = (
        0.0  # a pooled actor loading the network first (pipeline/stages/model_pool.py)
    )
