"""The nightly regression report: the run report's look, and links to every run compared.

A reviewer who opens tonight's verdict wants two clicks away: tonight's run and
the baseline runs, in MLflow (run page and its ``report/index.html``
artifact) and on disk. Links to the MLflow UI need an HTTP tracking server; for
a SQLite store the page names the ``mlflow ui`` command that serves it instead.
The links come resolved (``pipeline.ops.regression.page_of``); this module only draws,
and the caller writes the page.
"""

from __future__ import annotations

import datetime as dt
import html

from dashboards.figures import Figure
from dashboards.figures._style import grid, to_bytes
from dashboards.page import card, figure_html, page, section
from pipeline.summary.nightly_data import Comparison, NightlyPage, RunLinks, fmt_num

#: Row colour class of each comparison status (the report's ok/bad/meh palette).
STATUS_CLASS = {"regression": "bad", "missing": "bad", "ok": "ok", "new": "meh", "ignored": "meh"}
MAX_BARS = 40
SECTIONS = ("Runs compared", "Verdict", "Largest changes", "Every metric")


def _link(url: str | None, text: str) -> str:
    return f'<a href="{html.escape(url)}">{html.escape(text)}</a>' if url else ""


def run_links(links: RunLinks | None) -> str:
    """MLflow run page, the report artifact in MLflow, (for a baseline) MLflow's comparison
    of it with tonight's run, and the report on disk."""
    if links is None:
        return "–"
    found = [
        _link(links.mlflow_run, "MLflow run"),
        _link(links.report_in_mlflow, "report in MLflow"),
        _link(links.compare_with_tonight, "compare with tonight"),
        _link(links.report_on_disk, "report on disk"),
    ]
    return " · ".join(link for link in found if link) or "–"


def _started(ms: int | None) -> str:
    if ms is None:
        return "–"
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def runs_html(report: NightlyPage) -> str:
    runs = [("tonight", report.current)] if report.current else []
    runs += [(f"baseline {i + 1}", b) for i, b in enumerate(report.baselines)]
    rows = "".join(
        f'<tr id="run-{html.escape(r.run_id)}"><th>{role}</th><td>{html.escape(r.name)}</td>'
        f"<td><code>{html.escape(r.run_id)}</code></td><td><code>{html.escape(r.git_sha[:12])}</code></td>"
        f"<td>{_started(r.start_time_ms)}</td><td>{run_links(report.links.get(r.run_id))}</td></tr>"
        for role, r in runs
    )
    head = "<tr><th>role</th><th>run</th><th>run id</th><th>git sha</th><th>started</th><th>links</th></tr>"
    note = ""
    if report.compare_url:
        note = (
            f'<p id="compare-runs">{_link(report.compare_url, "Compare these runs in MLflow")}: '
            "tonight's run beside the baseline runs, metric by metric.</p>"
        )
    if not report.tracking_uri.startswith(("http://", "https://")):
        note = (
            f"<p class=note>The tracking store is {html.escape(report.tracking_uri or 'unknown')}: "
            f"browse these runs with <code>mlflow ui --backend-store-uri "
            f"{html.escape(report.tracking_uri)}</code>.</p>"
        )
    if not report.baselines:
        note += (
            "<p class=note>No earlier finished nightly run of this config: tonight's values "
            "(Every metric, below) are the baseline the next nights are compared with.</p>"
        )
    return f"<table>{head}{rows}</table>{note}"


def verdict_html(report: NightlyPage) -> str:
    counts = {s: sum(r.status == s for r in report.rows) for s in STATUS_CLASS}
    cards = [
        card(report.verdict.upper(), "verdict"),
        card(str(len(report.regressions)), "regressed or missing"),
        card(str(counts["ok"]), "within tolerance"),
        card(str(counts["new"]), "new (no baseline yet)"),
        card(str(counts["ignored"]), "not checked (no rule)"),
        card(str(len(report.baselines)), "baseline runs (per-metric median)"),
    ]
    return f'<div class="cards">{"".join(cards)}</div>'


def changes_figure(rows: tuple[Comparison, ...]) -> Figure | None:
    """Relative change of every checked metric, largest first; regressions in red."""
    checked = [r for r in rows if r.rule and r.rel_change is not None]
    if not checked:
        return None
    checked = sorted(checked, key=lambda r: abs(r.rel_change or 0.0), reverse=True)[:MAX_BARS]
    fig, (ax,) = grid(1, max_cols=1)
    fig.set_size_inches(9, 0.8 + 0.24 * len(checked))
    names = [r.metric for r in reversed(checked)]
    values = [100 * (r.rel_change or 0.0) for r in reversed(checked)]
    colours = ["tab:red" if r.status == "regression" else "tab:green" for r in reversed(checked)]
    ax.barh(names, values, color=colours)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("change vs baseline median (%)")
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return Figure(
        "nightly_changes",
        "Largest changes",
        "Relative change per metric",
        f"The {len(checked)} checked metrics that moved most against the baseline median; "
        "red bars broke their rule (table below).",
        to_bytes(fig),
    )


def metrics_html(rows: tuple[Comparison, ...]) -> str:
    head = (
        "<tr><th>metric</th><th>baseline</th><th>tonight</th><th>delta</th><th>relative</th>"
        "<th>status</th><th>rule</th></tr>"
    )
    order = sorted(rows, key=lambda r: (STATUS_CLASS[r.status] != "bad", r.metric))
    body = "".join(
        f'<tr class="{STATUS_CLASS[r.status]}"><td>{html.escape(r.metric)}</td>'
        f'<td class="n">{fmt_num(r.baseline)}</td><td class="n">{fmt_num(r.current)}</td>'
        f'<td class="n">{fmt_num(r.delta)}</td><td class="n">{fmt_num(r.rel_change, pct=True)}</td>'
        f"<td>{r.status}</td><td>{html.escape(r.rule)}</td></tr>"
        for r in order
    )
    return f"<table>{head}{body}</table>"


def render_regression_page(report: NightlyPage) -> str:
    figure = changes_figure(report.rows)
    parts = [
        section(
            "Runs compared",
            "Tonight's run and the baseline runs whose per-metric median it is compared with.",
            runs_html(report),
        ),
        section("Verdict", "How many metrics moved past their tolerance.", verdict_html(report)),
        section(
            "Largest changes",
            "Where tonight differs most from the baseline.",
            figure_html(figure) if figure else "<p class=note>No metric to compare.</p>",
        ),
        section(
            "Every metric",
            "Each metric against its rule: red broke it (or vanished), green held, grey unchecked.",
            metrics_html(report.rows),
        ),
    ]
    subtitle = (
        f"Nightly regression check of config <b>{html.escape(report.config_name)}</b>: "
        f"{html.escape(report.verdict)}."
    )
    return page(f"foveabench nightly: {report.run_name}", subtitle, SECTIONS, parts)
