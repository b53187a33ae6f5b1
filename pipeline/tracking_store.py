"""Is the MLflow store usable at all? Checked before MLflow opens it (standard library only).

MLflow's SQLite store answers a damaged ``mlflow.db`` with an 80-line SQLAlchemy
traceback from inside ``MlflowClient()``; one line naming the file and the way on
(move it aside, rerun, ``sync``) is what the user needs.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.config_error import ConfigError

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
