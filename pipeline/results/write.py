"""Writing result pieces where the run lives, from the actor that computed them.

Actors write their own pieces (local disk or object store) and then the shards'
commit records, so the driver never handles perturbation bytes: each stage lays out its
unit's pieces (``write`` of its declaration, pipeline/stages/stage.py) through this writer
and hands the driver the unit's small row tables without them. Order matters for resume:
every piece of a unit first, the commit records last, so a committed shard always has its
store and its rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from pipeline.results import provenance
from pipeline.results.partitions import commit, piece_name
from pipeline.results.storage import Location, write_table


class ResultWriter:
    """Writes pieces of one run (``run_dir``: a local folder or an object-store URI)."""

    def __init__(self, run_dir: str | Location, prov: dict[str, Any]) -> None:
        self.run_dir = Location(run_dir)
        self.metadata = provenance.schema_metadata(prov)
        self.objects = 0  # pieces and records written (the scale benchmark counts them)

    def piece(self, partition: str, shard: int, table: pa.Table) -> None:
        """One shard's piece of a partition, stamped with the run's provenance."""
        write_table(table, self.run_dir / partition / piece_name(shard), self.metadata)
        self.objects += 1

    def commit(self, partitions: Sequence[str], shard: int, image_ids: Sequence[str]) -> None:
        """The shard's commit record in each partition: write them after every piece."""
        for partition in partitions:
            commit(self.run_dir, partition, shard, image_ids)
            self.objects += 1
