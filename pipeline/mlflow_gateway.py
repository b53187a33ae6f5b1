"""How foveabench reaches an MLflow store outside a run's tracker: one health probe and
one way to open a store for reading.

Why one place: the probe existed twice with different timeouts (the tracker's and the
report's), and clients were built by hand in the report, ``report RUN_ID`` and
``nightly``, each deciding anew whether a missing SQLite file may be created (looking a
run up must never create an empty store). The run's own lifecycle stays in
:class:`pipeline.tracking.Tracker`.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.config_error import excerpt

if TYPE_CHECKING:
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


def outage(uri: str, exc: BaseException, request_timeout_s: float) -> tuple[str, str]:
    """(the warning, its one-line cause) when MLflow at ``uri`` failed: bounded, since
    SQLAlchemy's messages run on with the SQL, and naming the request bound for a server."""
    slow = (
        f" (a request may take mlflow.request_timeout_s = {request_timeout_s} s)"
        if uri.startswith(("http://", "https://"))
        else ""
    )
    why = excerpt(str(exc).strip().split("\n")[0], 300)
    return (
        f"MLflow at {uri} failed ({type(exc).__name__}: {why}){slow}; "
        "results are still written to disk and the run goes on without tracking.",
        why,
    )


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


def local_mlflow_dir(output_dir: str | Path) -> Path:
    """Where the embedded SQLite store lives: next to the runs, or, when the runs are on
    an object store, in ``./foveabench-mlflow`` of the driver's working directory."""
    from pipeline.storage import is_uri  # pyarrow: not at import (the CLI stays light)

    return Path.cwd() / "foveabench-mlflow" if is_uri(output_dir) else Path(output_dir)


def default_tracking_uri(output_dir: str | Path) -> str:
    """``MLFLOW_TRACKING_URI`` when set (cluster jobs point it at the shared server),
    else the embedded default: a SQLite file (no server needed)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    return env or f"sqlite:///{(local_mlflow_dir(output_dir) / 'mlflow.db').resolve()}"


def ui_command(tracking_uri: str) -> str:
    return f"mlflow ui --backend-store-uri {tracking_uri}"


def bound_http_requests(timeout_s: int) -> None:
    """A server that answers /health and then hangs must not hold a run for MLflow's
    defaults (120 s per request, 7 retries with growing back-off: over 15 minutes per
    call): ``timeout_s`` per request and 2 retries, unless the environment says otherwise
    (MLflow reads these at each request)."""
    wanted = {
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout_s),
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    }
    for key, value in wanted.items():
        if key not in _USER_HTTP_SETTINGS:
            os.environ[key] = value


#: The MLflow HTTP settings the user's environment had when foveabench started: kept.
_HTTP_SETTINGS = (
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
)
_USER_HTTP_SETTINGS = {k for k in _HTTP_SETTINGS if k in os.environ}
