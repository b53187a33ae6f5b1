"""The batched evaluation engine against closed forms on linear models, and against the
reference path (one bracket-and-bisect line search per condition, tasks/critical.py)."""

from __future__ import annotations

import pytest
import torch

from tasks import norms
from tasks.criterion import TopK
from tasks.critical import critical_scales
from tasks.evaluation.conditions import ConditionBatch
from tasks.evaluation.engine import Grids, evaluate
from tasks.geometry import Window, crop_resize
from tasks.linesearch import LineSearch
from tasks.probing import ScoreQueue
from tasks.protocol import CONDITIONS
from tasks.views import CropView
from tests.linear import binary_critical_scale, random_linear

pytestmark = pytest.mark.unit

GRID = tuple(float(v) for v in torch.linspace(0, 60, 31))  # linf 0..60 every 2


def binary() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    model, x = random_linear(2, shape=(3, 16, 16), seed=4)
    labels = model(x).argmax(1)
    w = (model.weight[labels] - model.weight[1 - labels]).view_as(x)
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(5)) < 0.3
    d = torch.where(noise, w.sign(), -w.sign()) * 0.25  # mostly downhill, sometimes not
    return model, x, labels, d


def condition(
    name: str, x: torch.Tensor, d: torch.Tensor, labels: torch.Tensor, **kw: object
) -> ConditionBatch:
    n = x.shape[0]
    return ConditionBatch(
        spec=CONDITIONS.get(name), frame="mp", rows=list(range(n)), x=x, d=d, labels=labels,
        has_direction=torch.ones(n, dtype=torch.bool), **kw,  # type: ignore[arg-type]
    )  # fmt: skip


class CountingQueue(ScoreQueue):
    rounds = 0

    def flush(self) -> None:
        self.rounds += 1
        super().flush()


def test_a_target_wrong_on_every_image_still_answers_its_dense_sample() -> None:
    """No scan has a round to run (every image is wrong at 0, known up front), but the dense
    sample asked its queries: they are answered, not read unanswered."""
    model, x, labels, d = binary()
    wrong = 1 - labels
    cond = condition("mp", x, d, wrong, clean=torch.zeros(x.shape[0], dtype=torch.bool), dense=1)
    grids = Grids({"linf": GRID}, rtol=1e-3, search="bisect")
    (result,) = evaluate(
        ScoreQueue(model, batch_size=7), [cond], TopK(1), grids, "linf", lambda c: ("linf",)
    )
    assert not result.clean_correct.any() and (result.scale == 0).all()
    assert result.dense_mismatch[0] is not None


@pytest.mark.parametrize("search", ["scan", "bisect"])
def test_critical_scales_match_the_binary_critical_scale(search: str) -> None:
    model, x, labels, d = binary()
    window = [Window((1.0, 0.0, 16.0, 15.0))]
    crops = [window] * x.shape[0]
    conds = [condition("mp", x, d, labels), condition("object_crop", x, d, labels, crops=crops)]
    grids = Grids({"linf": GRID}, rtol=1e-3, search=search)
    queue = CountingQueue(model, batch_size=7)
    mp, crop = evaluate(queue, conds, TopK(1), grids, "linf", lambda c: ())
    tx, _ = crop_resize(x, crops, (16, 16))
    td, _ = crop_resize(d, crops, (16, 16))
    for found, expected, clean in (
        (mp, binary_critical_scale(model, x, d, labels), torch.ones(x.shape[0], dtype=torch.bool)),
        (crop, binary_critical_scale(model, tx, td, labels), model(tx).argmax(1) == labels),
    ):
        assert torch.equal(found.clean_correct, clean)
        linf = expected * 0.25  # |d| = 0.25 everywhere, no clipping below 60 (room >= 63)
        inside = clean & torch.isfinite(expected) & (linf < 60)
        assert inside.sum() >= 4
        torch.testing.assert_close(found.scale[inside], expected[inside].float(), rtol=2e-3, atol=0)
        torch.testing.assert_close(
            found.crit["linf"][inside], linf[inside].float(), rtol=2e-3, atol=0
        )
        # past the largest grid norm the ray is followed until the pixels saturate: found
        # there, or censored with the largest scale tried (where clipping stops it growing)
        beyond = clean & torch.isfinite(expected) & ~(linf < 60)
        assert (found.crit["linf"][beyond] >= 60).all()
        never = clean & ~torch.isfinite(expected)
        assert torch.isinf(found.scale[never]).all() and (found.scale_lo[never] > 60 / 0.25).all()
    # both conditions' points of a round share batches: only each round's last one is partial
    assert queue.stats.calls <= queue.stats.images // 7 + queue.rounds


def test_norms_are_those_of_the_perturbation_actually_added() -> None:
    model, x, labels, d = binary()
    x = x.clone()
    x[:, :, :4] = 254.0  # a bright band: the added perturbation clips there
    (found,) = evaluate(
        ScoreQueue(model, 64),
        [condition("mp", x, d, labels)],
        TopK(1),
        Grids({"linf": GRID, "l1pp": (0.0, 1.0, 5.0)}, rtol=1e-3),
        "linf",
        lambda c: (),
    )
    ok = torch.isfinite(found.scale) & (found.scale > 0)
    added = (x + found.scale.view(-1, 1, 1, 1) * d).clamp(0, 255) - x
    torch.testing.assert_close(found.crit["l1pp"][ok], norms.l1pp(added)[ok])
    assert (found.crit["l1pp"][ok] < found.scale[ok] * 0.25).all()  # clipping removed some


def test_the_engine_agrees_with_the_reference_line_search() -> None:
    """Issue 12: the grid scan and the old per-condition bracket-and-bisect give the same curves."""
    model, x, labels, d = binary()
    view = CropView.of(
        [[Window((0.0, 0.0, 12.0, 12.0)), Window((4.0, 4.0, 16.0, 16.0), flip=True)]] * x.shape[0],
        (16, 16),
    )
    ref = critical_scales(
        model,
        x,
        d,
        labels,
        criterion=TopK(1),
        view=view,
        bounds=(0.0, 255.0),
        search=LineSearch(rtol=1e-4),
    )
    cond = condition("ten_crop", x, d, labels, crops=[list(w) for w in view.windows])
    (new,) = evaluate(
        ScoreQueue(model, 64),
        [cond],
        TopK(1),
        Grids({"linf": GRID}, rtol=0.01),
        "linf",
        lambda c: (),
    )
    for v in GRID:
        reference = (ref.scale * 0.25 > v).float().mean()
        assert float((new.crit["linf"] > v).float().mean()) == pytest.approx(float(reference))


def test_a_dense_sample_counts_disagreements_of_a_non_monotone_ray() -> None:
    model, x, labels, d = binary()
    cond = condition("mp", x, d, labels, dense=x.shape[0])
    (found,) = evaluate(
        ScoreQueue(model, 64), [cond], TopK(1), Grids({"linf": GRID}), "linf", lambda c: ("linf",)
    )
    assert all(m == 0 for m in found.dense_mismatch)  # a linear model's rays are monotone
    assert found.dense_earlier == [False] * x.shape[0]


def test_a_multi_view_search_starts_from_its_one_view_conditions_answer() -> None:
    """Issue 12.2: ten_crop waits for object_crop and starts where it crossed, instead of at
    the attack's own (far lower) scale: the same answers for fewer forwards."""
    model, x, labels, d = binary()
    n = x.shape[0]
    windows = [[Window((1.0, 0.0, 16.0, 15.0))]] * n
    tens = [[Window((0.0, 0.0, 15.0, 15.0)), Window((1.0, 1.0, 16.0, 16.0), flip=True)]] * n
    low = torch.full((n,), 0.5)  # the attack's own scale: far below the crops' crossings

    def run(names: tuple[str, ...]) -> dict[str, tuple[torch.Tensor, int]]:
        conds = [
            condition(name, x, d, labels, crops=windows if name == "object_crop" else tens,
                      guess=low)
            for name in names
        ]  # fmt: skip
        found = evaluate(
            ScoreQueue(model, 64), conds, TopK(1), Grids({"linf": GRID}), "linf", lambda c: ()
        )
        return {
            c.spec.name: (r.crit["linf"], int(r.image_forwards.sum()))
            for c, r in zip(conds, found, strict=True)
        }

    alone = run(("ten_crop",))["ten_crop"]
    both = run(("object_crop", "ten_crop"))["ten_crop"]
    torch.testing.assert_close(both[0], alone[0])
    assert both[1] < alone[1], (both[1], alone[1])
