"""Reviewing a run in MLflow (issue 15): a real ``mlflow server``, a real run, headless Chromium.

The run (sample photos, efficientnet_lite0, ``sign``, two images in two
shards, ``norm_sweep``) logs into an experiment that already exists untagged.
A driver-side hook reads the server after each evaluation unit, while the run
is RUNNING; afterwards the test checks the kind tag, the dataset input and
its digest, the step history, system metrics and the transfer-matrix
artifacts, then screenshots the runs table (Dataset column) and one child
run's metric charts into ``test-artifacts/``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from pipeline.cli_report import report_and_log
from pipeline.config import AttackRef, BenchmarkConfig, DatasetCfg, EvalCfg, MlflowCfg, ModelRef
from pipeline.eval_unit import EvalOutput
from pipeline.mlflow_ui import experiment_url, run_url
from pipeline.runner import run_benchmark
from pipeline.summary.points import point_list, read_eval_points
from tests.browser import chrome, keep_artifact
from tests.ops_helpers import mlflow_server

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "efficientnet_lite0"
PAIR = f"eval/sign/{MODEL}/{MODEL}"
EXPERIMENT = "review"
CLOSE_ASSISTANT = '[data-component-id="mlflow.assistant.chat_panel.close"]'
EXPAND_CHILDREN = '.ag-row [data-component-id*="runnamecellrenderer"]'  # the parent's "+"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    with mlflow_server(tmp_path / "mlflow") as uri:
        yield uri


def config(tmp_path: Path, uri: str) -> BenchmarkConfig:
    return BenchmarkConfig(
        name="review",
        dataset=DatasetCfg(layout="sample", limit=2),
        models=(ModelRef(MODEL),),
        attacks=(AttackRef("sign"),),
        tasks=("clean", "min_perturbation", "norm_sweep"),
        output_dir=str(tmp_path / "results"),
        mlflow=MlflowCfg(tracking_uri=uri, experiment=EXPERIMENT),
        shard_size=1,  # two evaluation units: two steps to chart
        batch_size=2,
        eval=EvalCfg(dense_check=0),
    )


def test_a_run_is_reviewable_in_the_mlflow_ui(
    server: str, local_ray: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver = chrome(tmp_path)  # skip before the run when there is no browser
    try:
        monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1")
        client = MlflowClient(server)
        existing = client.create_experiment(EXPERIMENT)  # made before foveabench marked them
        client.set_experiment_tag(existing, "mlflow.experimentKind", "genai_development")
        seen: list[dict[str, Any]] = []

        def read_while_running(out: EvalOutput) -> None:
            """In the driver, after the unit's metrics were logged, before the run ends."""
            state = json.loads((tmp_path / "results/review/mlflow.json").read_text())
            child = state["children"][MODEL]
            history = client.get_metric_history(child, f"{PAIR}/acc_at_linf_5.3")
            seen.append(
                {
                    "status": client.get_run(state["parent"]).info.status,
                    "shard": out.unit.shard,
                    "steps": [m.step for m in history],
                }
            )

        summary = run_benchmark(
            config(tmp_path, server), on_eval_unit_done=read_while_running, report=report_and_log
        )
        assert not summary.failed_units and summary.computed_eval_units == 2
        assert [s["status"] for s in seen] == ["RUNNING", "RUNNING"]
        assert [s["steps"] for s in seen] == [[1], [1, 2]], seen

        parent_id = summary.mlflow_run_id
        assert parent_id is not None
        parent = client.get_run(parent_id)
        exp_id = parent.info.experiment_id
        assert exp_id == existing and parent.info.status == "FINISHED"
        kind = client.get_experiment(exp_id).tags["mlflow.experimentKind"]
        assert kind == "custom_model_development"
        child_id = json.loads((summary.run_dir / "mlflow.json").read_text())["children"][MODEL]
        check_dataset_inputs(client, parent_id, child_id, parent.data.tags["dataset_hash"])
        points = point_list(read_eval_points(summary.run_dir))  # fixed before the evaluation
        assert ("linf", 5.3) in points  # sign is evaluated on its own norm, L-infinity
        check_metrics(client, parent_id, child_id)
        check_transfer_artifacts(client, parent_id, tmp_path, points)

        runs_table(driver, server, exp_id, parent.data.tags["dataset_hash"], tmp_path)
        child_charts(driver, server, exp_id, child_id, tmp_path)
    finally:
        driver.quit()


def check_dataset_inputs(client: MlflowClient, parent_id: str, child_id: str, digest: str) -> None:
    for run_id in (parent_id, child_id):
        (given,) = client.get_run(run_id).inputs.dataset_inputs
        assert given.dataset.name == "sample:" and given.dataset.digest == digest
        assert given.dataset.source_type == "local"
        assert json.loads(given.dataset.source)["uri"].endswith("pipeline/data/sample_set.py")
        assert json.loads(given.dataset.profile) == {"num_rows": 2, "bad_rows": 0}
        assert {(t.key, t.value) for t in given.tags} == {("mlflow.data.context", "eval")}


def check_metrics(client: MlflowClient, parent_id: str, child_id: str) -> None:
    history = client.get_metric_history(child_id, f"{PAIR}/acc_at_linf_5.3")
    assert [m.step for m in history] == [1, 2] and all(0 <= m.value <= 1 for m in history)
    done = client.get_metric_history(child_id, f"{PAIR}/images_done")
    assert [(m.step, m.value) for m in done] == [(1, 1.0), (2, 2.0)]
    parent = client.get_run(parent_id).data.metrics
    final = parent[f"transfer/sign/{MODEL}/{MODEL}/acc_at_linf_5.3"]  # from summary/ at the end
    assert history[-1].value == pytest.approx(final), "the running accuracy ends off the summary"
    assert "system/cpu_utilization_percentage" in parent
    assert 0 <= parent[f"headline/clean_top5/{MODEL}"] <= 1  # the headline, on the parent
    assert parent[f"headline/median_linf/sign/{MODEL}"] > 0
    assert parent["system/system_memory_usage_megabytes"] > 0


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
    assert [row[:2] for row in table["data"]] == [[MODEL, MODEL]]


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
    wait_for(driver, lambda d: len(d.find_elements("css selector", datasets)) == 2, "2 datasets")
    assert {e.text for e in driver.find_elements("css selector", datasets)} == {
        f"sample: ({digest})"
    }
    wait_for(driver, body_has(f"review/{MODEL}"), "the child run")
    keep_view(driver, tmp_path / "mlflow_runs_table.png")


def child_charts(driver: Any, server: str, exp_id: str, child_id: str, tmp_path: Path) -> None:
    """The child run's model-metrics tab charts the step-indexed evaluation progress."""
    url = run_url(server, exp_id, child_id, "model-metrics")
    assert url is not None
    driver.get(url)
    wait_for(driver, body_has(PAIR, "acc_at_linf_5.3", "images_done"), "the eval/ charts")
    traces = ".js-plotly-plot .scatterlayer .trace"
    wait_for(driver, lambda d: d.find_elements("css selector", traces), "a drawn line")
    keep_view(driver, tmp_path / "mlflow_child_metrics.png")
