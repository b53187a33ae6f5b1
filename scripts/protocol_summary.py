"""Print a protocol run's Table 1, Table 2, findings and dense check from its committed rows.

Works mid-run too (the tables are aggregated from the committed evaluation shards, as
``foveabench report`` does when summaries are missing):

    python scripts/protocol_summary.py results/protocol [configs/protocol.yaml]
"""

from __future__ import annotations

import json
import sys

import polars as pl

from pipeline.config.benchmark import load_config
from pipeline.results.storage import Location
from pipeline.summary.write import protocol_tables

FOVEATIONS = ["mp", "object_crop", "ten_crop", "saliency_crop", "three_crop"]


def side_by_side(paper: pl.DataFrame, best: pl.DataFrame) -> pl.DataFrame:
    """Table 1's medians per (norm, model, ratio): the paper's attack of that norm beside
    the run's best reference on it (issue 23.5), with the attacks that supplied it."""
    if best.is_empty():
        return pl.DataFrame()
    keys = ["norm", "model", "ratio"]
    return (
        paper.select(*keys, "attack", pl.col("median").alias("paper_median"))
        .join(best.select(*keys, pl.col("median").alias("best_median"), "from_attacks"), on=keys)
        .sort(keys)
    )


def main(argv: list[str]) -> int:
    run = Location(argv[0])
    cfg = load_config(argv[1] if len(argv) > 1 else "configs/protocol.yaml")
    pl.Config.set_tbl_rows(80)
    pl.Config.set_tbl_cols(20)
    pl.Config.set_tbl_width_chars(200)
    t = protocol_tables(run, cfg.eval)
    print(
        t["table1"]
        .select("attack", "model", "ratio", "n", "median", "median_lower_bound", "ci_low")
        .with_columns(t["table1"]["ci_high"], t["table1"]["share_censored"])
        .sort("attack", "ratio", "model")
    )
    print(side_by_side(t["table1"], t["table1_best"]))
    t2 = t["table2"].filter(pl.col("condition").is_in(FOVEATIONS))
    print(t2.pivot(on="condition", index=["attack", "model", "point", "value"], values="accuracy"))
    f = t["findings"]
    print(f.group_by("family", "verdict").len().sort("family", "verdict"))
    primary = f.filter(pl.col("family") == "primary")
    print(primary.select("claim_id", "model", "source", "attack", "value", "n", "n_discordant", "effect", "p_adjusted", "verdict"))  # fmt: skip
    d = t["dense_check"]
    print(d.group_by("condition").agg(pl.col("n_checked", "n_mismatch", "n_earlier").sum()))
    print(json.dumps(json.loads((run / "eval_points.json").read_text()), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
