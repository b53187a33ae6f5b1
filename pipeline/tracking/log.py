"""What a run logs to its MLflow runs: metrics, tags, artifacts, tables, the dataset input
and system metrics (parameters are logged once, when the session creates the parent), plus
what a resumed run reads back so that it logs nothing twice (the last step of a curve, the
latest values, the logged files).

Every call goes through the session's guard: a store that fails is one warning, and the
run goes on with its results on disk (pipeline.tracking.session).
"""

from __future__ import annotations

import posixpath
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlflow.entities import DatasetInput, Metric

from pipeline.results.storage import Location
from pipeline.tracking import queries
from pipeline.tracking.session import Session


class RunLog(Session):
    """The session's runs, logged to."""

    def last_step(self, key: str, model: str | None = None) -> int:
        """The highest step logged for metric ``key`` (0: none, or MLflow unavailable),
        so that a resumed run continues its running curves instead of restarting them."""
        run_id = self.run_id(model)
        steps: list[int] = []
        if run_id and self.available:
            self._guard(lambda: steps.extend(queries.metric_steps(self.client, run_id, key)))
        return max(steps, default=0)

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
            self._guard(lambda: logged.update(queries.latest_metrics(self.client, run_id)))
        return logged

    def logged_artifacts(self, model: str | None, directory: str | None) -> set[str] | None:
        """Paths already logged under ``directory`` (recursive); ``None`` if MLflow failed."""
        run_id = self.run_id(model)
        if not run_id or not self.available:
            return None
        found: set[str] = set()
        self._guard(lambda: found.update(queries.artifact_files(self.client, run_id, directory)))
        return found if self.available else None

    def set_tags(self, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            if self.parent_id:
                self._guard(self.client.set_tag, self.parent_id, key, value)

    # -- reviewing in the MLflow UI (issue 15) ----------------------------------------
    def log_dataset(self, dataset: DatasetInput) -> None:
        """The run's input (pipeline.tracking.dataset) on the parent and every child run.

        MLflow keeps one entry per (name, digest) and run, so logging it on every
        resumed start adds nothing twice.
        """
        for run_id in [self.parent_id, *self.children.values()]:
            if run_id:
                self._guard(self.client.log_inputs, run_id, [dataset])

    def start_system_metrics(self) -> None:
        """CPU, memory, disk, network (and GPU where NVML finds one) on the parent run
        (pipeline.tracking.system_metrics); ``finish`` stops it."""
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
            if artifact_file not in queries.artifact_files(self.client, run_id, directory):
                self.client.log_table(run_id, frame, artifact_file)
                return
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / posixpath.basename(artifact_file)
                frame.to_json(path, orient="split", index=False)
                self.client.log_artifact(run_id, str(path), directory)

        self._guard(log)


def _now_ms() -> int:
    return int(time.time() * 1000)
