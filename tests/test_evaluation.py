"""The evaluation worker on a real network and real photos (no Ray: the plain class)."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest
import torch

from pipeline.config.benchmark import EvalCfg
from pipeline.data import build_manifest
from pipeline.models.image_cache import ImageCache
from pipeline.models.images import load_batch
from pipeline.models.networks import PixelModel, load_model, resolve_cfg
from pipeline.results.codec import Encoded, read_store, record, roundtrip
from pipeline.results.partitions import read_partition, write_committed
from pipeline.results.storage import Location
from pipeline.results.tables import PERTURBATION_SCHEMA, perturbation_partition, table_from_rows
from pipeline.stages.eval_inputs import resize_direction
from pipeline.stages.eval_unit import EvalUnit
from pipeline.stages.eval_worker import Evaluator
from pipeline.summary.protocol import ratio_pairs
from pipeline.summary.stats import ratio_test, tie_tolerance
from tasks import attacks, norms
from tasks.criterion import TopK
from tasks.linesearch import LineSearch
from tasks.protocol import conditions_of
from tests.planted import identity_foveation

pytestmark = pytest.mark.integration

IMAGES = ("chelsea", "coffee", "camera")


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], Path]:
    """Sample photos attacked with sign on efficientnet_lite0, stored as the attack stage does."""
    rows = [r for r in build_manifest("sample", None).table.to_pylist() if r["image_id"] in IMAGES]
    model = load_model("efficientnet_lite0")
    x = load_batch([r["path"] for r in rows], model.cfg)
    y = torch.tensor([r["label"] for r in rows])
    attack = attacks.create("sign", line_search=LineSearch(rtol=1e-3))
    attack.quantize = roundtrip
    result = attack(model, x, y)
    perts = [
        record(
            r["image_id"],
            "efficientnet_lite0",
            "sign",
            "mp",
            float(result.scale[i]),
            result.direction[i],
        )
        for i, r in enumerate(rows)
        if result.success[i] and result.clean_correct[i]
    ]
    assert perts, "sign fooled none of the photos"
    path = tmp_path_factory.mktemp("store")
    write_committed(path, STORE, 0, table_from_rows(perts, PERTURBATION_SCHEMA))
    return rows, path


STORE = perturbation_partition("efficientnet_lite0", "sign")


def stored_directions(run_dir: Path) -> dict[str, tuple[Encoded, float]]:
    return read_store(read_partition(Location(run_dir), STORE, shard=0))


def unit(rows: list[dict], path: Path, target: str, tasks: tuple[str, ...]) -> EvalUnit:
    return EvalUnit(
        source="efficientnet_lite0", target=target, attack="sign", shard=0,
        image_ids=tuple(r["image_id"] for r in rows), paths=tuple(r["path"] for r in rows),
        labels=tuple(r["label"] for r in rows), sizes=tuple((r["width"], r["height"]) for r in rows),
        boxes=tuple(tuple((b["xmin"], b["ymin"], b["xmax"], b["ymax"]) for b in r["boxes"]) for r in rows),
        run_dir=str(path), perturbations=STORE, target_attacks="", source_cfg=resolve_cfg("efficientnet_lite0"),
        tasks=tasks,
    )  # fmt: skip


def evaluator(name: str, **settings: object) -> Evaluator:
    cfg = EvalCfg(**{"dense_check": 0, **settings})  # type: ignore[arg-type]
    made = attacks.create("sign", criterion=TopK(5))
    made.quantize = roundtrip
    return Evaluator(load_model(name), TopK(5), cfg, lambda _: made, ImageCache(), batch_size=3)


def test_self_pair_covers_every_image_and_condition(stored: tuple[list[dict], Path]) -> None:
    rows, path = stored
    tasks = ("norm_sweep", "masks", "foveation", "linearity")
    out = evaluator("efficientnet_lite0").evaluate(unit(rows, path, "efficientnet_lite0", tasks))
    tables = {t: out.tables[t].to_pylist() for t in tasks}
    have = set(stored_directions(path))
    for task in ("norm_sweep", "masks", "foveation"):
        names = {c.name for c in conditions_of(task)}
        got = {(r["image_id"], r["condition"]) for r in tables[task]}
        assert got == {(i, c) for i in IMAGES for c in names}, task  # every image, every condition
    scales = {i: s for i, (_, s) in stored_directions(path).items()}
    for r in tables["norm_sweep"]:
        assert r["error"] is None and r["has_perturbation"] == (r["image_id"] in have)
        if r["has_perturbation"]:  # searched like every condition, seeded by the attack's scale
            assert r["critical_scale"] <= scales[r["image_id"]] / (1 - 0.05) * (1 + 1e-6)
            assert r["line_search_earlier"] is not None  # the attack's line search, checked
        else:
            assert r["line_search_earlier"] is None
    for r in tables["foveation"]:  # a view asked twice (3 of the 10 crops) is forwarded once
        if r["error"] is None:
            assert r["n_image_forwards"] >= 0 and r["critical_scale"] >= 0
    assert sum(r["n_image_forwards"] for r in tables["foveation"] if r["error"] is None) > 0
    for r in tables["linearity"]:
        if r["error"] is None:
            assert r["response"][0] == pytest.approx(0.0, abs=1e-4)  # a = 0: f(x) - f(x)
            assert math.isfinite(r["err_interpolation"]) and math.isfinite(r["err_alone"])
    assert out.forward_calls > 0 and out.image_forwards > 0


def test_cross_pair_reports_the_norm_the_target_receives(
    stored: tuple[list[dict], Path], tmp_path: Path
) -> None:
    """A checkerboard from lite0 (224 px) evaluated on lite1 (240 px): the x-axis is the norm of
    the resized perturbation the target gets, the source's own norm is kept beside it."""
    rows, _ = stored
    board = ((torch.arange(224)[:, None] + torch.arange(224)[None, :]) % 2 * 2 - 1).float()
    d = board.expand(3, 224, 224).clone()
    perts = [record(r["image_id"], "efficientnet_lite0", "sign", "mp", 8.0, d) for r in rows]
    path = tmp_path
    write_committed(path, STORE, 0, table_from_rows(perts, PERTURBATION_SCHEMA))
    grid = (0.0, 25.0, 50.0, 100.0, 150.0, 200.0, 255.0)  # a checkerboard needs a lot to fool
    ev = evaluator("efficientnet_lite1", linf_grid=grid)
    out = ev.evaluate(unit(rows, path, "efficientnet_lite1", ("norm_sweep",)))
    checked = 0
    for r in out.tables["norm_sweep"].to_pylist():
        assert r["error"] is None and r["has_perturbation"]
        s = r["critical_scale"]
        if not 0 < s < math.inf:
            continue
        row = next(m for m in rows if m["image_id"] == r["image_id"])
        x_t = load_batch([row["path"]], resolve_cfg("efficientnet_lite1"))
        x_s = load_batch([row["path"]], resolve_cfg("efficientnet_lite0"))
        received = (x_t + s * resize_direction(d[None], (240, 240))).clamp(0, 255) - x_t
        source = (x_s + s * d[None]).clamp(0, 255) - x_s
        for n in ("l1pp", "l2", "linf"):
            assert r[f"crit_{n}"] == pytest.approx(float(norms.norm(received, n)[0]), rel=1e-4)
            assert r[f"src_{n}"] == pytest.approx(float(norms.norm(source, n)[0]), rel=1e-4)
        assert r["crit_l2"] < 0.8 * r["src_l2"]  # resizing a checkerboard loses energy
        checked += 1
    assert checked >= 1


class RunsOutOfMemory(torch.nn.Module):
    """Fault injection: the wrapped network fails above ``limit`` inputs, as a full GPU would."""

    def __init__(self, net: torch.nn.Module, limit: int) -> None:
        super().__init__()
        self.net, self.limit, self.failures = net, limit, 0
        self.sizes: list[int] = []
        self.shift, self.cfg, self.name = net.shift, net.cfg, net.name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(x.shape[0])
        if x.shape[0] > self.limit:
            self.failures += 1
            raise RuntimeError(f"CUDA out of memory (injected): batch of {x.shape[0]}")
        return self.net(x)


def test_bisect_gives_the_exhaustive_scans_curves_unless_the_ray_is_not_monotone(
    stored: tuple[list[dict], Path],
) -> None:
    """Issue 12.2: the default bisection over grid indices against the scan that checks every
    grid point below a crossing, on the same photos. Each curve point is "critical norm above
    v", so the two must put every (image, condition) in the same grid interval; bisection may
    only report a later crossing where it saw the ray correct again above the scan's crossing
    (a non-monotone ray, what the dense sample measures). Refined scales agree to rtol."""
    rows, path = stored
    tasks = ("norm_sweep", "masks", "foveation")
    grid = [v for v in EvalCfg().linf_grid if v > 0]  # sign searches the Linf axis
    # one-view and multi-view foveations (MP-Object's, ten views): ten_crop and three_crop
    # add views of the same kinds and would double the scan's cost
    crops = ("object_crop", "saliency_crop")
    found, forwards = {}, {}
    for search in ("scan", "bisect"):
        out = evaluator("efficientnet_lite0", search=search, crops=crops).evaluate(
            unit(rows, path, "efficientnet_lite0", tasks)
        )
        table = [r for t in tasks for r in out.tables[t].to_pylist() if r["error"] is None]
        found[search] = {(r["image_id"], r["condition"]): r for r in table}
        forwards[search] = sum(r["n_image_forwards"] for r in table)
    assert found["scan"].keys() == found["bisect"].keys() and len(found["scan"]) >= 20

    def interval(r: dict) -> int:  # grid points the image survives: its curve contribution
        return sum(v < r["crit_linf"] * (1 - 1e-4) for v in grid)

    same = 0
    for key, scan in found["scan"].items():
        bisect = found["bisect"][key]
        assert scan["clean_correct"] == bisect["clean_correct"], key
        if interval(bisect) == interval(scan):
            same += 1
            if bisect["critical_scale"] not in (0.0, math.inf):
                assert bisect["critical_scale"] == pytest.approx(scan["critical_scale"], rel=0.1)
        else:  # only a later crossing, and only over a ray seen correct above the scan's
            assert interval(bisect) > interval(scan), key
            assert bisect["scale_lo"] >= scan["critical_scale"], key
    assert same >= 0.9 * len(found["scan"])
    assert forwards["bisect"] < 0.8 * forwards["scan"], forwards


def test_an_evaluation_batch_that_runs_out_of_memory_is_halved_not_lost(
    stored: tuple[list[dict], Path],
) -> None:
    rows, path = stored
    ev = evaluator("efficientnet_lite0")
    failing = RunsOutOfMemory(ev.model, limit=5)
    ev.model = failing  # type: ignore[assignment]
    out = ev.evaluate(unit(rows, path, "efficientnet_lite0", ("norm_sweep", "masks")))
    assert failing.failures > 0 and out.halvings > 0
    for task in ("norm_sweep", "masks"):
        table = out.tables[task].to_pylist()
        assert table and all(r["error"] is None for r in table), task


def test_the_forward_batch_grows_while_memory_is_free_and_stays_below_a_size_that_failed(
    stored: tuple[list[dict], Path],
) -> None:
    """The memory probe stands in for CUDA's peak-memory counter (no GPU in tests): it says
    each batch used 10% of the device, so the forward batch doubles until the injected
    out-of-memory at 6+ inputs; then it halves and never grows back to the size that failed."""
    rows, path = stored
    made = attacks.create("sign", criterion=TopK(5))
    made.quantize = roundtrip
    net = RunsOutOfMemory(load_model("efficientnet_lite0"), limit=5)
    settings = EvalCfg(dense_check=0, batch_size=2)
    ev = Evaluator(
        net, TopK(5), settings, lambda _: made, ImageCache(), batch_size=1,  # type: ignore[arg-type]
        memory_share=lambda: 0.1,
    )  # fmt: skip
    out = ev.evaluate(unit(rows, path, "efficientnet_lite0", ("norm_sweep", "masks")))
    assert all(r["error"] is None for t in out.tables.values() for r in t.to_pylist())
    assert max(net.sizes) > 2, f"the batch never grew: {net.sizes}"
    assert net.failures >= 1 and out.halvings >= 1
    first_failure = next(i for i, n in enumerate(net.sizes) if n > 5)
    assert all(n <= 5 for n in net.sizes[first_failure + 1 :]), "grew back to a failing size"
    assert ev.forward_batch == 4  # kept for the next unit


def test_bf16_autocast_is_checked_against_fp32_on_the_dense_sample(
    stored: tuple[list[dict], Path],
) -> None:
    """bf16 is slow on a CPU, so a small network stands in for the target here."""
    rows, path = stored
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 8, stride=8), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(4),
        torch.nn.Flatten(), torch.nn.Linear(128, 1000),
    )  # fmt: skip
    small = PixelModel(net, resolve_cfg("efficientnet_lite0"), "small").eval()
    made = attacks.create("sign", criterion=TopK(5))
    settings = EvalCfg(dense_check=1, autocast="bf16")
    ev = Evaluator(small, TopK(5), settings, lambda _: made, ImageCache(), batch_size=3)
    out = ev.evaluate(unit(rows, path, "efficientnet_lite0", ("norm_sweep", "masks")))
    checked = [
        r for t in ("norm_sweep", "masks") for r in out.tables[t].to_pylist()
        if r["autocast_agrees"] is not None
    ]  # fmt: skip
    assert len(checked) == 3  # mp, object mask, background mask of the sampled image
    assert all(isinstance(r["autocast_agrees"], bool) for r in checked)


def test_an_identity_foveation_on_real_photos_is_a_tie_on_every_image(
    stored: tuple[list[dict], Path],
) -> None:
    """Issue 21.1 on a real network: a foveation that does nothing, searched exactly like its
    reference, gives every image the reference's critical norm within the search's precision
    (every pair a tie): nothing a finding could sign."""
    rows, path = stored
    with identity_foveation() as name:
        ev = evaluator("efficientnet_lite0", crops=(name,), object_crops=())
        out = ev.evaluate(unit(rows, path, "efficientnet_lite0", ("norm_sweep", "foveation")))
        # eval.crops and eval.object_crops pick the views: MP-Object's base, no view of it
        fovs = set(out.tables["foveation"].column("condition").to_pylist())
        assert fovs == {name, "mp_object"}, fovs
        crit = pl.concat(
            [pl.from_arrow(out.tables[t]) for t in ("norm_sweep", "foveation")],  # type: ignore[misc]
            how="diagonal_relaxed",
        ).filter(pl.col("error").is_null())
        pairs = ratio_pairs(crit, name, "mp", "linf")
        assert pairs.height >= 2
        test = ratio_test(pairs["a"].to_numpy(), pairs["b"].to_numpy(), tie_tolerance(0.05))
        assert test.n_discordant == 0, pairs
