"""Reading an MLflow store: the one health probe, one read-only client, and the lookups
every caller shares (runs by name, tag or status, a run's children, metrics, artifacts).

Why one place: the probe existed twice with different timeouts (the tracker's and the
report's), and clients were built by hand in the report, ``report RUN_ID`` and
``nightly``, each deciding anew whether a missing SQLite file may be created (looking a
run up must never create an empty store). MLflow is imported inside the functions, so
the CLI modules that import this stay light.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

#: A down server costs this many seconds, not MLflow's minutes of retries.
PROBE_TIMEOUT_S = 5.0


def unreachable(uri: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why the store at ``uri`` cannot be used now, or ``None`` when it can: an HTTP
    server must answer ``/health`` within ``timeout``; a SQLite store must exist."""
    if uri.startswith(("http://", "https://")):
        url = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout):
                return None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            return f"{url} is unreachable ({exc})"
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        return f"no MLflow store at {uri}"
    return None


def reader(uri: str) -> MlflowClient:
    """A client on an existing store (raises ``ConnectionError`` naming why not)."""
    why = unreachable(uri)
    if why is not None:
        raise ConnectionError(why)
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def run_tags(uri: str, run_id: str) -> dict[str, str] | None:
    """Tags of a run, or ``None`` when the store does not answer (the caller says so)."""
    if not uri or not run_id:
        return None
    try:
        return dict(reader(uri).get_run(run_id).data.tags)
    except Exception as exc:  # provenance falls back to what the run dir holds; say why
        print(f"report: MLflow tags unavailable ({type(exc).__name__}: {exc})", file=sys.stderr)
        return None


def _parent_tag() -> str:
    """MLflow's tag naming a child run's parent (imported here: MLflow is heavy)."""
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    return MLFLOW_PARENT_RUN_ID


def run_exists(client: MlflowClient, run_id: str | None) -> bool:
    """The run is in the store and not deleted."""
    if not run_id:
        return False
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id).info.lifecycle_stage == "active"
    except MlflowException:
        return False


def parent_of(client: MlflowClient, run_id: str) -> Run:
    """The run, or its parent when it is a per-model child run (``LookupError``, with
    MLflow's message, when the store has no such run)."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
        if _parent_tag() in run.data.tags:
            run = client.get_run(run.data.tags[_parent_tag()])
    except MlflowException as exc:
        raise LookupError(str(exc)) from None
    return run


def run_name_tag(run: Run) -> str | None:
    """The run's name as its ``mlflow.runName`` tag holds it."""
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

    return run.data.tags.get(MLFLOW_RUN_NAME)


def parent_runs(
    client: MlflowClient,
    experiment_id: str,
    filter_string: str,
    max_results: int,
    order_by: list[str] | None = None,
) -> list[Run]:
    """The runs matching ``filter_string`` that are no child of another run."""
    runs = client.search_runs(
        [experiment_id], filter_string=filter_string, order_by=order_by, max_results=max_results
    )
    return [r for r in runs if _parent_tag() not in r.data.tags]


def child_runs(client: MlflowClient, parent: Run, max_results: int = 500) -> list[Run]:
    """The per-model child runs of a parent run."""
    return client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`{_parent_tag()}` = '{parent.info.run_id}'",
        max_results=max_results,
    )


def children_by_model(client: MlflowClient, parent: Run) -> dict[str, str]:
    """model -> child run id, from the children's ``model`` tags."""
    runs = child_runs(client, parent, max_results=200)
    return {r.data.tags["model"]: r.info.run_id for r in runs if "model" in r.data.tags}


def running_runs(client: MlflowClient, experiment_id: str) -> list[Run]:
    """Every RUNNING run of the experiment (a died driver's are among them)."""
    return client.search_runs(
        [experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000
    )


def run_metrics(client: MlflowClient, parent_id: str) -> dict[str, float]:
    """Every metric of a parent run and its children, as ``<model>/<metric>`` for children."""
    parent = client.get_run(parent_id)
    out = dict(parent.data.metrics)
    for child in child_runs(client, parent):
        model = child.data.tags.get("model", child.info.run_name or child.info.run_id)
        out.update({f"{model}/{k}": v for k, v in child.data.metrics.items()})
    return out


def latest_metrics(client: MlflowClient, run_id: str) -> dict[str, float]:
    """Each metric's latest value on the run."""
    return dict(client.get_run(run_id).data.metrics)


def metric_steps(client: MlflowClient, run_id: str, key: str) -> list[int]:
    """The steps logged for metric ``key`` on the run."""
    return [m.step for m in client.get_metric_history(run_id, key)]


def artifact_files(client: MlflowClient, run_id: str, directory: str | None) -> set[str]:
    """Paths of every artifact file under ``directory`` (recursive)."""
    found: set[str] = set()

    def walk(path: str | None) -> None:
        for info in client.list_artifacts(run_id, path):
            if info.is_dir:
                walk(info.path)
            else:
                found.add(info.path)

    walk(directory)
    return found


def download_run(uri: str, run_id: str, dest: Path) -> None:
    """A run's artifacts into ``dest``, under the paths they were logged at."""
    from mlflow.artifacts import download_artifacts

    download_artifacts(run_id=run_id, dst_path=str(dest), tracking_uri=uri)
