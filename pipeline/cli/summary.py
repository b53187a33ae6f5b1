"""The closing block ``foveabench run`` prints: the results tables, each followed by a
one-line legend per column (a newcomer meets ``med l1pp`` and ``fwd/img`` here first),
the claims that reached a verdict with something to say, a count for the rest, the
warnings with what to do, and where the results, the report and MLflow are.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.run.run_result import RunResult

CLEAN_LEGEND = (
    ("images", "images evaluated (the manifest's, after dataset.limit)"),
    ("top1", "share whose label is the network's first guess"),
    ("top5", "share whose label is among its five first guesses"),
)
ATTACK_LEGEND = (
    ("n", "images attacked: those the network classifies correctly clean"),
    ("success", "share of them the attack fooled (the run's criterion: top-5 by default)"),
    ("med l1pp", "median over the fooled images of sum|e| / (H*W*C), the L1 norm per pixel"),
    ("med l2", "median of the Euclidean norm of the perturbation e"),
    ("med linf", "median of max|e|, the largest change of one pixel value"),
    ("fwd/img", "network forward passes per image (the attack's cost)"),
)
TABLE1_LEGEND = (
    ("ratio", "the critical norm after foveation divided by the one before"),
    ("n", "images correct before and after foveation"),
    ("median", "median ratio; '>=': a lower bound (censored images could only raise it)"),
    ("censored", "share never fooled after foveation on the eval grid (ratio unknown, >)"),
    ("95% CI", "the median's distribution-free interval, from order statistics"),
)
#: Verdicts that say something about a claim; the others are only counted.
TELLING = ("holds", "reversed")


def _fmt(value: object, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def legend(columns: tuple[tuple[str, str], ...]) -> None:
    """One line per column: its header as printed, then what it means."""
    width = max(len(name) for name, _ in columns)
    for name, meaning in columns:
        print(f"    {name:<{width}}  {meaning}")


def print_summary(summary: RunResult) -> None:
    print(
        f"\nrun: {summary.run_dir}  ({summary.n_images} images, {summary.n_bad_rows} bad rows, "
        f"{summary.seconds:.1f} s)"
    )
    print(
        f"computed {summary.computed_units} model-shards, skipped {summary.skipped_units} "
        f"already complete ({summary.skipped_files} shard files)"
    )
    for model, rate in sorted(summary.attack_images_per_s.items()):
        print(f"attack stage: {model}: {rate:.2f} images/s per actor (every attack of the run)")
    if summary.computed_eval_units:
        print(
            f"evaluated {summary.computed_eval_units} (source, target, attack) shards "
            f"in {summary.eval_seconds:.1f} s"
        )
    if summary.clean:
        print("\nclean accuracy")
        print(f"  {'model':<24} {'images':>6} {'top1':>6} {'top5':>6}")
        for row in summary.clean:
            print(
                f"  {row['model']:<24} {row['images']:>6} {_fmt(row['top1']):>6} {_fmt(row['top5']):>6}"
            )
        legend(CLEAN_LEGEND)
    if summary.attacks:
        print("\nminimum perturbations (images correct clean; norms in 0..255 pixel units)")
        print(
            f"  {'model':<24} {'attack':<10} {'n':>5} {'success':>8} {'med l1pp':>9} "
            f"{'med l2':>9} {'med linf':>9} {'fwd/img':>8}"
        )
        for row in summary.attacks:
            print(
                f"  {row['model']:<24} {row['attack']:<10} {_fmt(row['attacked']):>5} "
                f"{_fmt(row['success_rate']):>8} {_fmt(row['l1pp_median']):>9} "
                f"{_fmt(row['l2_median'], 1):>9} {_fmt(row['linf_median']):>9} "
                f"{_fmt(row['mean_forward'], 1):>8}"
            )
        legend(ATTACK_LEGEND)
    if summary.table1:
        print_table1(summary.table1)
    if summary.findings:
        print_findings(summary.findings)
    print_closing(summary)


def print_table1(rows: Sequence[dict[str, Any]]) -> None:
    print(
        "\nTable 1: critical norm after / before foveation (images correct before and "
        "after; never fooled after = censored)"
    )
    print(
        f"  {'model':<24} {'attack':<8} {'ratio':<34} {'n':>4} {'median':>7} "
        f"{'censored':>8}  95% CI of median"
    )
    for row in rows:
        print(
            f"  {row['model']:<24} {row['attack']:<8} {row['ratio']:<34} {row['n']:>4} "
            f"{'>=' if row.get('median_lower_bound') else '':>2}{row['median']:>5.2f} "
            f"{row['share_censored']:>8.2f}  "
            f"[{row['ci_low']:.2f}, {row['ci_high']:.2f}]"
        )
    legend(TABLE1_LEGEND)


def print_findings(findings: Sequence[dict[str, Any]]) -> None:
    """A count per (family, verdict); a line for each primary claim that holds or is
    reversed (inconclusive and insufficient ones say nothing a reader can act on)."""
    from pipeline.summary.stats import signed  # numpy and scipy: only when printing

    counts: dict[str, int] = {}
    for r in findings:
        key = f"{r.get('family', 'primary')} {r['verdict']}"
        counts[key] = counts.get(key, 0) + 1
    telling = [
        r for r in findings if r.get("family", "primary") == "primary" and r["verdict"] in TELLING
    ]
    print(
        "\nthe paper's claims on this run (primary family: paired exact tests, Holm "
        "inside it; " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) + ")"
    )
    if not telling:
        print("  no primary claim holds or is reversed on this run (see the report's findings)")
    for row in telling:
        where = f" at {row['norm']}={row['value']:.3g}" if row["norm"] else ""
        source = f" (perturbation of {row['source']})" if row["source"] != row["model"] else ""
        line = (
            f"  [{row['verdict']:>8}] {row['claim']}\n      {row['model']}{source} "
            f"{row['attack']}{where}: effect {signed(row['effect'])} "
            f"[{signed(row['ci_low'])}, {signed(row['ci_high'])}], n={row['n']}, "
            f"discordant={row['n_discordant']}, p={row['p_value']:.3g}, "
            f"p_adj={row['p_adjusted']:.3g}"
        )
        print(line)


def print_closing(summary: RunResult) -> None:
    """Warnings with what to do, failed units, then where everything is."""
    for line in summary.masking_warnings:
        print(f"WARNING: {line}")
    for line in summary.dense_warnings:
        print(f"WARNING: critical-scale shortcut disagrees with the dense grid: {line}")
    for failure in summary.failed_units:
        print(f"FAILED {failure}", file=sys.stderr)
    print(f"\nresults: {summary.run_dir}")
    from pipeline.tracking.urls import closing_lines

    for line in closing_lines(summary.tracking_uri, summary.mlflow_experiment_id):
        print(line)
    if summary.log_file:
        print(f"logs:    {summary.log_file} (Ray's and MLflow's own log lines)")
