"""The run's tracker: the one object the runner, the stages and ``sync`` hold.

A thin facade over the package's jobs: the session (start, reopen, orphaned runs,
finish: :mod:`pipeline.tracking.session`) and the logging (metrics, artifacts, tables,
datasets, system metrics: :mod:`pipeline.tracking.log`); lookups are
:mod:`pipeline.tracking.queries`.
"""

from __future__ import annotations

from pipeline.tracking.log import RunLog
from pipeline.tracking.session import STATE_FILE

__all__ = ["STATE_FILE", "Tracker"]


class Tracker(RunLog):
    """Logs one benchmark run; every call is a no-op after the store failed."""
