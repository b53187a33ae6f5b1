"""Best-known minimum distances across runs, and each attack's AttackBench optimality.

Every number of the protocol is measured on a "minimum" perturbation; how minimal it is
is only known against the smallest perturbation any attack ever found for the same
image on the same network (Cinà et al. 2024's best-known distances). Keys make runs on
other machines and other days merge: the SHA-256 of the image's bytes, and of the
model's weights source with its resolved preprocessing. A run writes the best-known
distances of its own images to ``summary/best_known.parquet`` (merged with the store
named by the config's ``best_known``, a folder or object-store URI, which it updates),
and each (model, attack, norm)'s optimality against them, with its robust-accuracy
curve's areas, to ``summary/optimality.parquet``.
"""

from __future__ import annotations

import hashlib
import json
import math

import polars as pl

from pipeline.results.catalogue import MANIFEST
from pipeline.results.storage import Location, RunDir, location, read_table, write_table
from pipeline.summary.attacks import read_results
from pipeline.summary.optimality import optimality
from tasks.norms import NORMS

STORE_FILE = "best_known.parquet"
KEYS = ["image_key", "model_key", "norm"]


def model_key(source: str, preprocess: dict[str, object]) -> str:
    """What makes two runs' distances comparable: the same weights, the same input pixels."""
    text = json.dumps({"weights": source, "preprocess": preprocess}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def image_keys(run_dir: RunDir) -> pl.DataFrame:
    """``image_id -> image_key`` (SHA-256 of the file's bytes) for the run's manifest."""
    manifest = read_table(location(run_dir) / MANIFEST).to_pylist()
    return pl.DataFrame(
        {
            "image_id": [r["image_id"] for r in manifest],
            "image_key": [
                hashlib.sha256(Location(r["path"]).read_bytes()).hexdigest() for r in manifest
            ],
        },
        schema={"image_id": pl.String, "image_key": pl.String},
    )


def run_distances(run_dir: RunDir, model_keys: dict[str, str]) -> pl.DataFrame:
    """One row per (image, model, attack, norm) of the run's attack stage: the minimum
    perturbation's norm (inf: the attack failed; 0: wrong clean), with the keys."""
    attacks = read_results(run_dir, "attacks")
    if attacks is None:
        return pl.DataFrame()
    rows = attacks.filter(pl.col("error").is_null() & pl.col("model").is_in(list(model_keys)))
    if rows.is_empty():
        return pl.DataFrame()
    keyed = rows.join(image_keys(run_dir), on="image_id").with_columns(
        pl.col("model").replace_strict(model_keys).alias("model_key")
    )
    return pl.concat(
        [
            keyed.select(
                "image_id",
                "image_key",
                "model",
                "model_key",
                "attack",
                "clean_correct",
                pl.lit(norm).alias("norm"),
                pl.when(~pl.col("clean_correct"))
                .then(0.0)
                .when(pl.col("success"))
                .then(pl.col(norm))
                .otherwise(math.inf)
                .alias("distance"),
            )
            for norm in NORMS
        ]
    )


def merge_best(*tables: pl.DataFrame) -> pl.DataFrame:
    """The smallest successful distance per (image, model, norm) over every table, with the
    attack (and run) that found it; images an attack never fooled keep inf."""
    found = [t.select(*KEYS, "distance", "attack", "run") for t in tables if t.height]
    if not found:
        return pl.DataFrame()
    return (
        pl.concat(found)
        .sort([*KEYS, "distance", "attack", "run"])
        .group_by(KEYS, maintain_order=True)
        .first()
    )


def optimality_table(distances: pl.DataFrame, best: pl.DataFrame) -> pl.DataFrame:
    """Per (model, attack, norm): AttackBench's optimality of the attack's distances against
    the best-known ones of the same images (1: it is the best known; 0: never fooled)."""
    if distances.is_empty() or best.is_empty():
        return pl.DataFrame()
    joined = distances.join(
        best.select(*KEYS, pl.col("distance").alias("best")), on=KEYS, how="left"
    ).with_columns(pl.col("best").fill_null(pl.col("distance")))
    out = []
    for (model, attack, norm), group in joined.group_by("model", "attack", "norm"):
        score = optimality(
            group["distance"].to_numpy(),
            group["best"].to_numpy(),
            group["clean_correct"].to_numpy(),
        )
        d = group.filter(pl.col("clean_correct"))["distance"]
        out.append(
            {
                "model": model,
                "attack": attack,
                "norm": norm,
                "n": group.height,
                "optimality": score,
                "median_distance": float(d.median()) if d.len() else None,  # type: ignore[arg-type]
                "median_best": float(group.filter(pl.col("clean_correct"))["best"].median())  # type: ignore[arg-type]
                if d.len()
                else None,
            }
        )
    return pl.DataFrame(out).sort(
        "norm", "model", pl.col("optimality"), descending=[False, False, True]
    )


def update_best_known(
    run_dir: RunDir, run_name: str, model_keys: dict[str, str], store: str | None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """This run's best-known table (merged with the store, which is updated) and its
    optimality table; both also written to ``summary/``."""
    distances = run_distances(run_dir, model_keys)
    if distances.is_empty():
        return pl.DataFrame(), pl.DataFrame()
    mine = distances.with_columns(pl.lit(run_name).alias("run"))
    stored = pl.DataFrame()
    if store is not None:
        path = location(store) / STORE_FILE
        if path.is_file():
            found = pl.from_arrow(read_table(path))
            assert isinstance(found, pl.DataFrame)
            stored = found
    merged = merge_best(stored, mine)
    if store is not None:
        write_table(merged.to_arrow(), location(store) / STORE_FILE)
    ours = merged.join(mine.select(KEYS).unique(), on=KEYS)
    table = optimality_table(distances, ours)
    out = location(run_dir) / "summary"
    write_table(ours.to_arrow(), out / "best_known.parquet")
    if table.height:
        write_table(table.to_arrow(), out / "optimality.parquet")
    return ours, table
