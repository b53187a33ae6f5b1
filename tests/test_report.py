"""The report from real result tables: every figure for the tables present, size, time.

The run directory is written with the pipeline's own schemas, shard layout,
perturbation codec and aggregation functions (``pipeline.summary.attacks``,
``pipeline.summary.write.write_protocol_summaries``), over the real sample photos;
only the numbers in the shards are synthetic, so this stays a fast unit test.
The browser test (test_report_browser.py) covers a real computed run.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
import torch
import yaml

from dashboards.figures import build_figures
from dashboards.report import provenance_html, render_page
from pipeline.cli.main import main as cli_main
from pipeline.cli.report import build_report
from pipeline.config.benchmark import ReportCfg, parse_config
from pipeline.data import build_manifest
from pipeline.models.networks import resolve_cfg
from pipeline.results.codec import record
from pipeline.results.partitions import read_partition, write_committed
from pipeline.results.provenance import run_provenance, write_run_provenance
from pipeline.results.storage import Location, write_table
from pipeline.results.tables import (
    ATTACK_SCHEMA,
    CLEAN_SCHEMA,
    CRITICAL_SCHEMA,
    LINEARITY_SCHEMA,
    PERTURBATION_SCHEMA,
    attack_partition,
    clean_partition,
    eval_partition,
    perturbation_partition,
    table_from_rows,
)
from pipeline.summary.points import fix_eval_points
from pipeline.summary.report_data import DEFAULT_PERCEPTIBLE_LINF
from pipeline.summary.report_load import load_report_data
from pipeline.summary.report_provenance import provenance
from pipeline.summary.write import (
    ADAPTIVE_TABLES,
    PROTOCOL_TABLES,
    write_protocol_summaries,
    write_summaries,
)
from tasks.protocol import CONDITIONS

pytestmark = pytest.mark.unit

MODELS = ("efficientnet_lite0", "efficientnet_lite1")
ATTACKS = ("sign", "random")
FOVEATIONS = (
    "object_crop",
    "ten_crop",
    "three_crop",
    "saliency_crop",
    "mp_object",
    "ten_crop_object",
    "one_crop_object",
)
ALPHAS = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
MAX_BYTES = 5_000_000
MAX_SECONDS = 30.0


def _write(rows: list[dict[str, object]], schema: pa.Schema, run_dir: Path, partition: str) -> None:
    write_committed(run_dir, partition, 0, table_from_rows(rows, schema))


def _crit(
    rng: np.random.Generator, base: dict[str, object], condition: str, spread: float
) -> dict[str, object]:
    linf = float(rng.uniform(0.5, 20.0) * spread)
    norms = {"l1pp": linf * 0.8, "l2": linf * 200.0, "linf": linf}
    return {
        **base,
        "setup": CONDITIONS.get(condition).setup,
        "condition": condition,
        "has_perturbation": True,
        "clean_correct": True,
        "critical_scale": linf,
        "scale_lo": linf * 0.95,
        "censored": False,
        **{f"crit_{k}": v for k, v in norms.items()},
        **{f"src_{k}": v for k, v in norms.items()},
        "n_image_forwards": 10,
        "n_views": 1,
        "dense_mismatch": 0,
        "dense_earlier": False,
    }


def make_run(run_dir: Path, *, protocol_stage: bool = True) -> Path:
    """A run directory in the contract layout (README "Results")."""
    rng = np.random.default_rng(0)
    manifest = build_manifest("sample", None, 3)
    write_table(manifest.table, run_dir / "manifest.parquet")
    write_table(manifest.bad_rows, run_dir / "bad_rows.parquet")
    prov = run_provenance({"name": "unit"}, manifest.table, {})
    write_run_provenance(run_dir, {**prov, "git_sha": "planted0sha"})
    tasks = ["clean", "min_perturbation"] + (
        ["norm_sweep", "masks", "foveation", "linearity", "transfer"] if protocol_stage else []
    )
    raw = {
        "name": "unit",
        "dataset": {"layout": "sample", "limit": 3},
        "models": list(MODELS),
        "attacks": list(ATTACKS),
        "tasks": tasks,
    }
    (run_dir / "config.yaml").write_text(
        yaml.safe_dump(parse_config(raw).as_dict(), sort_keys=False)
    )
    images = manifest.table.to_pylist()
    for model in MODELS:
        size = resolve_cfg(model).input_size
        clean = [
            {
                "image_id": r["image_id"],
                "label": r["label"],
                "model": model,
                "top1_correct": True,
                "top5_correct": True,
                "pred_label": r["label"],
                "true_logit": 9.0,
                "margin": 2.0,
            }
            for r in images
        ]
        _write(clean, CLEAN_SCHEMA, run_dir, clean_partition(model))
        for attack in ATTACKS:
            spread = 10.0 if attack == "random" else 1.0
            rows, perts = [], []
            for r in images:
                linf = float(rng.uniform(1, 30) * spread)
                rows.append(
                    {
                        "image_id": r["image_id"],
                        "label": r["label"],
                        "model": model,
                        "attack": attack,
                        "criterion": "top5",
                        "success": True,
                        "scale": linf,
                        "l1pp": linf * 0.8,
                        "l2": linf * 200,
                        "linf": linf,
                        "adv_label": 1,
                        "clean_correct": True,
                        "clean_label": r["label"],
                        "n_forward": 20,
                        "n_backward": 1,
                        "seconds": 0.1,
                    }
                )
                direction = _sign((3, *size), rng)
                perts.append(record(r["image_id"], model, attack, "mp", linf, direction))
            _write(perts, PERTURBATION_SCHEMA, run_dir, perturbation_partition(model, attack))
            _write(rows, ATTACK_SCHEMA, run_dir, attack_partition(model, attack))
    if protocol_stage:
        _write_evals(run_dir, images, rng)
    write_summaries(run_dir)  # what the runner writes after the attack stage
    if protocol_stage:
        settings = parse_config(raw).eval  # the grids the report re-aggregates with
        fix_eval_points(run_dir, settings)
        write_protocol_summaries(run_dir, settings)
    return run_dir


def _sign(shape: tuple[int, ...], rng: np.random.Generator) -> torch.Tensor:
    return torch.from_numpy(np.where(rng.standard_normal(shape) > 0, 1.0, -1.0).astype(np.float32))


def _write_evals(run_dir: Path, images: list[dict[str, object]], rng: np.random.Generator) -> None:
    for attack in ATTACKS:
        for source in MODELS:
            for target in MODELS:
                base = [
                    {
                        "image_id": r["image_id"],
                        "label": r["label"],
                        "source": source,
                        "target": target,
                        "attack": attack,
                    }
                    for r in images
                ]
                spread = 2.0 if source != target else 1.0
                sweep = [_crit(rng, b, "mp", spread) for b in base]
                _write(
                    sweep,
                    CRITICAL_SCHEMA,
                    run_dir,
                    eval_partition("norm_sweep", source, target, attack),
                )
                if source != target or attack == "random":
                    continue
                masks = [
                    _crit(rng, b, c, s)
                    for b in base
                    for c, s in (("object_mask", 1.5), ("background_mask", 4.0))
                ]
                _write(
                    masks,
                    CRITICAL_SCHEMA,
                    run_dir,
                    eval_partition("masks", source, target, attack),
                )
                fov = [_crit(rng, b, c, 3.0) for b in base for c in FOVEATIONS]
                _write(
                    fov,
                    CRITICAL_SCHEMA,
                    run_dir,
                    eval_partition("foveation", source, target, attack),
                )
                lin = []
                for b in base:
                    slope = float(rng.uniform(-4, -1))
                    lin.append(
                        {
                            **b,
                            "alphas": ALPHAS,
                            "response": [slope * a + 0.3 * a * a for a in ALPHAS],
                            "alone": [float(rng.normal()) * a for a in ALPHAS],
                            "err_interpolation": float(rng.uniform(0, 1)),
                            "err_alone": float(rng.uniform(1, 5)),
                            "fov_object_image": float(rng.normal()),
                            "fov_object_perturbation": float(rng.normal(3)),
                            "fov_one_crop_image": float(rng.normal()),
                            "fov_one_crop_perturbation": float(rng.normal(2)),
                        }
                    )
                _write(
                    lin,
                    LINEARITY_SCHEMA,
                    run_dir,
                    eval_partition("linearity", source, target, attack),
                )


EXPECTED_PROTOCOL = {
    "accuracy_l1pp",
    "accuracy_linf",  # Fig. 2 / 7
    "transfer_sign",
    "transfer_random",  # heatmaps
    "masks_sign",  # Fig. 3 / 8 (random is a baseline: sweeps only)
    "foveation_sign",  # Fig. 5 / 13
    "foveation_effect_cdf",  # Fig. 6
    "linearity_examples_sign",  # Fig. 4, 9-11
    "linearity_error_cdf",  # Fig. 12
}
EXPECTED_ALWAYS = {
    "norm_distributions",
    "fooling_ratio",
    "perceptibility_camera",
    "perceptibility_chelsea",
}


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("run") / "unit")


@pytest.fixture(scope="module")
def built(full_run: Path) -> tuple[Path, float]:
    """The report of the full run, built once (figures dominate the suite's time)."""
    start = time.perf_counter()
    page = build_report(full_run)
    return page, time.perf_counter() - start


def test_every_figure_and_table_of_a_full_run(built: tuple[Path, float]) -> None:
    page_path, seconds = built
    page = page_path.read_text()
    names = set(re.findall(r'data-name="([^"]+)"', page))
    assert names == EXPECTED_PROTOCOL | EXPECTED_ALWAYS
    assert page.count('src="data:image/') == len(names)  # all embedded, none linked
    files = {p.stem for p in (page_path.parent / "figures").iterdir()}
    assert files == names
    for title in (
        "Table 1",
        "Table 2",
        "Norm statistics",
        "Clean accuracy",
        "Findings",
        "Transfer matrices",
    ):
        assert title in page, title
    assert re.search(r'<tr class="(ok|bad|meh)">', page)  # findings coloured by verdict
    assert "failed:" not in page
    assert 'id="git-sha"' in page and "config.yaml" in page
    assert "http://" not in page and "https://" not in page  # nothing fetched from the network
    assert page_path.stat().st_size < MAX_BYTES
    assert seconds < MAX_SECONDS, f"report took {seconds:.1f} s"


def test_label_changes_name_their_imagenet_classes(built: tuple[Path, float]) -> None:
    """Issue 27.7: the frequent label changes show each class's name beside its id (the
    run's adversarial label is class 1), from timm's offline ILSVRC list."""
    page = built[0].read_text()
    changes = re.findall(r"<td>(\d+ [^<]*→ 1 goldfish \(\d+\)[^<]*)</td>", page)
    assert changes, "no named label change in the norm statistics table"
    assert not re.search(r"<td>\d+-&gt;\d+ \(", page), "a label change without names"
    grids = re.findall(r"Perceptibility, [^<(]+ \((\d+ [^)]+)\) \(appendix C\)", page)
    assert grids, "a perceptibility grid without its image's class"


def test_perceptible_minimum_perturbations_are_flagged_and_counted(
    built: tuple[Path, float], full_run: Path
) -> None:
    """Issue 27.7: a minimum perturbation with linf > report.perceptible_linf (default 16
    of 255) is counted per network and attack, its row flagged, and the total is a
    headline card; the counts are the attack rows' own (read here with polars)."""
    page = built[0].read_text()
    shards = sorted((full_run / "attacks").rglob("*.parquet"))
    rows = pl.concat([pl.read_parquet(p) for p in shards], how="diagonal_relaxed")
    fooled = rows.filter(pl.col("success") & pl.col("clean_correct"))
    seen = int((fooled["linf"] > 16).sum())
    assert 0 < seen < fooled.height, "the synthetic run has both kinds"
    assert f"{seen} of {fooled.height}" in page
    assert "minimum perturbations perceptible (linf &gt; 16)" in page
    block = page.split("Perceptible minimum perturbations", 1)[1].split("</table>", 1)[0]
    # a run whose config cannot be parsed is flagged at the config's default
    assert DEFAULT_PERCEPTIBLE_LINF == ReportCfg().perceptible_linf
    assert "report.perceptible_linf" in block and "<th>linf &gt; 16</th>" in block
    for (model, attack), group in fooled.group_by("model", "attack"):
        n = int((group["linf"] > 16).sum())
        cls = ' class="bad"' if n else ""
        assert (
            f'<tr{cls}><td>{model}</td><td>{attack}</td><td class="n">{group.height}</td><td class="n">{n}</td>'
            in block
        )


def test_every_heatmap_cell_says_how_many_images_it_holds(full_run: Path) -> None:
    """Issue 27.7: a transfer heatmap's cell reads its value and its n (the images of that
    source/target pair at the point), drawn by matplotlib as the report draws it."""
    import matplotlib.pyplot as plt

    from dashboards.figures.transfer import accuracy_panel, at_point, heatmap, models_of

    transfer = pl.read_parquet(full_run / "summary" / "transfer.parquet")
    first = transfer.row(0, named=True)
    at = at_point(
        transfer.filter(pl.col("attack") == first["attack"]), first["norm"], first["value"]
    )
    models = models_of(at)
    matrix, title, fmt, vmax, counts = accuracy_panel(at, models, first["norm"], first["value"])
    fig, ax = plt.subplots()
    heatmap(ax, matrix, models, models, title, fmt, vmax, counts=counts)
    cells = {
        (round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts
    }
    plt.close(fig)
    assert len(cells) == at.height == len(models) ** 2
    for r in at.to_dicts():
        i, j = models.index(r["source"]), models.index(r["target"])
        assert cells[(i, j)] == f"{r['accuracy']:.2f}\nn={r['n']}"


def test_medians_carry_their_interval(built: tuple[Path, float], full_run: Path) -> None:
    """Issue 27.7: each median norm of the norm statistics has its 95% interval (order
    statistics) beside it, in summary/attacks.parquet and on the page."""
    from dashboards.figures.tables import fmt_3g

    page = built[0].read_text()
    assert "<th>l1pp median 95% CI</th>" in page and "<th>linf median 95% CI</th>" in page
    attacks = pl.read_parquet(full_run / "summary" / "attacks.parquet")
    for r in attacks.to_dicts():
        for norm in ("l1pp", "l2", "linf"):
            low, high = r[f"{norm}_median_ci_low"], r[f"{norm}_median_ci_high"]
            assert low <= r[f"{norm}_median"] <= high
            assert f"<td>[{fmt_3g(low)}, {fmt_3g(high)}]</td>" in page


def test_captions_name_only_what_the_run_drew(full_run: Path) -> None:
    """Issue 27.7: the transfer curves' caption mentions the dashed random direction only
    when the run has the baseline, other networks' lines only when it has cross pairs."""
    from dashboards.figures.curves import transfer_caption

    curves = pl.read_parquet(full_run / "summary" / "curves.parquet")
    full = transfer_caption(curves)
    assert "dashed the random direction" in full and "other networks'" in full
    own = curves.filter((pl.col("attack") == "sign") & (pl.col("source") == pl.col("target")))
    assert own.height and transfer_caption(own).endswith("the network's own perturbations.")


def test_summaries_absent_are_aggregated_from_the_shards(full_run: Path, tmp_path: Path) -> None:
    """A run stopped before its aggregate stage still gets every table, same values."""
    run = tmp_path / "nosummary"
    shutil.copytree(full_run, run, ignore=shutil.ignore_patterns("report"))
    shutil.rmtree(run / "summary")
    data, written = load_report_data(run), load_report_data(full_run)
    # the run has no adaptive task, and one attack (no best-reference Table 1)
    tables = set(PROTOCOL_TABLES) - set(ADAPTIVE_TABLES) - {"table1_best"}
    assert set(data.recomputed) == {"clean", "attacks", "measures", "fooling", *tables}
    assert not written.recomputed
    assert data.attacks.drop("top_pairs").equals(written.attacks.drop("top_pairs"))
    assert data.measures.equals(written.measures) and data.fooling.equals(written.fooling)
    for name in ("transfer", "table2", "linearity"):
        assert data.table(name).height == written.table(name).height > 0, name


def test_attack_only_run_skips_protocol_figures(tmp_path: Path) -> None:
    run = make_run(tmp_path / "attacks_only", protocol_stage=False)
    data = replace(load_report_data(run), examples=())  # no stored perturbations: grids skip too
    figs = build_figures(data)
    assert {f.name for f in figs.figures} == {"norm_distributions", "fooling_ratio"}
    assert not figs.failed
    assert any("curves" in s for s in figs.skipped)
    data = replace(data, provenance=provenance(run, data.config, {"git_sha": "x"}))
    page = render_page(data, figs)
    assert "Not produced by this run" in page and "Table 1" not in page
    assert "Linearity summary" not in page  # no empty tables


def test_provenance_comes_from_the_run_not_from_the_installed_code(
    built: tuple[Path, float], full_run: Path, tmp_path: Path
) -> None:
    page = built[0].read_text()  # make_run wrote provenance.json as a run's start does
    assert '<code id="git-sha">planted0sha</code>' in page and "written at run start" in page
    bare = make_run(tmp_path / "bare", protocol_stage=False)
    (bare / "provenance.json").unlink()
    data = load_report_data(bare)
    assert '<code id="git-sha">unknown</code>' in provenance_html(data)
    tags = {"git_sha": "abc123", "config_name": "unit"}
    tagged = provenance_html(replace(data, provenance=provenance(bare, data.config, tags)))
    assert '<code id="git-sha">abc123</code>' in tagged and "MLflow run" in tagged


def test_cli_report_rebuilds_from_a_run_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_run(tmp_path / "cli", protocol_stage=False)
    assert cli_main(["report", str(run)]) == 0
    assert (run / "report" / "index.html").is_file()
    assert "report:" in capsys.readouterr().out


def test_cli_report_names_what_it_could_not_find(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["report", str(tmp_path)]) == 2
    assert "manifest.parquet" in capsys.readouterr().err
    assert cli_main(["report", str(tmp_path / "missing")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    uri = f"sqlite:///{tmp_path / 'none.db'}"
    assert cli_main(["report", "0123456789abcdef", "--tracking-uri", uri]) == 2
    assert "no MLflow store" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()
    uri = f"sqlite:///{tmp_path / 'empty.db'}"
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=uri).search_experiments()  # an existing, empty store
    assert cli_main(["report", "0123456789abcdef", "--tracking-uri", uri]) == 2
    assert "neither a directory nor a run" in capsys.readouterr().err


def test_perturbation_store_decodes_in_grids(full_run: Path) -> None:
    """The grids read the store the attack stage writes (codec, shape, scale)."""
    table = read_partition(Location(full_run), perturbation_partition(MODELS[0], "sign"))
    assert table.num_rows == 3


def test_a_point_below_every_minimum_perturbation_is_flagged() -> None:
    """Issue 27.7: at 5.3, below every MP the source found, its transfer accuracy is the
    clean accuracy; the report says so instead of letting it read as 'does not transfer'."""
    from dashboards.report import below_every_mp

    attacks = pl.DataFrame(
        {"model": ["m", "m"], "attack": ["sign", "random"], "l1pp_min": [6.0, 0.1],
         "linf_min": [2.0, 0.1]}
    )  # fmt: skip
    assert "sign of m (l1pp min 6)" in below_every_mp(attacks, 5.3)
    assert "linf" not in below_every_mp(attacks, 5.3)
    assert "linf min 2" in below_every_mp(attacks, 1.0)
    assert below_every_mp(attacks, 10.0) == "", "the baseline never counts"
