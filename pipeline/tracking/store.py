"""Which MLflow store a run uses and how it is reached (standard library only).

Where the store is (``default_tracking_uri``: the environment's, else a SQLite file next
to the runs), whether it can be opened at all (MLflow's SQLite store answers a damaged
``mlflow.db`` with an 80-line SQLAlchemy traceback from inside ``MlflowClient()``; one
line naming the file and the way on, move it aside, rerun, ``sync``, is what the user
needs), how long a request to a server may take, and the one warning an outage gives.
Whether a store answers now is :func:`pipeline.tracking.queries.unreachable`.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.config.error import ConfigError, excerpt

SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database


class TrackingStoreError(ConfigError):
    """The MLflow store cannot be opened at all; the message names it and the way on."""

    label = "mlflow error"


def check_sqlite_store(tracking_uri: str) -> None:
    """A ``sqlite:///`` store that exists but is no SQLite database (damaged, or another
    file) is one clear error before anything runs, not SQLAlchemy's 80-line traceback."""
    if not tracking_uri.startswith("sqlite:///"):
        return
    path = Path(tracking_uri.removeprefix("sqlite:///"))
    try:
        with path.open("rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return  # MLflow creates it
    except OSError as exc:
        raise TrackingStoreError(f"{path}: the MLflow store cannot be read ({exc})") from None
    if head and head != SQLITE_HEADER:
        raise TrackingStoreError(
            f"{path}: the MLflow store is not an SQLite database (damaged, or another file); "
            f"the results on disk are untouched: move it aside (mv {path} {path}.broken) and "
            "rerun, then `foveabench sync RUN_DIR` re-logs each run; or set mlflow.tracking_uri"
        )


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


def local_mlflow_dir(output_dir: str | Path) -> Path:
    """Where the embedded SQLite store lives: next to the runs, or, when the runs are on
    an object store, in ``./foveabench-mlflow`` of the driver's working directory."""
    from pipeline.results.storage import is_uri  # pyarrow: not at import (the CLI stays light)

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
