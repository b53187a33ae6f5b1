"""MLflow's system metrics for one run, without the fluent API's global active run.

``SystemMetricsMonitor`` is given the run id and tracking URI explicitly, so it
runs beside the client-based Tracker: a thread sampling CPU, memory, disk and
network (and, where ``nvidia-ml-py`` finds an NVIDIA driver, each GPU's
utilisation and memory) every ``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL``
seconds (MLflow's default: 10) and logging them as ``system/*`` metrics. It
samples the machine the driver runs on: on a cluster that is the head node,
not the GPU workers. ``MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING=false`` turns it off.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

ENV_SWITCH = "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING"  # MLflow's own; on by default here
STOP_TIMEOUT_S = 30.0


class SystemMetrics:
    """Started with a run, stopped with it; every failure is a warning, never an error."""

    def __init__(self) -> None:
        self._monitor: Any = None

    def start(self, run_id: str, tracking_uri: str) -> None:
        """Sample into ``run_id``; a resumed run continues its steps."""
        if self._monitor is not None or os.environ.get(ENV_SWITCH, "").lower() in ("false", "0"):
            return
        try:
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            monitor = SystemMetricsMonitor(run_id, resume_logging=True, tracking_uri=tracking_uri)
        except Exception as exc:  # psutil missing, store down: the run goes on without them
            print(
                f"warning: no MLflow system metrics ({type(exc).__name__}: {exc})", file=sys.stderr
            )
            return
        monitor.start()
        self._monitor = monitor

    def stop(self) -> None:
        """Stop and flush the last samples, waiting at most ``STOP_TIMEOUT_S``: the
        sampling thread may sit in MLflow's minutes of HTTP retries if the server went down."""
        if self._monitor is None:
            return
        monitor, self._monitor = self._monitor, None
        stopper = threading.Thread(target=monitor.finish, name="stop-system-metrics", daemon=True)
        stopper.start()
        stopper.join(STOP_TIMEOUT_S)
        if stopper.is_alive():
            print("warning: MLflow system metrics did not stop in time", file=sys.stderr)
