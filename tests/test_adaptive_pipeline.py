"""The ``adaptive`` evaluation task through the evaluation worker (the plain class, no Ray):
rows, EOT accounting, the adaptive-gain summary and its finding. A tiny untrained network
keeps it cheap: the science is checked in tests/test_adaptive.py."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest
import torch

from dashboards.figures.security import adaptive_gain_heatmaps, security_curves
from pipeline.config.benchmark import EvalCfg
from pipeline.data import build_manifest
from pipeline.models.image_cache import ImageCache
from pipeline.models.images import load_batch
from pipeline.models.networks import load_model
from pipeline.results.codec import record, roundtrip
from pipeline.results.partitions import write_committed
from pipeline.results.tables import PERTURBATION_SCHEMA, perturbation_partition, table_from_rows
from pipeline.stages.eval_unit import EvalUnit
from pipeline.stages.eval_worker import Evaluator
from pipeline.stages.progress import ProgressTarget
from pipeline.summary.adaptive import adaptive_curves, adaptive_summary, masking_warnings
from pipeline.summary.findings import findings
from pipeline.summary.report_data import ReportData
from tasks import attacks
from tasks.criterion import TopK
from tasks.linesearch import LineSearch
from tests.test_progress import RecordingBoard

pytestmark = pytest.mark.integration

NET = "untrained_timm:test_convnext3"
SIZE = {"input_size": [48, 48]}
STORE = perturbation_partition(NET, "sign")
#: An untrained network's top-1 moves when the image is cropped; its top-100 keeps the label.
TOP = TopK(100)


def test_the_adaptive_task_attacks_every_foveation_through_itself(tmp_path: Path) -> None:
    rows = [r for r in build_manifest("sample", None).table.to_pylist() if r["boxes"]][:3]
    model = load_model(NET, SIZE)
    x = load_batch([r["path"] for r in rows], model.cfg)
    with torch.no_grad():  # an untrained network: its own top-1 is the label it must keep
        labels = model(x).argmax(1)
    attack = attacks.create("sign", criterion=TOP, line_search=LineSearch(rtol=1e-3))
    attack.quantize = roundtrip
    mp = attack(model, x, labels)
    perts = [
        record(r["image_id"], NET, "sign", "mp", float(mp.scale[i]), mp.direction[i])
        for i, r in enumerate(rows)
        if bool(mp.success[i]) and bool(mp.clean_correct[i])
    ]
    assert perts
    write_committed(tmp_path, STORE, 0, table_from_rows(perts, PERTURBATION_SCHEMA))
    unit = EvalUnit(
        source=NET, target=NET, attack="sign", shard=0,
        image_ids=tuple(r["image_id"] for r in rows), paths=tuple(r["path"] for r in rows),
        labels=tuple(int(v) for v in labels), sizes=tuple((r["width"], r["height"]) for r in rows),
        boxes=tuple(tuple((b["xmin"], b["ymin"], b["xmax"], b["ymax"]) for b in r["boxes"]) for r in rows),
        run_dir=str(tmp_path), perturbations=STORE, target_attacks="", source_cfg=model.cfg,
        tasks=("foveation", "adaptive"),
    )  # fmt: skip
    settings = EvalCfg(
        crops=("object_crop", "three_crop"), eot_draws=3, fresh_draws=7, dense_check=0
    )
    made = attacks.create("sign", criterion=TOP)
    ev = Evaluator(model, TOP, settings, lambda _: made, ImageCache(), batch_size=3)
    board = RecordingBoard()
    out = ev.evaluate(unit, ProgressTarget(board, 0))
    # one batch of 3 images in 6 steps: the conditions, then each of the 5 foveations
    shown = [p.images for _, p in board.history]
    assert shown == pytest.approx([3 * k / 6 for k in range(1, 6)] + [3.0]), shown
    adaptive = pl.from_arrow(out.tables["adaptive"])
    assert isinstance(adaptive, pl.DataFrame)
    assert adaptive["error"].is_null().all()
    assert adaptive["clean_correct"].sum() >= 5 and adaptive["success"].sum() >= 2
    assert set(adaptive["condition"]) == {
        "object_crop", "three_crop", "random_resized_crop", "ten_crop_object", "one_crop_object"
    }  # fmt: skip
    assert adaptive.height == 5 * len(rows)  # every image has a box: every foveation
    for r in adaptive.to_dicts():
        random_views = r["condition"] in ("three_crop", "random_resized_crop", "one_crop_object")
        assert r["random_views"] == random_views
        if random_views:  # EOT over 3 draws, judged on 7 fresh ones (never the attack's)
            assert r["fresh_draws"] == 7
            assert r["fresh_ci_low"] <= r["fresh_fooled"] <= r["fresh_ci_high"]
            assert (
                r["success"] == (r["clean_correct"] and r["fresh_fooled"] > 0.5) or not r["success"]
            )
            assert 0 <= r["holdout_fooled"] <= 1  # independent draws, at the same perturbation
            if r["success"]:  # the fresh search looked at least once, then judged twice
                per_draw = 3 if r["condition"] == "three_crop" else 1
                assert r["n_image_forwards"] >= 3 * 7 * per_draw
        crops = {"object_crop": 1, "three_crop": 9, "random_resized_crop": 3}.get(
            r["condition"], 10
        )  # MP-Object: the ten views (1 random crop of them: their expectation)
        assert r["n_image_forwards"] >= crops  # every crop of every draw is a network input
        if r["success"]:
            assert 0 < r["crit_linf"] < math.inf
            assert r["noise_fooled"] is not None  # the noise check ran at the attack's norm
        else:
            assert r["noise_fooled"] is None
    crit = pl.from_arrow(out.tables["foveation"])
    assert isinstance(crit, pl.DataFrame)
    summary = adaptive_summary(adaptive, crit, rtol=0.05)
    assert set(summary["condition"]) == set(adaptive["condition"])
    checks = {"check_unreached", "check_weaker_than_transfer", "check_noise_not_weaker"}
    assert {"adaptive_gain_median", "transferred_gain_median", *checks} <= set(summary.columns)
    noisy = adaptive.filter(pl.col("clean_correct") & pl.col("noise_fooled").fill_null(False))
    assert summary["check_noise_not_weaker"].sum() == noisy.height
    assert isinstance(masking_warnings(summary), list)
    points = {NET: {"sign": {"norm": "linf", "values": [5.3], "primary": 5.3}}}
    f = findings(crit, pl.DataFrame(), points, 0.05, 0.05, None, adaptive)
    gains = f.filter(pl.col("claim_id").str.ends_with("_adaptive_gain"))
    assert gains.height >= 1 and set(gains["family"]) == {"primary"}
    grids = {"linf": (0.0, 1.0, 2.0, 5.0, 10.0, 30.0)}
    security = adaptive_curves(adaptive, grids)
    assert set(security["condition"]) == set(adaptive["condition"])
    at_zero = security.filter(pl.col("value") == 0.0)
    for r in at_zero.to_dicts():  # at norm 0: the foveation's clean accuracy on these images
        rows_c = adaptive.filter(pl.col("condition") == r["condition"])
        assert r["accuracy"] == pytest.approx(rows_c["clean_correct"].mean())
    data = ReportData(
        protocol={"adaptive_curves": security, "curves": pl.DataFrame(), "adaptive": summary},
    )
    (figure,) = security_curves(data)
    assert figure.section == "Adaptive foveation" and figure.data[:4] == b"\x89PNG"
    (heat,) = adaptive_gain_heatmaps(data)
    assert heat.name == "adaptive_gain_sign" and heat.data[:4] == b"\x89PNG"


def test_an_attack_split_to_bound_its_inputs_gives_what_one_call_gives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """EOT views hold many crops per image; the task attacks a few images at a time so one
    composite query stays under a bound (an EOT batch was killed for memory otherwise).
    Images are independent, so the split changes nothing."""
    from pipeline.stages import eval_adaptive
    from tasks.geometry import Window
    from tasks.views import CropView
    from tests.linear import random_linear

    model, x = random_linear(5, shape=(3, 12, 12), seed=2)
    labels = model(x).argmax(1)
    windows = [[Window((1.0, 1.0, 11.0, 11.0)), Window((0.0, 2.0, 12.0, 12.0), flip=True)]] * 16
    case = eval_adaptive.Case(
        rows=list(range(16)), x=x, labels=labels, reference={}, has_reference=labels >= 0,
        view=CropView.of(windows, (12, 12)), views_per_query=[2] * 16, fresh=None,
    )  # fmt: skip
    sign = attacks.create("sign", criterion=TopK(1))
    whole = eval_adaptive._attack_in_chunks(sign, model, case)
    monkeypatch.setattr(eval_adaptive, "MAX_INPUTS_PER_CALL", 6)  # 3 images per call
    split = eval_adaptive._attack_in_chunks(sign, model, case)
    torch.testing.assert_close(split.perturbation, whole.perturbation)
    assert torch.equal(split.success, whole.success) and split.n_forward.shape == (16,)


def test_the_adaptive_task_attacks_only_the_foveations_asked_for() -> None:
    """eval.adaptive_foveations picks, in the run's order; unset, every one of the run."""
    from pipeline.stages.eval_adaptive import adaptive_foveations

    crops = ("object_crop", "three_crop")
    every = adaptive_foveations(EvalCfg(crops=crops))
    assert every == [*crops, "random_resized_crop", "ten_crop_object", "one_crop_object"]
    asked = EvalCfg(crops=crops, adaptive_foveations=("one_crop_object", "three_crop"))
    assert adaptive_foveations(asked) == ["three_crop", "one_crop_object"]
    fewer = EvalCfg(crops=crops, object_crops=("one_crop_object",))  # MP-Object's, as asked
    assert adaptive_foveations(fewer) == [*crops, "random_resized_crop", "one_crop_object"]


def test_a_masking_warning_names_the_black_box_only_where_it_was_measured() -> None:
    """A run of one network has no black box: its warning must not count one as 0."""
    row = {
        "condition": "object_crop", "model": "m", "attack": "sign", "n": 4,
        "check_unreached": 1, "check_weaker_than_transfer": 0, "check_noise_not_weaker": 0,
    }  # fmt: skip
    alone = masking_warnings(pl.DataFrame([{**row, "check_black_box_stronger": None}]))
    assert len(alone) == 1 and "black box" not in alone[0]
    (crossed,) = masking_warnings(pl.DataFrame([{**row, "check_black_box_stronger": 2}]))
    assert "2 where another network's MP (black box) fooled it more cheaply" in crossed
