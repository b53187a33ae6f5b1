"""Library log lines go to a file of the run, not to the user's terminal.

Why: MLflow's INFO lines (system metrics monitor, alembic migrations) and Ray's notices
(token authentication, "started a local instance" details) interleave with the progress
bars and bury the results. While a run is driven, the loggers of these libraries write
to ``<run>/logs/driver.log`` (a temporary file when the run lives on an object store);
their errors still reach the terminal. Workers' output is Ray's to forward, unchanged.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.results.storage import Location

#: Top-level loggers of the libraries a run drives (their children propagate to these).
LIBRARIES = ("mlflow", "ray", "alembic", "urllib3", "filelock", "huggingface_hub", "timm")
LOG_NAME = "driver.log"


def log_path(run_dir: Location) -> Path:
    """Where a run's library log lines go."""
    if run_dir.is_local:
        folder = run_dir.local_path / "logs"
    else:
        folder = Path(tempfile.gettempdir()) / "foveabench-logs" / run_dir.name
    folder.mkdir(parents=True, exist_ok=True)
    return folder / LOG_NAME


class _FileLines(logging.FileHandler):
    """One line per record in one format, whatever a library does to its handlers (Ray and
    MLflow set their own formatter, and Ray an empty line terminator, on set-up)."""

    FORMAT = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    failed = False  # a record could not be written (said once)

    def emit(self, record: logging.LogRecord) -> None:
        self.formatter, self.terminator = self.FORMAT, "\n"
        super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        """A full disk: one line, once, instead of logging's traceback for every record."""
        if not self.failed:
            self.failed = True
            print(
                f"logs: cannot write {self.baseFilename} ({sys.exc_info()[1]}); the "
                "libraries' log lines are dropped from here on",
                file=sys.stderr,
            )


@contextmanager
def library_logs_to(path: Path) -> Iterator[Path]:
    """Route the libraries' loggers to ``path`` (errors also to the terminal) while the
    block runs; their handlers and propagation are restored after it."""
    to_file = _FileLines(path, encoding="utf-8")
    errors = logging.StreamHandler()
    errors.setLevel(logging.ERROR)
    saved = {}
    for name in LIBRARIES:
        logger = logging.getLogger(name)
        saved[name] = (list(logger.handlers), logger.propagate)
        logger.handlers = [to_file, errors]
        logger.propagate = False
    try:
        yield path
    finally:
        for name, (handlers, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers, logger.propagate = handlers, propagate
        to_file.close()
