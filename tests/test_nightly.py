"""``foveabench nightly`` and ``foveabench sync`` against a real ``mlflow server`` (SQLite)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from pipeline.tracking.urls import WORKFLOW
from tests.browser import keep_artifact, screenshot
from tests.ops_helpers import foveabench_here, free_port

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.integration

MODEL = "efficientnet_lite0"
NIGHT = "2026-01-10"
SHIFTED = f"{MODEL}/mp/sign/median_l1pp"


def write_config(tmp_path: Path, tracking_uri: str, name: str) -> Path:
    config = tmp_path / f"{name}.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": name,
                "dataset": {"layout": "sample", "limit": 2},
                "models": [MODEL],
                "attacks": ["sign"],
                "output_dir": str(tmp_path / "results"),
                "mlflow": {"tracking_uri": tracking_uri, "experiment": "ops"},
                "shard_size": 2,
                "batch_size": 2,
                "ray": {"actors_per_model": 1},
            }
        )
    )
    return config


def plant_nightly(client: MlflowClient, like: str, name: str, scale: dict[str, float]) -> None:
    """A finished nightly run of the same config whose child metrics copy ``like``'s."""
    source = client.get_run(like)
    tags = {k: v for k, v in source.data.tags.items() if not k.startswith("mlflow.")}
    exp = source.info.experiment_id
    parent = client.create_run(exp, run_name=name, tags={**tags, "mlflow.runName": name})
    children = client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{like}'")
    for child in children:
        model = child.data.tags["model"]
        run = client.create_run(
            exp,
            run_name=f"{name}/{model}",
            tags={**tags, "model": model, "mlflow.parentRunId": parent.info.run_id},
        )
        now = int(time.time() * 1000)
        metrics = [
            Metric(k, v * scale.get(f"{model}/{k}", 1.0), now, 0)
            for k, v in child.data.metrics.items()
        ]
        client.log_batch(run.info.run_id, metrics=metrics)
        client.set_terminated(run.info.run_id)
    client.set_terminated(parent.info.run_id)


def test_run_survives_an_mlflow_outage_then_the_next_run_and_sync_catch_up(
    mlflow_server_uri: str, local_ray: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    down_uri = f"http://127.0.0.1:{free_port()}"  # the server is down: nothing listens there
    config = write_config(tmp_path, down_uri, "outage")
    run_dir = tmp_path / "results" / "outage"

    down = foveabench_here(capsys, "run", str(config))
    # the results are all on disk, but MLflow could not be written: exit 1 (issue 26.6)
    assert down.returncode == 1, down.stderr[-3000:]
    assert "foveabench sync" in down.stdout + down.stderr
    assert down.stderr.count("warning: MLflow unavailable") == 1
    assert list((run_dir / "attacks").rglob("data.parquet")), "results must land on disk"
    assert not (run_dir / "mlflow.json").exists()

    # the server is back (the session's, at the address the config now names)
    write_config(tmp_path, mlflow_server_uri, "outage")
    nxt = foveabench_here(capsys, "run", str(config))  # computes nothing, logs what was missed
    assert nxt.returncode == 0, nxt.stderr[-3000:]
    # 6 summaries (clean, attacks, measures, fooling, best_known, optimality), 1 clean +
    # 1 attack shard, and the report's files (config and manifest are logged every run)
    report_files = sum(1 for p in (run_dir / "report").rglob("*") if p.is_file())
    missed = 8 + report_files
    assert f"mlflow: logged {missed} file(s) that earlier runs could not log" in nxt.stderr
    assert "nothing to compute" in nxt.stderr

    client = MlflowClient(mlflow_server_uri)
    parent = json.loads((run_dir / "mlflow.json").read_text())["parent"]
    (child,) = client.search_runs(
        [client.get_run(parent).info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'"
    )
    assert "clean_top5" in child.data.metrics and "mp/sign/median_l1pp" in child.data.metrics
    assert client.get_run(parent).info.status == "FINISHED"

    synced = foveabench_here(capsys, "sync", str(run_dir))  # everything is there: nothing twice
    assert synced.returncode == 0, synced.stderr[-3000:]
    assert "0 file(s) and 0 metric(s) logged; run complete" in synced.stdout, synced.stdout
    assert len(client.get_metric_history(child.info.run_id, "clean_top5")) == 1
    shards = client.list_artifacts(child.info.run_id, f"attacks/model={MODEL}/attack=sign")
    assert len(shards) == 1


def test_nightly_reuses_the_night_and_flags_a_planted_regression(
    mlflow_server_uri: str,
    local_ray: None,
    chromium: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, mlflow_server_uri, "nightly-cfg")
    client = MlflowClient(mlflow_server_uri)

    first = foveabench_here(capsys, "nightly", str(config), "--date", NIGHT)
    assert first.returncode == 0, first.stderr[-3000:]
    (run_dir,) = (tmp_path / "results").glob(f"nightly-{NIGHT}-*")
    # a first night prints tonight's values as the baseline (issue 27.6), and its page has them
    assert "NEW BASELINE" in first.stdout and "NO-BASELINE" not in first.stdout, first.stdout
    assert any(line.split()[0] == f"{MODEL}/clean_top5" for line in first.stdout.splitlines())
    first_page = json.loads((run_dir / "nightly" / "regression.json").read_text())
    assert first_page["verdict"] == "new-baseline"
    values = {m["metric"]: m for m in first_page["metrics"]}
    assert values[f"{MODEL}/clean_top5"]["status"] == "new"
    assert values[f"{MODEL}/clean_top5"]["current"] is not None
    run_id = json.loads((run_dir / "mlflow.json").read_text())["parent"]
    run = client.get_run(run_id)
    assert run.data.tags["nightly"] == "true" and run.data.tags["config_name"] == "nightly-cfg"
    assert run.info.run_name == run_dir.name and run.info.status == "FINISHED"

    plant_nightly(client, run_id, "nightly-2026-01-08-planted", {})
    same_night = foveabench_here(capsys, "nightly", str(config), "--date", NIGHT)
    assert same_night.returncode == 0, same_night.stdout + same_night.stderr[-3000:]
    assert "OK" in same_night.stdout and "median of 1 run(s)" in same_night.stdout
    named = client.search_runs(
        [run.info.experiment_id], f"tags.`mlflow.runName` = '{run_dir.name}'"
    )
    assert [r.info.run_id for r in named] == [run_id], "the same night created a second run"

    plant_nightly(client, run_id, "nightly-2026-01-09-planted", {SHIFTED: 1.5})
    regressed = foveabench_here(
        capsys, "nightly", str(config), "--date", NIGHT, "--baseline-runs", "1"
    )
    assert regressed.returncode == 3, regressed.stdout + regressed.stderr[-3000:]
    assert f"REGRESSION {SHIFTED}" in regressed.stdout
    report = json.loads((run_dir / "nightly" / "regression.json").read_text())
    assert report["verdict"] == "regression" and report["regressions"] == [SHIFTED]
    assert report["baseline_runs"] == ["nightly-2026-01-09-planted"]
    assert SHIFTED in (run_dir / "nightly" / "regression.html").read_text()
    logged = {a.path for a in client.list_artifacts(run_id, "nightly")}
    assert logged == {"nightly/regression.json", "nightly/regression.html"}
    baseline_id = report["baselines"][0]["run_id"]
    assert report["current"]["run_id"] == run_id and baseline_id != run_id
    page = run_dir / "nightly" / "regression.html"
    check_regression_page(chromium, page, run_id, baseline_id, tmp_path)


def wait_for_text(driver: Any, *texts: str) -> None:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(driver, 60).until(
            lambda d: all(t in d.find_element("tag name", "body").text for t in texts)
        )
    except TimeoutException:
        body = driver.find_element("tag name", "body").text
        raise AssertionError(
            f"{driver.current_url} never showed {texts}; it shows:\n{body}"
        ) from None


def check_regression_page(
    driver: Any, page: Path, run_id: str, baseline_id: str, tmp_path: Path
) -> None:
    """In Chromium: the report's look, its figure loads, and both runs' links open in MLflow."""
    from dashboards.page import CSS

    assert CSS in page.read_text(), "the nightly page does not share the run report's style"
    driver.get(page.as_uri())
    images = driver.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth]);"
    )
    assert images and all(done and width > 0 for done, width in images), images
    bad = driver.find_elements("css selector", "tr.bad td:first-child")
    assert [td.text for td in bad] == [SHIFTED]
    links = {}
    for rid in (run_id, baseline_id):
        row = driver.find_element("id", f"run-{rid}")
        anchors = {a.text: a.get_attribute("href") for a in row.find_elements("tag name", "a")}
        assert f"/runs/{rid}?{WORKFLOW}" in anchors["MLflow run"], anchors
        assert (
            f"/runs/{rid}/artifacts/report/index.html?{WORKFLOW}" in (anchors["report in MLflow"])
        )
        links[rid] = anchors
    assert "report on disk" in links[run_id]  # tonight's report/index.html is on this disk
    assert "compare with tonight" in links[baseline_id]
    compare = driver.find_element("css selector", "#compare-runs a").get_attribute("href")
    assert compare == links[baseline_id]["compare with tonight"]  # one baseline: same pair
    screenshot(driver, tmp_path / "nightly.png")
    keep_artifact(tmp_path / "nightly.png")
    client = MlflowClient(links[run_id]["MLflow run"].split("/#/")[0])
    names = {rid: client.get_run(rid).info.run_name for rid in links}
    for rid, anchors in links.items():  # the MLflow UI resolves each link to that run
        driver.get(anchors["MLflow run"])
        wait_for_text(driver, names[rid])
    driver.get(compare)  # MLflow's comparison of the two runs and their child runs
    # parents and children: a child's metric is in the (virtualised, first rows) table
    wait_for_text(driver, "Comparing 4 Runs", *names.values(), "clean_top5")
