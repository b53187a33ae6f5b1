"""Links into the MLflow UI (the routes of MLflow 3.17's single-page app, checked in Chromium).

MLflow 3.17 decides between its GenAI pages and its model-training pages by a
``workflowType`` switch (the URL's ``workflowType`` parameter, else the
browser's last choice, else GenAI), not by the experiment's
``mlflow.experimentKind`` tag, so a fresh browser opens any experiment on the
GenAI "Overview". Every link here sets ``workflowType=machine_learning``: it
opens on the runs table, the run page or the comparison view.

Only an HTTP tracking server has a UI to link to; for other stores every
function returns ``None`` (pages then name the ``mlflow ui`` command).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Sequence

WORKFLOW = "workflowType=machine_learning"


def _base(tracking_uri: str) -> str | None:
    if not tracking_uri.startswith(("http://", "https://")):
        return None
    return tracking_uri.rstrip("/") + "/#"


def experiment_url(tracking_uri: str, experiment_id: str) -> str | None:
    """The experiment's runs table."""
    base = _base(tracking_uri)
    if base is None or not experiment_id:
        return None
    return f"{base}/experiments/{experiment_id}/runs?{WORKFLOW}"


def run_url(tracking_uri: str, experiment_id: str, run_id: str, tab: str = "") -> str | None:
    """A run's page; ``tab`` e.g. ``model-metrics`` (charts) or ``artifacts/report/index.html``."""
    base = _base(tracking_uri)
    if base is None or not experiment_id:
        return None
    path = f"/experiments/{experiment_id}/runs/{run_id}" + (f"/{tab}" if tab else "")
    return f"{base}{path}?{WORKFLOW}"


def compare_url(
    tracking_uri: str, run_ids: Sequence[str], experiment_ids: Sequence[str]
) -> str | None:
    """MLflow's run-comparison view: ``#/compare-runs?runs=[...]&experiments=[...]``."""
    base = _base(tracking_uri)
    if base is None or len(run_ids) < 2:
        return None
    runs = urllib.parse.quote(json.dumps(list(run_ids)))
    exps = urllib.parse.quote(json.dumps(sorted(set(experiment_ids))))
    return f"{base}/compare-runs?runs={runs}&experiments={exps}&{WORKFLOW}"


#: Where ``mlflow ui`` serves by default (its ``--host`` and ``--port``).
LOCAL_UI = "http://127.0.0.1:5000"


def closing_lines(tracking_uri: str, experiment_id: str | None) -> list[str]:
    """The end of a run's terminal block: the runs page's URL on a tracking server; for a
    local store, the ``mlflow ui`` command and the URL it then serves the runs page at
    (without an experiment, when MLflow failed: the server, or the command alone)."""
    from pipeline.tracking.store import ui_command

    if _base(tracking_uri) is not None:
        return [f"mlflow:  {experiment_url(tracking_uri, experiment_id or '') or tracking_uri}"]
    local = experiment_url(LOCAL_UI, experiment_id or "")
    return [f"browse:  {ui_command(tracking_uri)}"] + ([f"  then:  {local}"] if local else [])
