"""The run's MLflow session: a parent run per benchmark run, a child run per model.

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
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow.entities import Run, RunStatus
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from pipeline.results.catalogue import MLFLOW_STATE
from pipeline.results.storage import Location, RunDir, location
from pipeline.results.write_error import ResultWriteError
from pipeline.run import interrupts
from pipeline.tracking import queries
from pipeline.tracking.store import bound_http_requests, check_sqlite_store, outage
from pipeline.tracking.system_metrics import SystemMetrics

STATE_FILE = MLFLOW_STATE
#: MLflow's experiment-kind tag; "custom_model_development" is its model-training kind.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


class Session:
    """One benchmark run's MLflow runs, opened, reopened and closed; every call is a no-op
    after the store failed (the logging calls are :class:`pipeline.tracking.log.RunLog`'s)."""

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
        self._guard(lambda: self._open_parent(run_name, tags, params, reuse_by_name))
        self._guard(lambda: self._open_children(run_name, tags, models))
        self._guard(self.fail_orphans, models)

    def _open_parent(
        self, run_name: str, tags: Mapping[str, str], params: Mapping[str, Any], reuse: bool
    ) -> None:
        """Reopen the parent run that ``mlflow.json`` (or, with ``reuse``, its name) names,
        else create it with its parameters."""
        exp_id = self._experiment_id()
        self._mark_experiment(exp_id)
        state = self._load_state()
        existing = state.get("parent") if state else None
        if not queries.run_exists(self.client, existing) and reuse:
            found = self._find_parent(exp_id, run_name, tags.get("config_name", ""))
            existing = found.info.run_id if found else None
            state = {"children": queries.children_by_model(self.client, found)} if found else None
        if existing and state is not None and queries.run_exists(self.client, existing):
            self.parent_id = existing
            self.children = dict(state.get("children", {}))
            self.client.update_run(existing, status="RUNNING")
            return
        run = self.client.create_run(
            exp_id, run_name=run_name, tags={**tags, MLFLOW_RUN_NAME: run_name}
        )
        self.parent_id = run.info.run_id
        for key, value in params.items():
            self.client.log_param(self.parent_id, key, _param(value))

    def _open_children(self, run_name: str, tags: Mapping[str, str], models: list[str]) -> None:
        """A child run per model that has none (or whose run is gone); then ``mlflow.json``."""
        for model in models:
            if not queries.run_exists(self.client, self.children.get(model)):
                child = self.client.create_run(
                    str(self.experiment_id),
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
        running = queries.running_runs(self.client, self._experiment_id())
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

    def finish(self, success: bool = True, status: str | None = None) -> None:
        """Terminate every run: FINISHED, FAILED, or ``status`` (e.g. KILLED on interrupt)."""
        status = status or RunStatus.to_string(RunStatus.FINISHED if success else RunStatus.FAILED)
        self._system.stop()  # its last samples land while the run is still RUNNING

        def close() -> None:
            for run_id in [*self.children.values(), self.parent_id]:
                if run_id:
                    self.client.set_terminated(run_id, status=status)

        self._guard(close)

    def run_id(self, model: str | None = None) -> str | None:
        return self.children.get(model) if model else self.parent_id

    def _mark_experiment(self, exp_id: str) -> None:
        """Tag the experiment as model training (new and existing ones, every start).

        It is what MLflow's API and UI write for the kind. MLflow 3.17's open-source
        UI, though, opens an experiment by its ``workflowType`` switch, not by this
        tag (its bundle reads the tag only when a build flag is off, and ships with
        it on), so the links foveabench writes set the switch (pipeline.tracking.urls).
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
        why = queries.unreachable(self.tracking_uri)
        if why is not None:
            self._guard(_raise, ConnectionError(why))
            return False
        return True

    def _find_parent(self, exp_id: str, run_name: str, config_name: str) -> Run | None:
        filter_string = (
            f"tags.`{MLFLOW_RUN_NAME}` = '{run_name}' and tags.config_name = '{config_name}'"
        )
        parents = queries.parent_runs(self.client, exp_id, filter_string, max_results=20)
        return parents[0] if parents else None

    def _experiment_id(self) -> str:
        exp = self.client.get_experiment_by_name(self.experiment)
        if exp is not None:
            return str(exp.experiment_id)
        location = None
        if self.tracking_uri.startswith("sqlite:") or "://" not in self.tracking_uri:
            self.artifact_root.mkdir(parents=True, exist_ok=True)
            location = self.artifact_root.resolve().as_uri()
        return str(self.client.create_experiment(self.experiment, artifact_location=location))

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


def _raise(exc: Exception) -> None:
    raise exc
