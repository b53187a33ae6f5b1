"""The bench's table: aligned text for the terminal, a section for docs/benchmarks.md.

The three ``% ceil`` columns say how much of our wall time our attack's own
network passes need at the ceiling's pace, each at its batch size
(:mod:`pipeline.bench.ceiling`): ``fwd % ceil`` the forwards, ``grad % ceil``
the backwards to the input, ``net % ceil`` both, so at most 100% on a quiet
machine; the rest is bookkeeping.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.bench.runner import BenchReport
from pipeline.bench.success import success_markdown

SECTION = "## Attacks vs peers"
#: The hand-written section of docs/benchmarks.md that says how to install the peers
#: and how the pairs are made comparable (the generated section points to it).
PEERS_SECTION = "## Peers: install, and how the pairs are compared"

COLUMNS = (
    "attack", "peer", "norm", "n ours/peer", "s/img ours", "s/img peer", "time ours/peer",
    "cpu ours/peer", "med ours", "med peer", "norm ours/peer", "paired", "success ours", "success peer",
    "grad/s", "grad % ceil", "fwd/s", "fwd % ceil", "net % ceil",
)  # fmt: skip


def _f(v: float, digits: int = 3) -> str:
    if v != v:  # nan
        return "-"
    if abs(v) >= 1000:
        return f"{v:.0f}"
    return f"{v:.{digits}g}"


def table_rows(report: BenchReport) -> list[list[str]]:
    """One row of strings per pair that ran (skipped pairs are listed separately)."""
    rows = []
    for r in report.results:
        if r.skipped:
            continue
        bound = ">=" if r.n_peer == 0 and r.peer_unfinished else ""
        fwd, grad = r.ceiling_shares(report.ceilings)
        rows.append([
            r.pair, r.peer, r.norm, f"{r.n_ours}/{r.n_peer}",
            _f(r.ours_seconds / r.n_ours), bound + _f(r.peer_per_image), ("<=" if bound else "") + _f(r.time_ratio),
            _f(r.cpu_ratio) if r.n_peer else "-",
            _f(r.ours_median), _f(r.peer_median), _f(r.norm_ratio), str(r.n_paired),
            _pct(r.ours_success), _pct(r.peer_success),
            _f(r.n_backward / r.ours_seconds), _pct(grad), _f(r.n_forward / r.ours_seconds), _pct(fwd),
            _pct(fwd + grad),
        ])  # fmt: skip
    return rows


def _pct(v: float) -> str:
    return "-" if v != v else f"{v:.0%}"


def format_text(report: BenchReport) -> str:
    """The table ``foveabench bench`` prints, aligned columns plus notes."""
    rows = [list(COLUMNS), *table_rows(report)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(
            cell.rjust(w) if i > 2 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += ["", *_notes(report)]
    if report.success:
        lines += ["", "success under top-5 (ours only):", *success_markdown(report.success)]
    return "\n".join(lines)


def _notes(report: BenchReport) -> list[str]:
    im = report.images
    out = [
        f"model {report.model}; {len(im.labels)} photos correct top-1 clean (of {im.examined} "
        f"examined: {im.top5_correct} top-5 correct, {im.top1_correct} top-1 correct); "
        f"criterion top-1 on both sides; batch {report.batch}; our line search rtol={report.rtol:g}",
    ]
    if report.ceilings:
        cs = sorted(report.ceilings.values(), key=lambda c: c.batch)
        out.append(
            "ceiling, img/s of forward / forward+backward / backward alone at each batch size "
            f"our attacks used ({cs[0].dtype}, warm, median of {cs[0].repeats}, gradient to the "
            "input only): " + "; ".join(f"batch {c.batch}: {c.describe()}" for c in cs)
        )
    load = ""
    if report.load is not None:
        load = f"load average {report.load[0]:.1f} at start, {report.load[1]:.1f} at end; "
    out.append(
        f"peak RSS {report.peak_rss_mib:.0f} MiB; total {report.seconds:.0f} s; {load}"
        f"{report.machine()}"
    )
    for r in report.results:
        if r.skipped:
            out.append(f"SKIPPED {r.attack} vs {r.peer}: {r.skipped}")
            continue
        out.append(f"{r.pair}: ours {r.ours_settings}; peer {r.peer_settings}")
        if r.peer_unfinished:
            out.append(
                f"{r.pair}: the peer did not finish {r.peer_unfinished} image(s) within its budget; "
                f"its s/img is {'a lower bound' if r.n_peer == 0 else 'over the finished ones'}"
            )
    return out


def format_markdown(report: BenchReport) -> str:
    """The ``## Attacks vs peers`` section of docs/benchmarks.md."""
    lines = [
        SECTION,
        "",
        f"Installing the peers, and how the pairs are made comparable: *{PEERS_SECTION[3:]}* "
        "above. Measured by:",
        "",
        "```bash",
        report.command,
        "```",
        "",
        f"Machine: {report.machine()}.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(report)]
    lines += ["", *[f"- {n}" for n in _notes(report)], ""]
    if report.success:
        lines += [
            "### Success under the benchmark's criterion (top-5), ours only",
            "",
            f"The same {len(report.images.labels)} photos, each attack as the pipeline runs it "
            "(top-5, our line search), every success re-checked by one forward of the model:",
            "",
            *success_markdown(report.success),
            "",
        ]
    return "\n".join(lines)


def write_section(path: Path, body: str, heading: str = SECTION) -> None:
    """Replace ``heading``'s section in ``path`` (up to the next ``## ``), or append it.

    Other sections, written by other tools or by hand, are kept as they are.
    """
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == heading)
    except StopIteration:
        new = text.rstrip("\n") + "\n\n" + body.rstrip("\n") + "\n"
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        kept_after = lines[end:]
        new = (
            "\n".join(
                [
                    *lines[:start],
                    *body.rstrip("\n").splitlines(),
                    *(["", *kept_after] if kept_after else []),
                ]
            )
            + "\n"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)
