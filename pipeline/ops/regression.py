"""Compare a run's metrics with a baseline: thresholds and verdicts (the page: dashboards.nightly).

Thresholds are data (YAML), matched by metric-name glob, first match wins::

    defaults: {abs: 0.0, rel: 0.05}          # when no rule matches
    ignore: ["*running/*", "*images_done", "*eval/*", "system/*"]   # progress, hardware
    metrics:
      "*/clean_top*": {abs: 0.02}             # accuracy: 2 points
      "*/mp/*/median_*": {rel: 0.10}          # norms: 10 %
      "*/mp/*/success_rate": {abs: 0.05, direction: decrease}

A metric regresses when its change exceeds *both* its absolute and its
relative tolerance (a missing one is 0), so a tiny norm cannot trip a
relative rule and a large one cannot trip on noise; ``direction`` restricts
the verdict to increases or decreases. A metric present in the baseline but
absent now is a regression too (a model or attack silently disappeared).
"""

from __future__ import annotations

import fnmatch
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.summary.nightly_data import (
    Comparison,
    NightlyPage,
    RunLinks,
    RunRef,
    broken,
    fmt_num,
)
from pipeline.tracking.urls import compare_url, run_url
from pipeline.user_error import UserError

DEFAULT_THRESHOLDS: dict[str, Any] = {
    "defaults": {"abs": 0.0, "rel": 0.05},
    # streamed progress (attack stage: running/, evaluation stage: eval/), not results
    "ignore": ["running/*", "*/running/*", "images_done", "*/images_done", "*eval/*", "system/*"],
    "metrics": {
        "*clean_top*": {"abs": 0.02},
        "*/images": {"abs": 0.0},
        "*mp/*/success_rate": {"abs": 0.05},
        "*mp/*/median_*": {"rel": 0.10},
    },
}
DIRECTIONS = ("both", "increase", "decrease")
#: The verdict of a first night: nothing to compare with, tonight's values become the baseline.
NEW_BASELINE = "new-baseline"
MAX_LISTED = 40  #: tonight's values printed on a first night (all are in regression.json)


class ThresholdError(UserError, ValueError):
    """A thresholds file that cannot be used; the message says where and how to fix it."""

    label = "thresholds error"


@dataclass(frozen=True)
class Rule:
    pattern: str
    abs: float = 0.0
    rel: float = 0.0
    direction: str = "both"


@dataclass(frozen=True)
class Thresholds:
    rules: tuple[Rule, ...]
    default: Rule
    ignore: tuple[str, ...]

    def rule_for(self, metric: str) -> Rule | None:
        """The first matching rule; None when the metric is ignored."""
        if any(fnmatch.fnmatchcase(metric, g) for g in self.ignore):
            return None
        return next((r for r in self.rules if fnmatch.fnmatchcase(metric, r.pattern)), self.default)


def _rule(pattern: str, raw: Any, source: str) -> Rule:
    if not isinstance(raw, dict) or set(raw) - {"abs", "rel", "direction"}:
        raise ThresholdError(
            f"{source}: rule {pattern!r} = {raw!r}; write a mapping with abs, rel and/or "
            "direction, e.g. {abs: 0.02, rel: 0.05, direction: decrease}"
        )
    direction = str(raw.get("direction", "both"))
    if direction not in DIRECTIONS:
        raise ThresholdError(f"{source}: rule {pattern!r}: direction must be one of {DIRECTIONS}")
    return Rule(pattern, float(raw.get("abs", 0.0)), float(raw.get("rel", 0.0)), direction)


def parse_thresholds(raw: dict[str, Any], source: str = "<thresholds>") -> Thresholds:
    unknown = set(raw) - {"defaults", "ignore", "metrics"}
    if unknown:
        raise ThresholdError(
            f"{source}: unknown key(s) {sorted(unknown)}; known: defaults, ignore, metrics"
        )
    metrics = raw.get("metrics") or {}
    if not isinstance(metrics, dict):
        raise ThresholdError(f"{source}: 'metrics' must map a name glob to a rule")
    return Thresholds(
        rules=tuple(_rule(str(k), v, source) for k, v in metrics.items()),
        default=_rule("*", raw.get("defaults") or {}, source),
        ignore=tuple(str(g) for g in raw.get("ignore") or ()),
    )


def load_thresholds(path: str | Path | None) -> Thresholds:
    """The YAML file's rules, or :data:`DEFAULT_THRESHOLDS`."""
    if path is None:
        return parse_thresholds(DEFAULT_THRESHOLDS, "defaults")
    path = Path(path)
    if not path.is_file():
        raise ThresholdError(f"{path}: no such thresholds file")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ThresholdError(f"{path}: the top level must be a mapping")
    return parse_thresholds(raw, str(path))


@dataclass
class Report:
    run_name: str
    run_id: str | None
    config_name: str
    baselines: list[RunRef]
    rows: list[Comparison] = field(default_factory=list)
    current: RunRef | None = None
    tracking_uri: str = ""

    @property
    def baseline_runs(self) -> list[str]:
        return [b.name for b in self.baselines]

    @property
    def compare_url(self) -> str | None:
        """MLflow's comparison view of tonight's runs and the baseline runs (HTTP stores):
        parents and their per-model children, so every compared metric is in it."""
        if self.current is None or not self.baselines:
            return None
        runs = [self.current, *self.baselines]
        ids = [i for r in runs for i in r.run_ids]
        return compare_url(self.tracking_uri, ids, [r.experiment_id for r in runs])

    @property
    def regressions(self) -> list[Comparison]:
        return broken(self.rows)

    @property
    def verdict(self) -> str:
        if not self.baseline_runs:
            return NEW_BASELINE
        return "regression" if self.regressions else "ok"

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_name": self.run_name,
            "run_id": self.run_id,
            "config_name": self.config_name,
            "verdict": self.verdict,
            "baseline_runs": self.baseline_runs,
            "current": asdict(self.current) if self.current else None,
            "baselines": [asdict(b) for b in self.baselines],
            "tracking_uri": self.tracking_uri,
            "compare_url": self.compare_url,
            "regressions": [r.metric for r in self.regressions],
            "metrics": [asdict(r) for r in self.rows],
        }


def median_baseline(runs: list[dict[str, float]]) -> dict[str, float]:
    """Per-metric median over the runs that have the metric."""
    names = sorted({k for run in runs for k in run})
    return {k: float(statistics.median(run[k] for run in runs if k in run)) for k in names}


def compare(
    current: dict[str, float], baseline: dict[str, float], thresholds: Thresholds
) -> list[Comparison]:
    rows = []
    for metric in sorted(set(current) | set(baseline)):
        cur, base = current.get(metric), baseline.get(metric)
        rule = thresholds.rule_for(metric)
        if cur is None or base is None:
            status = "ignored" if rule is None else ("new" if base is None else "missing")
            rows.append(Comparison(metric, base, cur, None, None, status))
            continue
        delta = cur - base
        rel = delta / abs(base) if base else None  # no relative change from 0
        if rule is None:
            rows.append(Comparison(metric, base, cur, delta, rel, "ignored"))
            continue
        moved = abs(delta) > rule.abs and abs(delta) > rule.rel * abs(base)
        wrong_way = (
            rule.direction == "both"
            or (rule.direction == "increase" and delta > 0)
            or (rule.direction == "decrease" and delta < 0)
        )
        status = "regression" if moved and wrong_way else "ok"
        text = f"{rule.pattern}: abs>{rule.abs:g} and rel>{rule.rel:g} ({rule.direction})"
        rows.append(Comparison(metric, base, cur, delta, rel, status, text))
    return rows


def page_of(report: Report) -> NightlyPage:
    """The report with every run's links resolved, for the page (dashboards.nightly)."""
    uri, current = report.tracking_uri, report.current
    runs = [current] if current else []
    links = {r.run_id: _links(uri, r, current) for r in [*runs, *report.baselines]}
    return NightlyPage(
        report.run_name,
        report.config_name,
        report.verdict,
        uri,
        report.compare_url,
        current,
        tuple(report.baselines),
        tuple(report.rows),
        links,
    )


def _links(tracking_uri: str, run: RunRef, current: RunRef | None) -> RunLinks:
    """MLflow run page, the report artifact in MLflow, the report on disk, and (for a
    baseline) MLflow's comparison of it with tonight's run."""
    exp, rid = run.experiment_id, run.run_id
    compare_with = None
    if current is not None and current.run_id != rid:
        ids = [*current.run_ids, *run.run_ids]
        compare_with = compare_url(tracking_uri, ids, [current.experiment_id, exp])
    local = Path(run.run_dir) / "report" / "index.html" if run.run_dir else None
    return RunLinks(
        run_url(tracking_uri, exp, rid),
        run_url(tracking_uri, exp, rid, "artifacts/report/index.html"),
        compare_with,
        local.resolve().as_uri() if local is not None and local.is_file() else None,
    )


def summary_lines(report: Report) -> list[str]:
    """The readable stdout summary: verdict first, then every regression (or, on a first
    night, tonight's checked values: the baseline the next night is compared with)."""
    if report.verdict == NEW_BASELINE:
        return first_night_lines(report)
    lines = [
        f"nightly {report.run_name}: {report.verdict.upper()} "
        f"(baseline: median of {len(report.baseline_runs)} run(s); "
        f"{sum(r.status == 'ok' for r in report.rows)} metrics ok, "
        f"{len(report.regressions)} regressed)"
    ]
    if report.compare_url:
        lines.append(f"  compare in MLflow: {report.compare_url}")
    for r in report.regressions:
        lines.append(
            f"  REGRESSION {r.metric}: {fmt_num(r.baseline)} -> {fmt_num(r.current)} "
            f"({fmt_num(r.rel_change, pct=True)}; rule {r.rule or 'metric missing now'})"
        )
    return lines


def first_night_lines(report: Report) -> list[str]:
    """A first night: tonight's values of every checked metric, as the new baseline."""
    checked = [r for r in report.rows if r.status == "new"]
    lines = [
        f"nightly {report.run_name}: NEW BASELINE (no earlier finished nightly of config "
        f"{report.config_name!r}; tonight's {len(checked)} checked metrics are the baseline "
        "the next nights are compared with)"
    ]
    width = max((len(r.metric) for r in checked[:MAX_LISTED]), default=0)
    lines += [f"  {r.metric:<{width}}  {fmt_num(r.current)}" for r in checked[:MAX_LISTED]]
    if len(checked) > MAX_LISTED:
        lines.append(f"  ... and {len(checked) - MAX_LISTED} more in regression.json")
    return lines
