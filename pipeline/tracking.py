"""MLflow streaming: a parent run per benchmark run, a child run per model.

Results land on disk first; MLflow mirrors them. The run ids are kept in
``<run_dir>/mlflow.json`` so that a resumed run logs into the same runs and
never duplicates what was logged. If the tracking store is unreachable the
benchmark goes on: one warning, and the tracker stops trying.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, RunStatus
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

STATE_FILE = "mlflow.json"


def default_tracking_uri(output_dir: Path) -> str:
    """The embedded default: a SQLite file next to the runs (no server needed)."""
    return f"sqlite:///{(output_dir / 'mlflow.db').resolve()}"


def ui_command(tracking_uri: str) -> str:
    return f"mlflow ui --backend-store-uri {tracking_uri}"


class Tracker:
    """Logs one benchmark run; every call is a no-op after the store failed."""

    def __init__(
        self, tracking_uri: str, experiment: str, run_dir: Path, artifact_root: Path
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_dir = run_dir
        self.artifact_root = artifact_root
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.parent_id: str | None = None
        self.children: dict[str, str] = {}
        self.available = True

    # -- lifecycle ---------------------------------------------------------------------
    def start(
        self, run_name: str, tags: Mapping[str, str], params: Mapping[str, Any], models: list[str]
    ) -> None:
        self._guard(self._start, run_name, tags, params, models)

    def _start(
        self, run_name: str, tags: Mapping[str, str], params: Mapping[str, Any], models: list[str]
    ) -> None:
        exp_id = self._experiment_id()
        state = self._load_state()
        if state and self._run_exists(state.get("parent")):
            self.parent_id = state["parent"]
            self.children = dict(state.get("children", {}))
            self.client.update_run(self.parent_id, status="RUNNING")
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

    def finish(self, success: bool) -> None:
        status = RunStatus.to_string(RunStatus.FINISHED if success else RunStatus.FAILED)

        def close() -> None:
            for run_id in [*self.children.values(), self.parent_id]:
                if run_id:
                    self.client.set_terminated(run_id, status=status)

        self._guard(close)

    # -- logging -----------------------------------------------------------------------
    def log_artifact(self, path: Path, model: str | None = None) -> None:
        """Log a result file under its path relative to the run dir."""
        run_id = self.children.get(model) if model else self.parent_id
        rel = path.parent.relative_to(self.run_dir).as_posix()
        artifact_path = None if rel == "." else rel
        if run_id:
            self._guard(self.client.log_artifact, run_id, str(path), artifact_path)

    def log_metrics(
        self, metrics: Mapping[str, float], step: int, model: str | None = None
    ) -> None:
        run_id = self.children.get(model) if model else self.parent_id
        if not run_id or not metrics:
            return
        batch = [Metric(k, float(v), _now_ms(), step) for k, v in metrics.items() if v == v]
        self._guard(lambda: self.client.log_batch(run_id, metrics=batch))

    def set_tags(self, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            if self.parent_id:
                self._guard(self.client.set_tag, self.parent_id, key, value)

    # -- internals ---------------------------------------------------------------------
    def _guard(self, fn: Any, *args: Any) -> None:
        if not self.available:
            return
        try:
            fn(*args)
        except Exception as exc:  # tracking must never take the benchmark down
            self.available = False
            warnings.warn(
                f"MLflow at {self.tracking_uri} failed ({type(exc).__name__}: {exc}); results are "
                "still written to disk and the run goes on without tracking.",
                stacklevel=2,
            )
            print(f"warning: MLflow unavailable: {exc}", file=sys.stderr)

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

    def _state_path(self) -> Path:
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
    import time

    return int(time.time() * 1000)
