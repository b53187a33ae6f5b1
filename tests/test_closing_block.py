"""The closing block of ``foveabench run`` explains itself (issue 27.3, 27.2): each results
table is followed by one legend line per column, only claims that hold or are reversed get
a line of their own (the rest a count), and the block ends with where MLflow shows the
run: the runs page on a tracking server, the ``mlflow ui`` command and the page it then
serves for a local store. Read from the golden run's summary (tests/golden.py).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from pipeline.cli.summary import print_summary
from pipeline.tracking.urls import experiment_url
from tests.golden import EXPERIMENT, Golden

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Each table's title's start and its columns, spelled here as a reader sees them.
TABLES = {
    "clean accuracy": ("images", "top1", "top5"),
    "minimum perturbations": ("n", "success", "med l1pp", "med l2", "med linf", "fwd/img"),
    "Table 1": ("ratio", "n", "median", "censored", "95% CI"),
}


def blocks(out: str) -> dict[str, list[str]]:
    """The output's blank-line separated blocks, keyed by their first line's start."""
    found: dict[str, list[str]] = {}
    for block in out.split("\n\n"):
        lines = block.strip("\n").splitlines()
        for title in TABLES:
            if lines and lines[0].startswith(title):
                found[title] = lines
    return found


def test_every_column_of_every_table_has_a_legend_line(golden: Golden, capsys: Any) -> None:
    print_summary(golden.summary)
    tables = blocks(capsys.readouterr().out)
    assert set(tables) == set(TABLES), "the golden run fills every table"
    for title, columns in TABLES.items():
        lines = tables[title]
        header = lines[1]
        legend = {}
        for line in lines[2:]:  # rows, then the legend: '    <column>  <meaning>'
            for column in columns:
                if line.startswith(f"    {column}  ") and len(line) > len(column) + 20:
                    legend[column] = line
        assert all(c in header for c in columns), header
        assert set(legend) == set(columns), (
            f"{title}: no legend line for {set(columns) - set(legend)}"
        )


def test_only_telling_verdicts_get_a_line_the_rest_a_count(golden: Golden, capsys: Any) -> None:
    """The golden run's own findings rows, one per verdict."""
    (row, *_) = golden.summary.findings
    verdicts = ("holds", "reversed", "inconclusive", "insufficient")
    rows = [{**row, "family": "primary", "verdict": v} for v in verdicts]
    print_summary(dataclasses.replace(golden.summary, findings=rows))
    out = capsys.readouterr().out
    lines = [line.strip() for line in out.splitlines() if line.startswith("  [")]
    assert [line.split("]")[0].strip("[ ") for line in lines] == ["holds", "reversed"]
    assert "1 primary inconclusive, 1 primary insufficient" in out


def test_the_run_ends_with_the_runs_page_url(golden: Golden, capsys: Any) -> None:
    summary = golden.summary
    exp_id = summary.mlflow_experiment_id
    experiment = MlflowClient(golden.tracking_uri).get_experiment_by_name(EXPERIMENT)
    assert experiment is not None and exp_id == experiment.experiment_id
    print_summary(summary)
    assert f"mlflow:  {experiment_url(golden.tracking_uri, exp_id)}\n" in capsys.readouterr().out
    store = "sqlite:////tmp/results/mlflow.db"
    print_summary(dataclasses.replace(summary, tracking_uri=store))
    out = capsys.readouterr().out
    page = f"http://127.0.0.1:5000/#/experiments/{exp_id}/runs?workflowType=machine_learning"
    assert f"browse:  mlflow ui --backend-store-uri {store}\n  then:  {page}\n" in out


def test_a_rounded_zero_has_no_sign_in_the_terminal_or_the_report() -> None:
    """One formatter for both (pipeline.summary.stats.signed): ``-0.000`` would read as a
    direction the data do not have."""
    from pipeline.summary.stats import signed

    assert [signed(v) for v in (-0.0001, -0.0, 0.0004, -0.5, 0.25)] == [
        "+0.000", "+0.000", "+0.000", "-0.500", "+0.250"
    ]  # fmt: skip
    assert signed(-0.04, digits=1) == "+0.0" and signed(-0.06, digits=1) == "-0.1"
