"""Reviewing a run in MLflow (issue 15): a real ``mlflow server``, a real run, headless Chromium.

The run is the golden run (tests/golden.py: sample photos in two shards, ``sign``, every
task) on the session's ``mlflow server``; it logged into an experiment that already
existed with another kind's tag. A driver-side hook read the server after each
evaluation unit, while the run was RUNNING; the test checks what it saw, the kind tag,
the dataset input and its digest, the step history, system metrics and the
transfer-matrix artifacts, then screenshots the runs table (Dataset column) and one
child run's metric charts into ``test-artifacts/``.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from pipeline.summary.points import point_list, read_eval_points
from pipeline.tracking.note import NOTE_TAG, artifact_link
from pipeline.tracking.urls import experiment_url, run_url
from tests.browser import keep_artifact
from tests.golden import EXPERIMENT, IMAGES, LITE0, MODELS, SHARD_SIZE, Golden

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = LITE0
PAIR = f"eval/sign/{MODEL}/{MODEL}"
CLOSE_ASSISTANT = '[data-component-id="mlflow.assistant.chat_panel.close"]'
EXPAND_CHILDREN = '.ag-row [data-component-id*="runnamecellrenderer"]'  # the parent's "+"


def test_a_run_is_reviewable_in_the_mlflow_ui(
    golden: Golden, chromium: Any, tmp_path: Path
) -> None:
    server, summary = golden.tracking_uri, golden.summary
    client = MlflowClient(server)
    assert not summary.failed_units
    assert summary.computed_eval_units == len(MODELS) ** 2 * golden.n_shards
    # read by a hook in the driver after each of the pair's units, while the run was RUNNING
    watched = [s for s in golden.seen if s["pair"] == (MODEL, MODEL)]
    assert [s["status"] for s in watched] == ["RUNNING"] * golden.n_shards
    # a step is the images done so far: the shards' sizes added up in the order they ended
    steps = list(itertools.accumulate(shard_size(s["shard"]) for s in watched))
    assert [s["steps"] for s in watched] == [steps[:1], steps], watched

    parent_id = summary.mlflow_run_id
    assert parent_id is not None
    parent = client.get_run(parent_id)
    exp_id = parent.info.experiment_id
    existing = client.get_experiment_by_name(EXPERIMENT)  # made before the run, untagged
    assert existing is not None and exp_id == existing.experiment_id
    assert parent.info.status == "FINISHED"
    kind = client.get_experiment(exp_id).tags["mlflow.experimentKind"]
    assert kind == "custom_model_development"
    child_id = json.loads((summary.run_dir / "mlflow.json").read_text())["children"][MODEL]
    check_dataset_inputs(client, parent_id, child_id, parent.data.tags["dataset_hash"])
    points = point_list(read_eval_points(summary.run_dir))  # fixed before the evaluation
    assert ("linf", 5.3) in points  # sign is evaluated on its own norm, L-infinity
    check_metrics(client, parent_id, child_id, steps)
    check_transfer_artifacts(client, parent_id, tmp_path, points)

    check_one_value_metrics(client, parent_id)
    check_description(client, parent_id, exp_id)

    runs_table(chromium, server, exp_id, parent.data.tags["dataset_hash"], tmp_path)
    child_charts(chromium, server, exp_id, child_id, tmp_path)
    description_links(chromium, server, exp_id, parent_id, tmp_path)


def check_dataset_inputs(client: MlflowClient, parent_id: str, child_id: str, digest: str) -> None:
    for run_id in (parent_id, child_id):
        (given,) = client.get_run(run_id).inputs.dataset_inputs
        assert given.dataset.name == "sample:" and given.dataset.digest == digest
        assert given.dataset.source_type == "local"
        assert json.loads(given.dataset.source)["uri"].endswith("pipeline/data/sample_set.py")
        assert json.loads(given.dataset.profile) == {"num_rows": IMAGES, "bad_rows": 0}
        assert {(t.key, t.value) for t in given.tags} == {("mlflow.data.context", "eval")}


def shard_size(shard: int) -> int:
    return min(SHARD_SIZE, IMAGES - shard * SHARD_SIZE)


def check_metrics(client: MlflowClient, parent_id: str, child_id: str, steps: list[int]) -> None:
    history = client.get_metric_history(child_id, f"{PAIR}/acc_at_linf_5.3")
    assert [m.step for m in history] == steps and all(0 <= m.value <= 1 for m in history)
    done = client.get_metric_history(child_id, f"{PAIR}/images_done")
    assert [(m.step, m.value) for m in done] == [(s, float(s)) for s in steps]
    parent = client.get_run(parent_id).data.metrics
    final = parent[f"transfer/sign/{MODEL}/{MODEL}/acc_at_linf_5.3"]  # from summary/ at the end
    assert history[-1].value == pytest.approx(final), "the running accuracy ends off the summary"
    # the running median ends on the final one (same images, same median), not beside it
    running = client.get_metric_history(child_id, "running/mp/sign/median_l1pp")
    last = max(running, key=lambda m: (m.step, m.timestamp)).value
    child = client.get_run(child_id).data.metrics
    assert last == pytest.approx(child["mp/sign/median_l1pp"])
    assert "system/cpu_utilization_percentage" in parent
    assert 0 <= parent[f"headline/clean_top5/{MODEL}"] <= 1  # the headline, on the parent
    assert parent[f"headline/median_linf/sign/{MODEL}"] > 0
    assert parent["system/system_memory_usage_megabytes"] > 0


def check_one_value_metrics(client: MlflowClient, parent_id: str) -> None:
    """A final metric is one value at step 0, which MLflow's charts draw as a bar with its
    value (a lone point at a later step is a dot on a step axis); running ones have steps."""
    finals = [
        k
        for k in client.get_run(parent_id).data.metrics
        if k.startswith(("headline/", "findings/", "transfer/", "optimality/"))
    ]
    assert any(k.startswith("findings/") for k in finals)
    for key in finals:
        assert [m.step for m in client.get_metric_history(parent_id, key)] == [0], key


def check_description(client: MlflowClient, parent_id: str, exp_id: str) -> None:
    """The parent's description: the headline numbers, then a link to the report and to
    every transfer-matrix heatmap, each by its artifact path."""
    run = client.get_run(parent_id)
    note = run.data.tags[NOTE_TAG]
    top5 = run.data.metrics[f"headline/clean_top5/{MODEL}"]
    assert f"| {MODEL} | {top5:.3g} |" in note
    linf = run.data.metrics[f"headline/median_linf/sign/{MODEL}"]
    assert f"| sign | {MODEL} | linf {linf:.3g} |" in note
    assert "findings: " in note
    heatmaps = sorted(
        a.path
        for a in client.list_artifacts(parent_id, "transfer_matrices/sign")
        if a.path.endswith(".png")
    )
    assert heatmaps
    for path in ["report/index.html", *heatmaps]:
        assert f"]({artifact_link(exp_id, parent_id, path)})" in note
    assert "report/index.html" in {a.path for a in client.list_artifacts(parent_id, "report")}


def check_transfer_artifacts(
    client: MlflowClient, parent_id: str, tmp_path: Path, points: list[tuple[str, float]]
) -> None:
    logged = {a.path for a in client.list_artifacts(parent_id, "transfer_matrices/sign")}
    stems = [f"transfer_matrices/sign/acc_at_{n}_{v:g}" for n, v in points]
    assert logged == {f"{s}.{ext}" for s in stems for ext in ("png", "json")}
    png = Path(client.download_artifacts(parent_id, f"{stems[0]}.png", str(tmp_path)))
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 5000
    table = json.loads(Path(client.download_artifacts(parent_id, f"{stems[0]}.json")).read_text())
    assert table["columns"][:3] == ["source", "target", "accuracy"]
    assert [row[:2] for row in table["data"]] == [[s, t] for s in MODELS for t in MODELS]


def wait_for(driver: Any, condition: Any, what: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 90).until(condition, message=f"the MLflow UI never showed {what}")


def body_has(*texts: str) -> Any:
    return lambda d: all(t in d.find_element("tag name", "body").text for t in texts)


def keep_view(driver: Any, path: Path) -> None:
    """The viewport (the MLflow UI fits it); tests.browser's full-page capture resizes the
    page, and MLflow then redraws every chart behind a spinner."""
    for close in driver.find_elements("css selector", CLOSE_ASSISTANT):  # a third of the width
        close.click()
    driver.save_screenshot(str(path))
    keep_artifact(path)


def runs_table(driver: Any, server: str, exp_id: str, digest: str, tmp_path: Path) -> None:
    """The experiment link opens on the runs table; parent and child name the dataset."""
    url = experiment_url(server, exp_id)
    assert url is not None
    driver.get(url)
    wait_for(driver, body_has("Dataset", f"sample: ({digest})"), "the dataset column")
    assert "/runs?" in driver.current_url
    driver.find_element("css selector", EXPAND_CHILDREN).click()
    datasets = "[data-testid=open-dataset-drawer]"
    runs = 1 + len(MODELS)  # the parent and its children
    wait_for(
        driver, lambda d: len(d.find_elements("css selector", datasets)) == runs, f"{runs} datasets"
    )
    assert {e.text for e in driver.find_elements("css selector", datasets)} == {
        f"sample: ({digest})"
    }
    wait_for(driver, body_has(f"golden/{MODEL}"), "the child run")
    keep_view(driver, tmp_path / "mlflow_runs_table.png")


def child_charts(driver: Any, server: str, exp_id: str, child_id: str, tmp_path: Path) -> None:
    """The child run's model-metrics tab charts the step-indexed evaluation progress."""
    url = run_url(server, exp_id, child_id, "model-metrics")
    assert url is not None
    driver.get(url)
    # the child holds every source's charts (and more): the search box narrows to one pair
    search = 'input[placeholder="Search metric charts"]'
    wait_for(driver, lambda d: d.find_elements("css selector", search), "the chart search box")
    driver.find_element("css selector", search).send_keys(PAIR)
    wait_for(driver, body_has(PAIR, "acc_at_linf_5.3", "images_done"), "the eval/ charts")
    traces = ".js-plotly-plot .scatterlayer .trace"
    wait_for(driver, lambda d: d.find_elements("css selector", traces), "a drawn line")
    keep_view(driver, tmp_path / "mlflow_child_metrics.png")


def description_links(
    driver: Any, server: str, exp_id: str, parent_id: str, tmp_path: Path
) -> None:
    """The parent run's page shows the description; its report link opens the report's
    artifact view in a new tab, still in the model-training views (breadcrumb "Runs")."""
    url = run_url(server, exp_id, parent_id)
    assert url is not None
    driver.get(url)
    wait_for(driver, body_has("foveabench headline", "clean top-5 accuracy"), "the description")
    keep_view(driver, tmp_path / "mlflow_parent_description.png")
    home = driver.current_window_handle
    driver.find_element("link text", "the report").click()
    wait_for(driver, lambda d: len(d.window_handles) == 2, "a new tab")
    driver.switch_to.window(next(h for h in driver.window_handles if h != home))
    try:
        assert "/artifacts/report/index.html" in driver.current_url
        wait_for(driver, body_has("Artifacts", "index.html"), "the report's artifact view")
        header = driver.find_element(
            "css selector", "[data-testid=experiment-observatory-link-runs]"
        )
        assert header.text == "Runs"  # "Evaluations" in GenAI's views
        keep_view(driver, tmp_path / "mlflow_report_link.png")
    finally:
        driver.close()
        driver.switch_to.window(home)
