"""MP-Object in the object crop's frame: windows, whole-pixel shifts, and the attack's own scale."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pipeline.data import build_manifest
from pipeline.models.image_cache import ImageCache
from pipeline.models.networks import load_model
from tasks import attacks
from tasks.criterion import TopK
from tasks.evaluation.conditions import ConditionBatch, ObjectView
from tasks.evaluation.engine import Grids, evaluate
from tasks.geometry import image_rng
from tasks.linesearch import LineSearch
from tasks.mp_object import (
    background_share,
    object_windows,
    one_object_window,
    shift_perturbation,
)
from tasks.probing import ScoreQueue
from tasks.protocol import CONDITIONS

BOX = (100.0, 50.0, 300.0, 250.0)  # 200 x 200 in a 500 x 375 image


def checkerboard(h: int = 224, w: int = 224) -> torch.Tensor:
    i, j = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return ((i + j) % 2 * 2 - 1).float().expand(3, h, w).clone()


@pytest.mark.unit
def test_windows_keep_the_object_scale_and_take_21_percent_background() -> None:
    views = object_windows(BOX, (500, 375), (224, 224))
    assert len(views) == 10 and [v.flip for v in views] == [False] * 5 + [True] * 5
    for v in views:
        x0, y0, x1, y1 = v.box
        assert (x1 - x0, y1 - y0) == pytest.approx((200.0, 200.0))  # the object's scale
        dx, dy = v.shift  # the content moved by exactly the perturbation's whole-pixel shift
        assert (x0 - BOX[0], y0 - BOX[1]) == pytest.approx((dx * 200 / 224, dy * 200 / 224))
    for v in views[:4]:
        x0, y0, x1, y1 = v.box
        overlap = (200 - abs(x0 - BOX[0])) * (200 - abs(y0 - BOX[1]))
        assert 1 - overlap / 200**2 == pytest.approx(0.21, abs=0.005)
    assert views[4].shift == (0, 0) and views[4].box == BOX
    draws = {
        one_object_window(BOX, (500, 375), (224, 224), image_rng(0, f"i{k}"))[0] for k in range(30)
    }
    assert draws <= set(views) and len(draws) >= 5  # drawn per image, as the paper does


@pytest.mark.unit
def test_windows_stay_inside_the_image() -> None:
    for v in object_windows((0.0, 10.0, 120.0, 375.0), (500, 375), (224, 224)):
        x0, y0, x1, y1 = v.box
        assert x0 >= 0 and y0 >= 0 and x1 <= 500 + 1e-9 and y1 <= 375 + 1e-9


@pytest.mark.unit
def test_a_box_at_the_border_keeps_21_percent_background_on_the_free_axis() -> None:
    """Issue 21.3: a box touching the left edge cannot shift left; its left corner views
    shift further up or down instead, so each still takes ~21% background."""
    box = (0.0, 100.0, 200.0, 300.0)  # touches the left edge, room above and below
    views = object_windows(box, (500, 375), (224, 224))
    corners = [background_share(v.shift, (224, 224)) for v in views[:4]]
    assert all(s == pytest.approx(0.21, abs=0.01) for s in corners), corners
    assert views[0].shift[0] == 0 and abs(views[0].shift[1]) > 25  # y took the rest
    whole = object_windows((0.0, 0.0, 500.0, 375.0), (500, 375), (224, 224))
    assert all(background_share(v.shift, (224, 224)) == 0 for v in whole)  # nowhere to go


@pytest.mark.unit
@pytest.mark.parametrize("shift", [(25, 25), (-25, 25), (25, -25), (-25, -25), (0, 0)])
def test_a_shifted_pattern_keeps_its_energy_inside_the_overlap(shift: tuple[int, int]) -> None:
    e = checkerboard()
    moved = shift_perturbation(e, shift)
    dx, dy = shift
    overlap = e[..., max(dy, 0) : 224 + min(dy, 0), max(dx, 0) : 224 + min(dx, 0)]
    kept = float(moved.pow(2).sum() / overlap.pow(2).sum())
    assert kept >= 0.99  # moved, never resampled
    # the old round trip (shrink into the box, enlarge the window back) keeps a fraction
    small = F.interpolate(e[None], size=(150, 150), mode="bilinear", align_corners=False)
    back = F.interpolate(small, size=(224, 224), mode="bilinear", align_corners=False)[0]
    assert float(back.pow(2).sum() / e.pow(2).sum()) < 0.5


@pytest.mark.integration
def test_the_unshifted_window_gives_back_the_attacks_own_critical_scale() -> None:
    """MP-Object's unshifted view, searched from scratch, finds the attack's scale on the crop."""
    row = next(
        r for r in build_manifest("sample", None).table.to_pylist() if r["image_id"] == "chelsea"
    )
    model = load_model("efficientnet_lite0")
    box = tuple(row["boxes"][0][k] for k in ("xmin", "ymin", "xmax", "ymax"))
    (x_obj,) = ImageCache().windows(row["path"], [box], model.cfg)
    labels = torch.tensor([row["label"]])
    result = attacks.create("sign", line_search=LineSearch(rtol=1e-3))(model, x_obj[None], labels)
    assert bool(result.success[0])
    s_attack = float(result.scale[0])
    unshifted = object_windows(box, (row["width"], row["height"]), model.cfg.input_size)[4]
    cond = ConditionBatch(
        spec=CONDITIONS.get("ten_crop_object"),
        frame="object",
        rows=[0],
        x=x_obj[None],
        d=result.direction,
        labels=labels,
        has_direction=torch.tensor([True]),
        object_views=[[ObjectView(x_obj, unshifted.shift, unshifted.flip)]],
    )
    rtol = 0.01
    grids = Grids({"linf": tuple(float(v) for v in torch.linspace(0, 120, 25))}, rtol=rtol)
    (found,) = evaluate(ScoreQueue(model, 16), [cond], TopK(5), grids, "linf", lambda c: ())
    scale = float(found.scale[0])
    assert float(found.scale_lo[0]) < s_attack * (1 + 1e-3) and scale == pytest.approx(
        s_attack, rel=rtol
    )
