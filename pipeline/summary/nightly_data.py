"""What the nightly regression page draws, as plain values: compared metrics, the runs and
their links (resolved by pipeline.ops.regression, so the dashboards read and probe nothing).

This module reads no file and imports nothing that does (tests/test_layering.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

#: Statuses a metric is flagged for: it moved past its rule, or it vanished.
BROKEN = ("regression", "missing")


@dataclass
class Comparison:
    metric: str
    baseline: float | None
    current: float | None
    delta: float | None
    rel_change: float | None
    status: str  # regression | ok | new | ignored | missing
    rule: str = ""


@dataclass(frozen=True)
class RunRef:
    """One MLflow run a regression report points at (so the page can link to it)."""

    run_id: str
    name: str
    experiment_id: str = ""
    run_dir: str = ""  # the run's ``run_dir`` tag: where its Parquet and report live
    git_sha: str = ""
    start_time_ms: int | None = None
    children: tuple[str, ...] = ()  # the per-model child runs, where most metrics live

    @property
    def run_ids(self) -> list[str]:
        """The parent and its children: what a comparison in MLflow should show."""
        return [self.run_id, *self.children]


@dataclass(frozen=True)
class RunLinks:
    """Where a reviewer opens one compared run (``None``: no such place, e.g. no UI)."""

    mlflow_run: str | None = None
    report_in_mlflow: str | None = None
    compare_with_tonight: str | None = None  # baselines only
    report_on_disk: str | None = None  # a file URI, when the report exists on this machine


@dataclass(frozen=True)
class NightlyPage:
    """A regression report with every link resolved: what dashboards.nightly draws."""

    run_name: str
    config_name: str
    verdict: str
    tracking_uri: str
    compare_url: str | None
    current: RunRef | None
    baselines: tuple[RunRef, ...]
    rows: tuple[Comparison, ...]
    links: Mapping[str, RunLinks] = field(default_factory=dict)  # by run id

    @property
    def regressions(self) -> list[Comparison]:
        return broken(self.rows)


def broken(rows: Sequence[Comparison]) -> list[Comparison]:
    """The rows that regressed or went missing."""
    return [r for r in rows if r.status in BROKEN]


def fmt_num(v: float | None, pct: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v:+.1%}" if pct else f"{v:.6g}"
