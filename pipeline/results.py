"""Result tables: schemas, the contract layout and atomic shard files.

DESIGN.md "Results" is the contract: every table carries ``schema_version``,
rows are keyed by ``image_id``, and a shard file exists only when complete
(written to a temporary name in the same directory, then renamed), so a rerun
can trust any shard it finds.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tasks.protocol import MP, OBJECT

SCHEMA_VERSION = 2  # 2: evaluation rows over all images, received norms, set-up column

ATTACK_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("label", pa.int64()),
        ("model", pa.string()),
        ("attack", pa.string()),
        ("criterion", pa.string()),
        ("success", pa.bool_()),
        ("scale", pa.float64()),
        ("l1pp", pa.float64()),
        ("l2", pa.float64()),
        ("linf", pa.float64()),
        ("adv_label", pa.int64()),
        ("clean_correct", pa.bool_()),
        ("clean_label", pa.int64()),
        ("n_forward", pa.int64()),
        ("n_backward", pa.int64()),
        ("seconds", pa.float64()),
        ("error", pa.string()),
        ("schema_version", pa.int32()),
    ]
)

CLEAN_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("label", pa.int64()),
        ("model", pa.string()),
        ("top1_correct", pa.bool_()),
        ("top5_correct", pa.bool_()),
        ("pred_label", pa.int64()),
        ("true_logit", pa.float64()),
        ("margin", pa.float64()),  # true logit minus the best other logit
        ("x_l2", pa.float64()),  # the image's own norms, 0..255 units (Balda's rho1)
        ("x_linf", pa.float64()),
        ("fo_l2", pa.float64()),  # first-order distance L(x) / ||grad L||_q (rho2)
        ("fo_linf", pa.float64()),
        ("error", pa.string()),
        ("schema_version", pa.int32()),
    ]
)

#: Peck's certified lower bound per image (task ``bounds``); ``error`` says which
#: layer a network has that no rule covers (then ``bound_l2`` is null).
BOUNDS_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("label", pa.int64()),
        ("model", pa.string()),
        ("predicted", pa.int64()),  # the top-1 class the bound protects
        ("bound_l2", pa.float64()),  # 0..255 units
        ("layers", pa.list_(pa.string())),  # layer inputs, output side first
        ("kappas", pa.list_(pa.float64())),  # the bound there, in that layer's input units
        ("error", pa.string()),
        ("schema_version", pa.int32()),
    ]
)

PERTURBATION_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("model", pa.string()),
        ("attack", pa.string()),
        ("setup", pa.string()),  # mp: the attack on the input; object: on the object crop
        ("scale", pa.float64()),
        ("codec", pa.string()),
        ("shape", pa.list_(pa.int32())),
        ("norm", pa.float64()),
        ("data", pa.binary()),
        ("schema_version", pa.int32()),
    ]
)

#: One row per (image, condition) of the evaluation stage (evals/<task>/..., DESIGN.md):
#: every image of the shard (with a box, for box conditions), whether or not the source
#: has a perturbation for it. Norms are of the perturbation actually added, in the frame
#: the target sees (``crit_*``: the received norm for cross pairs) and in the source's
#: frame at the same scale (``src_*``).
CRITICAL_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("label", pa.int64()),
        ("source", pa.string()),
        ("target", pa.string()),
        ("attack", pa.string()),
        ("setup", pa.string()),  # whose perturbation: mp | object (MP-Object)
        ("condition", pa.string()),
        ("has_perturbation", pa.bool_()),  # false: evaluated unperturbed at every norm
        ("clean_correct", pa.bool_()),  # correct under the condition at norm 0
        ("critical_scale", pa.float64()),  # 0: wrong at norm 0; inf: not fooled up to the cap
        ("scale_lo", pa.float64()),  # largest scale observed correct below it
        ("censored", pa.bool_()),  # perturbed, and not fooled up to the largest grid norm
        ("crit_l1pp", pa.float64()),
        ("crit_l2", pa.float64()),
        ("crit_linf", pa.float64()),
        ("src_l1pp", pa.float64()),
        ("src_l2", pa.float64()),
        ("src_linf", pa.float64()),
        ("n_image_forwards", pa.int64()),  # network inputs spent on this row (views counted)
        ("n_views", pa.int64()),  # network inputs per query of the condition (its crops)
        ("seconds", pa.float64()),  # the batch's wall time, shared by image-forwards
        ("dense_mismatch", pa.int64()),  # dense-grid points disagreeing; null: not sampled
        ("dense_earlier", pa.bool_()),  # the dense grid found an earlier crossing
        ("autocast_agrees", pa.bool_()),  # bf16 runs: the fp32 scan agrees; null: not checked
        ("error", pa.string()),
        ("schema_version", pa.int32()),
    ]
)

#: Fig. 6's columns per set-up: ``<prefix>_image`` and ``<prefix>_perturbation``.
EFFECT_COLUMNS = {MP: "fov_object", OBJECT: "fov_one_crop"}

LINEARITY_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("label", pa.int64()),
        ("source", pa.string()),
        ("target", pa.string()),
        ("attack", pa.string()),
        ("alphas", pa.list_(pa.float64())),
        ("response", pa.list_(pa.float64())),  # f(x + a e*) - f(x), true-class logit
        ("alone", pa.list_(pa.float64())),  # f(a e*) (on the normalisation mean)
        ("err_interpolation", pa.float64()),
        ("err_alone", pa.float64()),
        ("fov_object_image", pa.float64()),  # f(x) - f(T(x)), T = object crop
        ("fov_object_perturbation", pa.float64()),  # (f(x+e)-f(x)) - (f(T(x+e))-f(T(x)))
        ("fov_one_crop_image", pa.float64()),  # same, MP-Object set-up, T = 1 crop
        ("fov_one_crop_perturbation", pa.float64()),
        ("n_image_forwards", pa.int64()),
        ("seconds", pa.float64()),
        ("error", pa.string()),
        ("schema_version", pa.int32()),
    ]
)


def eval_shard_path(
    run_dir: Path, task: str, source: str, target: str, attack: str, shard: int
) -> Path:
    return (
        run_dir
        / "evals"
        / task
        / f"source={source}"
        / f"target={target}"
        / f"attack={attack}"
        / shard_name(shard)
    )


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.parquet"


def attack_shard_path(run_dir: Path, model: str, attack: str, shard: int) -> Path:
    return run_dir / "attacks" / f"model={model}" / f"attack={attack}" / shard_name(shard)


def perturbation_shard_path(
    run_dir: Path, model: str, attack: str, shard: int, setup: str = MP
) -> Path:
    """``perturbations/`` (the attack stage's) or ``object_perturbations/`` (MP-Object's)."""
    root = "perturbations" if setup == MP else f"{setup}_perturbations"
    return run_dir / root / f"model={model}" / f"attack={attack}" / shard_name(shard)


def clean_shard_path(run_dir: Path, model: str, shard: int) -> Path:
    return run_dir / "clean" / f"model={model}" / shard_name(shard)


def bounds_shard_path(run_dir: Path, model: str, shard: int) -> Path:
    return run_dir / "bounds" / f"model={model}" / shard_name(shard)


def table_from_rows(rows: Iterable[dict[str, object]], schema: pa.Schema) -> pa.Table:
    """Rows (dicts) -> a table of ``schema``, stamping ``schema_version``."""
    rows = [{**r, "schema_version": SCHEMA_VERSION} for r in rows]
    return pa.Table.from_pylist(rows, schema=schema)


def write_atomic(table: pa.Table, path: Path, metadata: dict[bytes, bytes] | None = None) -> None:
    """Write Parquet so that ``path`` exists only when the file is complete.

    ``metadata`` joins the schema's (the run's provenance, on every shard).
    """
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def is_complete(path: Path, image_ids: Iterable[str]) -> bool:
    """A finished shard covers exactly the expected images (guards a changed manifest).

    Sets, not lists: evaluation shards hold several rows (conditions) per image.
    """
    if not path.is_file():
        return False
    try:
        found = pq.read_table(path, columns=["image_id"]).column("image_id").to_pylist()
    except (OSError, pa.ArrowException):
        return False
    return set(found) == set(image_ids)
