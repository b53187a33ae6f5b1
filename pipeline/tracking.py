"""MLflow streaming: a parent run per benchmark run, a child run per model.

Results land on disk first; MLflow mirrors them. The run ids are kept in
``<run_dir>/mlflow.json`` so that a resumed run logs into the same runs and
never duplicates what was logged. If the tracking store is unreachable the
benchmark goes on: one warning, and the tracker stops trying; ``foveabench
sync RUN_DIR`` (or the next run, at its start) logs what is missing later.
An HTTP tracking server is probed once with a short timeout first, so an
outage costs seconds, not MLflow's minutes of request retries.
"""

from __future__ import annotations

import json
import posixpath
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import DatasetInput, Metric, RunStatus
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from pipeline import interrupts
from pipeline.catalogue import MLFLOW_STATE
from pipeline.mlflow_gateway import bound_http_requests, outage, unreachable
from pipeline.storage import Location, RunDir, location
from pipeline.system_metrics import SystemMetrics
from pipeline.tracking_store import check_sqlite_store
from pipeline.write_error import ResultWriteError

STATE_FILE = MLFLOW_STATE
#: MLflow's experiment-kind tag; "custom_model_development" is its model-training kind.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


class Tracker:
    """Logs one benchmark run; every call is a no-op after the store failed."""

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        run_dir: RunDir,
        artifact_root: Path,
        request_timeout_s: int = 30,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.request_timeout_s = request_timeout_s
        if tracking_uri.startswith(("http://", "https://")):
            bound_http_requests(request_timeout_s)
        self.experiment = experiment
        self.run_dir = location(run_dir)
        self.artifact_root = artifact_root
        check_sqlite_store(tracking_uri)
        self.parent_id: str | None = None
        self.children: dict[str, str] = {}
        self.available = True
        self.experiment_id: str | None = None
        self._system = SystemMetrics()
        self.client: MlflowClient  # set unless the store cannot even be created
        self._guard(self._connect)  # a full disk fails here: the run goes on without it

    def _connect(self) -> None:
        """The client; on a ``sqlite:///`` URI this creates and migrates the store."""
        self.client = MlflowClient(tracking_uri=self.tracking_uri)

    # -- lifecycle ---------------------------------------------------------------------
    def start(
        self,
        run_name: str,
        tags: Mapping[str, str],
        params: Mapping[str, Any],
        models: list[str],
        reuse_by_name: bool = False,
    ) -> None:
        """Open (or reopen) the parent and child runs.

        ``reuse_by_name``: when the run dir has no state (a fresh checkout on
        another machine), reopen an existing parent run of the same name and
        ``config_name`` instead of creating a second one (nightly runs).
        """
        if not self._probe():
            return
        self._guard(self._start, run_name, tags, params, models, reuse_by_name)
        self._guard(self.fail_orphans, models)

    def _start(
        self,
        run_name: str,
        tags: Mapping[str, str],
        params: Mapping[str, Any],
        models: list[str],
        reuse_by_name: bool,
    ) -> None:
        exp_id = self._experiment_id()
        self._mark_experiment(exp_id)
        state = self._load_state()
        existing = state.get("parent") if state else None
        if not self._run_exists(existing) and reuse_by_name:
            existing = self._find_parent(exp_id, run_name, tags.get("config_name", ""))
            state = {"children": self._find_children(exp_id, existing)} if existing else None
        if existing and state is not None and self._run_exists(existing):
            self.parent_id = existing
            self.children = dict(state.get("children", {}))
            self.client.update_run(existing, status="RUNNING")
        else:
            run = self.client.create_run(
                exp_id, run_name=run_name, tags={**tags, MLFLOW_RUN_NAME: run_name}
            )
            self.parent_id = run.info.run_id
            for key, value in params.items():
                self.client.log_param(self.parent_id, key, _param(value))
        for model in models:
            if model not in self.children or not self._run_exists(self.children[model]):
                child = self.client.create_run(
                    exp_id,
                    run_name=f"{run_name}/{model}",
                    tags={**tags, MLFLOW_PARENT_RUN_ID: self.parent_id, "model": model},
                )
                self.children[model] = child.info.run_id
        self._save_state()

    def fail_orphans(self, models: list[str]) -> list[str]:
        """Mark FAILED the RUNNING runs of this run dir that this start did not reopen.

        A driver that dies without closing its runs (killed, or a full disk that
        also held the store) leaves them RUNNING. The next start of the same run
        dir (runs carry its absolute path in the ``run_dir`` tag) reopens the runs
        named in ``mlflow.json`` for the ``models`` it runs; any other RUNNING run
        of that dir (after ``--fresh``, a model dropped from the config, a state
        file never written) is an orphan and is closed here, with a line saying so.
        """
        if not self.parent_id:
            return []
        in_use = {self.parent_id, *(self.children[m] for m in models if m in self.children)}
        run_dir = str(self.run_dir)
        running = self.client.search_runs(
            [self._experiment_id()], filter_string="attributes.status = 'RUNNING'", max_results=1000
        )
        orphans = [
            r
            for r in running
            if r.data.tags.get("run_dir") == run_dir and r.info.run_id not in in_use
        ]
        for run in orphans:
            self.client.set_terminated(run.info.run_id, status="FAILED")
            print(
                f"mlflow: run {run.info.run_id} ({run.info.run_name}) of {run_dir} was left "
                "RUNNING by a start that died without closing it (killed, or out of disk); "
                f"marked FAILED; this start logs to run {self.parent_id}",
                file=sys.stderr,
            )
        return [r.info.run_id for r in orphans]

    def last_step(self, key: str, model: str | None = None) -> int:
        """The highest step logged for metric ``key`` (0: none, or MLflow unavailable),
        so that a resumed run continues its running curves instead of restarting them."""
        run_id = self.run_id(model)
        steps: list[int] = []
        if run_id and self.available:
            self._guard(
                lambda: steps.extend(m.step for m in self.client.get_metric_history(run_id, key))
            )
        return max(steps, default=0)

    def finish(self, success: bool = True, status: str | None = None) -> None:
        """Terminate every run: FINISHED, FAILED, or ``status`` (e.g. KILLED on interrupt)."""
        status = status or RunStatus.to_string(RunStatus.FINISHED if success else RunStatus.FAILED)
        self._system.stop()  # its last samples land while the run is still RUNNING

        def close() -> None:
            for run_id in [*self.children.values(), self.parent_id]:
                if run_id:
                    self.client.set_terminated(run_id, status=status)

        self._guard(close)

    # -- logging -----------------------------------------------------------------------
    def log_artifact(self, path: Location, model: str | None = None) -> None:
        """Log a result file under its path relative to the run dir (a file on an object
        store is fetched to a temporary file first: MLflow logs local files)."""
        run_id = self.children.get(model) if model else self.parent_id
        rel = path.parent.relative_to(self.run_dir).as_posix()
        artifact_path = None if rel == "." else rel
        if not run_id or not self.available:
            return
        if path.is_local:
            self._guard(self.client.log_artifact, run_id, str(path), artifact_path)
            return
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / path.name
            local.write_bytes(path.read_bytes())
            self._guard(self.client.log_artifact, run_id, str(local), artifact_path)

    def log_metrics(
        self, metrics: Mapping[str, float], step: int, model: str | None = None
    ) -> None:
        run_id = self.children.get(model) if model else self.parent_id
        if not run_id or not metrics:
            return
        batch = [Metric(k, float(v), _now_ms(), step) for k, v in metrics.items() if v == v]
        self._guard(lambda: self.client.log_batch(run_id, metrics=batch))

    def log_metrics_once(self, metrics: Mapping[str, float], model: str | None = None) -> int:
        """Log final metrics whose latest logged value differs; return how many were logged.

        A resumed or synced run therefore adds no duplicate history points.
        """
        if not self.run_id(model) or not metrics or not self.available:
            return 0
        logged = self.latest_metrics(model)
        missing = {
            k: v for k, v in metrics.items() if v == v and (k not in logged or logged[k] != v)
        }
        self.log_metrics(missing, step=0, model=model)
        return len(missing) if self.available else 0

    def latest_metrics(self, model: str | None = None) -> dict[str, float]:
        """Each metric's latest value on the run ({} when MLflow failed)."""
        run_id, logged = self.run_id(model), {}
        if run_id and self.available:
            self._guard(lambda: logged.update(self.client.get_run(run_id).data.metrics))
        return logged

    def logged_artifacts(self, model: str | None, directory: str | None) -> set[str] | None:
        """Paths already logged under ``directory`` (recursive); ``None`` if MLflow failed."""
        run_id = self.run_id(model)
        if not run_id or not self.available:
            return None
        found: set[str] = set()

        def walk(path: str | None) -> None:
            for info in self.client.list_artifacts(run_id, path):
                if info.is_dir:
                    walk(info.path)
                else:
                    found.add(info.path)

        self._guard(walk, directory)
        return found if self.available else None

    def run_id(self, model: str | None = None) -> str | None:
        return self.children.get(model) if model else self.parent_id

    def set_tags(self, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            if self.parent_id:
                self._guard(self.client.set_tag, self.parent_id, key, value)

    # -- reviewing in the MLflow UI (issue 15) ----------------------------------------
    def log_dataset(self, dataset: DatasetInput) -> None:
        """The run's input (pipeline.mlflow_dataset) on the parent and every child run.

        MLflow keeps one entry per (name, digest) and run, so logging it on every
        resumed start adds nothing twice.
        """
        for run_id in [self.parent_id, *self.children.values()]:
            if run_id:
                self._guard(self.client.log_inputs, run_id, [dataset])

    def start_system_metrics(self) -> None:
        """CPU, memory, disk, network (and GPU where NVML finds one) on the parent run
        (pipeline.system_metrics); ``finish`` stops it."""
        if self.available and self.parent_id:
            self._system.start(self.parent_id, self.tracking_uri)

    def log_bytes(self, data: bytes, artifact_file: str) -> None:
        """A file made in memory (a figure) on the parent run, at ``artifact_file``."""
        run_id = self.parent_id
        if not run_id:
            return
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / posixpath.basename(artifact_file)
            path.write_bytes(data)
            directory = posixpath.dirname(artifact_file) or None
            self._guard(self.client.log_artifact, run_id, str(path), directory)

    def log_table(self, columns: Mapping[str, Sequence[Any]], artifact_file: str) -> None:
        """A table artifact (``MlflowClient.log_table``, read by MLflow's table viewer).

        ``log_table`` appends to an existing file; a rerun's table replaces it
        instead, written in the same format (pandas ``split`` JSON).
        """
        run_id = self.parent_id
        if not run_id:
            return

        def log() -> None:
            import pandas as pd

            frame = pd.DataFrame({k: list(v) for k, v in columns.items()})
            directory = posixpath.dirname(artifact_file) or None
            logged = {a.path for a in self.client.list_artifacts(run_id, directory)}
            if artifact_file not in logged:
                self.client.log_table(run_id, frame, artifact_file)
                return
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / posixpath.basename(artifact_file)
                frame.to_json(path, orient="split", index=False)
                self.client.log_artifact(run_id, str(path), directory)

        self._guard(log)

    def _mark_experiment(self, exp_id: str) -> None:
        """Tag the experiment as model training (new and existing ones, every start).

        It is what MLflow's API and UI write for the kind. MLflow 3.17's open-source
        UI, though, opens an experiment by its ``workflowType`` switch, not by this
        tag (its bundle reads the tag only when a build flag is off, and ships with
        it on), so the links foveabench writes set the switch (pipeline.mlflow_ui).
        """
        self.experiment_id = exp_id
        self.client.set_experiment_tag(exp_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)

    # -- internals ---------------------------------------------------------------------
    def _guard(self, fn: Any, *args: Any) -> None:
        if not self.available:
            return
        try:
            with interrupts.deferred():  # never leave the store mid-transaction
                fn(*args)
        except ResultWriteError:  # the run dir's mlflow.json: a full disk, not MLflow's fault
            raise
        except Exception as exc:  # tracking must never take the benchmark down
            self.available = False
            warning, why = outage(self.tracking_uri, exc, self.request_timeout_s)
            warnings.warn(warning, stacklevel=2)
            print(f"warning: MLflow unavailable: {why}", file=sys.stderr)

    def _probe(self) -> bool:
        """Check an HTTP tracking server quickly; other stores are tried directly (a run
        creates its SQLite store)."""
        if not self.tracking_uri.startswith(("http://", "https://")):
            return True
        why = unreachable(self.tracking_uri)
        if why is not None:
            self._guard(_raise, ConnectionError(why))
            return False
        return True

    def _find_parent(self, exp_id: str, run_name: str, config_name: str) -> str | None:
        runs = self.client.search_runs(
            [exp_id],
            filter_string=f"tags.`{MLFLOW_RUN_NAME}` = '{run_name}' "
            f"and tags.config_name = '{config_name}'",
            max_results=20,
        )
        parents = [r for r in runs if MLFLOW_PARENT_RUN_ID not in r.data.tags]
        return parents[0].info.run_id if parents else None

    def _find_children(self, exp_id: str, parent: str | None) -> dict[str, str]:
        if not parent:
            return {}
        runs = self.client.search_runs(
            [exp_id], filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent}'", max_results=200
        )
        return {r.data.tags["model"]: r.info.run_id for r in runs if "model" in r.data.tags}

    def _experiment_id(self) -> str:
        exp = self.client.get_experiment_by_name(self.experiment)
        if exp is not None:
            return str(exp.experiment_id)
        location = None
        if self.tracking_uri.startswith("sqlite:") or "://" not in self.tracking_uri:
            self.artifact_root.mkdir(parents=True, exist_ok=True)
            location = self.artifact_root.resolve().as_uri()
        return str(self.client.create_experiment(self.experiment, artifact_location=location))

    def _run_exists(self, run_id: str | None) -> bool:
        if not run_id:
            return False
        try:
            return self.client.get_run(run_id).info.lifecycle_stage == "active"
        except mlflow.exceptions.MlflowException:
            return False

    def _state_path(self) -> Location:
        return self.run_dir / STATE_FILE

    def _load_state(self) -> dict[str, Any] | None:
        path = self._state_path()
        if not path.is_file():
            return None
        state = json.loads(path.read_text())
        return state if state.get("tracking_uri") == self.tracking_uri else None

    def _save_state(self) -> None:
        state = {
            "tracking_uri": self.tracking_uri,
            "parent": self.parent_id,
            "children": self.children,
        }
        self._state_path().write_text(json.dumps(state, indent=2))


def _param(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:6000]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _raise(exc: Exception) -> None:
    raise exc
