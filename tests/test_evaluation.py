"""The evaluation worker on a real network and real photos (no Ray: the plain class)."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from pipeline.config import EvalCfg
from pipeline.data import build_manifest
from pipeline.evaluation import Evaluator, EvalUnit
from pipeline.images import load_batch
from pipeline.models import load_model, resolve_cfg
from pipeline.results import PERTURBATION_SCHEMA, table_from_rows, write_atomic
from pipeline.store import encode
from tasks import attacks
from tasks.criterion import TopK
from tasks.linesearch import LineSearch

pytestmark = pytest.mark.integration

ALL_CONDITIONS = {
    "object_crop", "ten_crop", "three_crop", "saliency_crop",
    "mp_object", "ten_crop_object", "one_crop_object",
}  # fmt: skip


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], Path, float]:
    """Two sample photos attacked with sign on efficientnet_lite0, stored like the attack stage does."""
    rows = build_manifest("sample", None).table.to_pylist()
    rows = [r for r in rows if r["image_id"] in ("chelsea", "coffee")]
    model = load_model("efficientnet_lite0")
    x = load_batch([r["path"] for r in rows], model.cfg)
    y = torch.tensor([r["label"] for r in rows])
    result = attacks.create("sign")(model, x, y)
    assert result.success.all() and result.clean_correct.all()
    perts = []
    for i, r in enumerate(rows):
        enc = encode(result.direction[i])
        perts.append(
            {
                "image_id": r["image_id"],
                "model": "efficientnet_lite0",
                "attack": "sign",
                "scale": float(result.scale[i]),
                "codec": enc.codec,
                "shape": list(enc.shape),
                "norm": enc.norm,
                "data": enc.data,
            }
        )
    path = tmp_path_factory.mktemp("store") / "shard-00000.parquet"
    write_atomic(table_from_rows(perts, PERTURBATION_SCHEMA), path)
    return rows, path, float(result.scale.max())


def unit(rows: list[dict], path: Path, target: str, tasks: tuple[str, ...]) -> EvalUnit:
    return EvalUnit(
        source="efficientnet_lite0", target=target, attack="sign", shard=0,
        image_ids=tuple(r["image_id"] for r in rows), paths=tuple(r["path"] for r in rows),
        labels=tuple(r["label"] for r in rows), sizes=tuple((r["width"], r["height"]) for r in rows),
        boxes=tuple(tuple((b["xmin"], b["ymin"], b["xmax"], b["ymax"]) for b in r["boxes"]) for r in rows),
        perturbations=str(path), source_cfg=resolve_cfg("efficientnet_lite0"),
        tasks=tasks,
    )  # fmt: skip


def evaluator(name: str) -> Evaluator:
    cfg = EvalCfg(dense_check=1)
    search = LineSearch(rtol=cfg.rtol)
    return Evaluator(load_model(name), TopK(5), search, cfg, {"sign": {}}, batch_size=2)


def test_self_pair_covers_every_condition_and_reproduces_the_attack(
    stored: tuple[list[dict], Path, float],
) -> None:
    rows, path, _ = stored
    tasks = ("norm_sweep", "masks", "foveation", "linearity")
    out = evaluator("efficientnet_lite0").evaluate(unit(rows, path, "efficientnet_lite0", tasks))
    tables = {t: out.tables[t].to_pylist() for t in tasks}
    for task in tasks:
        assert all(r["error"] is None for r in tables[task]), tables[task]

    perts = {r["image_id"]: r["scale"] for r in pq.read_table(path).to_pylist()}
    for r in tables["norm_sweep"]:
        assert r["condition"] == "mp" and r["clean_correct"]
        # same model, same direction: the critical scale is the attack's own scale
        assert r["critical_scale"] == pytest.approx(perts[r["image_id"]], rel=EvalCfg().rtol)
        assert r["crit_linf"] == pytest.approx(r["critical_scale"])  # a sign direction has linf 1
    assert {r["condition"] for r in tables["masks"]} == {"object_mask", "background_mask"}
    for r in tables["masks"]:
        assert r["crit_l1pp"] <= r["crit_linf"] + 1e-9  # a masked sign direction has l1pp < linf
    assert {r["condition"] for r in tables["foveation"]} == ALL_CONDITIONS
    for r in tables["foveation"]:
        assert r["critical_scale"] >= 0 and r["n_forward"] > 0
    checked = [r for r in tables["norm_sweep"] if r["dense_mismatch"] is not None]
    assert len(checked) == 1  # dense_check=1 image per shard
    for r in tables["linearity"]:
        assert len(r["response"]) == len(r["alone"]) == len(EvalCfg().alphas)
        assert r["response"][0] == pytest.approx(0.0, abs=1e-4)  # a = 0: f(x) - f(x)
        assert math.isfinite(r["err_interpolation"]) and math.isfinite(r["err_alone"])
        assert r["fov_object_image"] is not None and r["fov_one_crop_image"] is not None
    assert out.object_perturbations is not None
    assert set(out.object_perturbations.column("attack").to_pylist()) == {"sign.object"}


def test_cross_pair_maps_the_direction_onto_another_input_size(
    stored: tuple[list[dict], Path, float],
) -> None:
    rows, path, _ = stored
    out = evaluator("efficientnet_lite1").evaluate(
        unit(rows, path, "efficientnet_lite1", ("norm_sweep",))
    )
    table = out.tables["norm_sweep"].to_pylist()
    assert [r["target"] for r in table] == ["efficientnet_lite1"] * 2
    for r in table:
        assert r["error"] is None and r["condition"] == "mp"
        assert r["critical_scale"] > 0  # lite1 classifies both correctly clean
