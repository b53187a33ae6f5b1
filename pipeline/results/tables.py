"""Result tables: schemas and the contract layout of their partitions.

The README's "Results" is the contract: every table carries ``schema_version``,
rows are keyed by ``image_id``. A partition folder holds shard pieces while a
stage runs and one compacted file after it (pipeline/results/partitions.py); a shard is
done when its commit record exists.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from pipeline.results.catalogue import result_dir
from tasks.protocol import EFFECT_COLUMNS as EFFECT_COLUMNS  # the linearity table's Fig. 6
from tasks.protocol import MP

SCHEMA_VERSION = 3  # 3: censoring past the grid, per-image views, the line-search check

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

#: One row per (image, condition) of the evaluation stage (evals/<task>/..., README "Results"):
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
        ("critical_scale", pa.float64()),  # 0: wrong at norm 0; inf: never fooled (censored)
        ("scale_lo", pa.float64()),  # largest scale observed correct below it
        #: perturbed, correct, and never fooled: up to the largest grid norm for grid-only
        #: conditions, up to where the perturbation can grow no further for refined ones
        ("censored", pa.bool_()),
        ("crit_l1pp", pa.float64()),
        ("crit_l2", pa.float64()),
        ("crit_linf", pa.float64()),
        ("src_l1pp", pa.float64()),
        ("src_l2", pa.float64()),
        ("src_linf", pa.float64()),
        #: censored rows: the added norms at the largest scale tried (the critical norm is
        #: above them: a lower bound); null otherwise
        ("max_tried_l1pp", pa.float64()),
        ("max_tried_l2", pa.float64()),
        ("max_tried_linf", pa.float64()),
        ("views", pa.list_(pa.string())),  # the crops / MP-Object views used (drawn per image)
        ("background_share", pa.float64()),  # MP-Object views: mean share outside the box
        #: a set-up's base condition (MP, MP-Object, self pairs): a grid point below the
        #: attack stage's own scale fools the image (its line search missed a crossing)
        ("line_search_earlier", pa.bool_()),
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


#: One row per (image, foveation) of the ``adaptive`` task: the minimum perturbation of
#: the foveated network itself, in the input's frame and norm units, beside the attack
#: stage's MP norms of the same image (pipeline/stages/eval_adaptive.py).
ADAPTIVE_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("label", pa.int64()),
        ("source", pa.string()),
        ("target", pa.string()),
        ("attack", pa.string()),
        ("condition", pa.string()),  # the foveation attacked
        ("random_views", pa.bool_()),  # drawn at random: attacked with EOT, judged fresh
        ("has_perturbation", pa.bool_()),  # the attack stage found MP for the image
        ("clean_correct", pa.bool_()),  # correct under the foveation, unperturbed
        ("success", pa.bool_()),  # the adaptive attack fooled it (random: on fresh draws)
        ("critical_scale", pa.float64()),
        ("crit_l1pp", pa.float64()),  # the adaptive perturbation's norms (inf: not fooled)
        ("crit_l2", pa.float64()),
        ("crit_linf", pa.float64()),
        ("mp_l1pp", pa.float64()),  # the attack stage's MP of the image (inf: none)
        ("mp_l2", pa.float64()),
        ("mp_linf", pa.float64()),
        ("eot_draws", pa.int64()),  # draws averaged per gradient step (random views)
        ("fresh_draws", pa.int64()),  # fresh draws the success was judged on
        ("fresh_fooled", pa.float64()),  # share of fresh draws misclassified
        ("fresh_ci_low", pa.float64()),
        ("fresh_ci_high", pa.float64()),
        #: share of independent draws (never searched on) misclassified at the same
        #: perturbation: how far the fresh search's choice of scale carries
        ("holdout_fooled", pa.float64()),
        #: random noise of the adaptive perturbation's norm fooled the foveated network too
        #: (a gradient-masking sign; null where the attack did not succeed)
        ("noise_fooled", pa.bool_()),
        ("n_image_forwards", pa.int64()),  # network inputs (every crop of every draw counted)
        ("n_image_backwards", pa.int64()),
        ("seconds", pa.float64()),
        ("error", pa.string()),
        ("schema_version", pa.int32()),
    ]
)


# Partition folders, built by each table's declared keys (pipeline/results/catalogue.py).


def eval_partition(task: str, source: str, target: str, attack: str) -> str:
    return result_dir("evals").partition(task=task, source=source, target=target, attack=attack)


def attack_partition(model: str, attack: str) -> str:
    return result_dir("attacks").partition(model=model, attack=attack)


def perturbation_partition(model: str, attack: str, setup: str = MP) -> str:
    """``perturbations/`` (the attack stage's) or ``object_perturbations/`` (MP-Object's)."""
    root = "perturbations" if setup == MP else f"{setup}_perturbations"
    return result_dir(root).partition(model=model, attack=attack)


def clean_partition(model: str) -> str:
    return result_dir("clean").partition(model=model)


def bounds_partition(model: str) -> str:
    return result_dir("bounds").partition(model=model)


#: The result tables, each a folder of partitions (README "Results").


def table_from_rows(rows: Iterable[dict[str, object]], schema: pa.Schema) -> pa.Table:
    """Rows (dicts) -> a table of ``schema``, stamping ``schema_version``."""
    rows = [{**r, "schema_version": SCHEMA_VERSION} for r in rows]
    return pa.Table.from_pylist(rows, schema=schema)
