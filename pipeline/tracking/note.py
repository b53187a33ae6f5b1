"""The parent run's description (MLflow's ``mlflow.note.content`` tag): headline and links.

MLflow shows a run's description as Markdown at the top of its Overview tab, so a
reader who opens the parent run sees the numbers first (clean accuracy, the median
minimum perturbation of each attack, the findings' verdicts) and one click to the
report and each transfer-matrix heatmap. The numbers are the parent's ``headline/``
and ``findings/`` metrics (pipeline.summary.metrics), read back from the store, so
the description never says something the metrics do not.

The links are relative to the UI (``#/experiments/...``): they work from any host
that serves it (``mlflow ui`` on a local store, a tracking server), open in a new tab
(MLflow's Markdown links do) and set ``workflowType=machine_learning``, so the tab
opens in the model-training views, not GenAI's (pipeline.tracking.urls).
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence

from pipeline.tracking.urls import WORKFLOW

NOTE_TAG = "mlflow.note.content"


def artifact_link(experiment_id: str, run_id: str, path: str) -> str:
    """The UI's artifact view of ``path`` in the run, as a link relative to the UI."""
    return f"#/experiments/{experiment_id}/runs/{run_id}/artifacts/{path}?{WORKFLOW}"


def _short(path: str) -> str:
    """``sign/acc_at_linf_5.3.png``: a heatmap's path below its folder of matrices."""
    return posixpath.relpath(path, posixpath.dirname(posixpath.dirname(path)))


def _value(x: float) -> str:
    return f"{x:.3g}"


def headline_lines(metrics: Mapping[str, float]) -> list[str]:
    """Markdown tables of the ``headline/`` metrics and one line of finding counts."""
    lines: list[str] = []
    clean = sorted(
        (k.split("/", 2)[2], v) for k, v in metrics.items() if k.startswith("headline/clean_top5/")
    )
    if clean:
        lines += ["| model | clean top-5 accuracy |", "|---|---|"]
        lines += [f"| {model} | {_value(v)} |" for model, v in clean]
        lines.append("")
    medians = sorted(
        (stat, attack, model, v)
        for k, v in metrics.items()
        if k.startswith("headline/median_")
        for _, stat, attack, model in [k.split("/", 3)]
    )
    if medians:
        lines += ["| attack | model | median minimum perturbation |", "|---|---|---|"]
        lines += [
            f"| {attack} | {model} | {stat.removeprefix('median_')} {_value(v)} |"
            for stat, attack, model, v in medians
        ]
        lines.append("")
    findings = sorted(
        (k.removeprefix("findings/").replace("/", " "), int(v))
        for k, v in metrics.items()
        if k.startswith("findings/")
    )
    if findings:
        lines += ["findings: " + ", ".join(f"{n} {what}" for what, n in findings), ""]
    return lines


def run_note(
    metrics: Mapping[str, float],
    experiment_id: str,
    run_id: str,
    report: str | None,
    heatmaps: Sequence[str],
) -> str:
    """The description: the links to ``report`` and each heatmap first (artifact paths of
    the parent run; MLflow folds a long description after a few lines), then the
    headline tables (minimum perturbations in 0..255 pixel units)."""
    title = "**foveabench headline**"
    if report:
        title += f" · [the report]({artifact_link(experiment_id, run_id, report)}) `{report}`"
    lines = [title, ""]
    if heatmaps:
        links = [f"[{_short(p)}]({artifact_link(experiment_id, run_id, p)})" for p in heatmaps]
        lines += ["transfer-matrix heatmaps: " + " · ".join(links), ""]
    lines += ["norms in 0..255 pixel units", ""]
    lines += headline_lines(metrics)
    return "\n".join(lines).rstrip() + "\n"
