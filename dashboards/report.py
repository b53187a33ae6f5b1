"""``report/index.html``: one self-contained page reviewing a benchmark run.

Self-contained (figures as base64 data URIs, inline CSS, no script, no
network) because it is read as an MLflow artifact, attached to mails and
opened from cluster storage; the same figures are also written as files next
to it so MLflow's artifact viewer shows each one inline. This module only draws:
the summary layer loads the run (``pipeline.summary.report_load``: the run
directory's Parquet, its provenance.json or MLflow's tags) and the CLI writes the
page (``pipeline.cli.report.build_report``), so ``foveabench report`` rebuilds it
at any time.
"""

from __future__ import annotations

import html
import time

import polars as pl

from dashboards.figures import FigureSet, ReportData, build_figures
from dashboards.figures import tables as tb
from dashboards.figures._style import is_baseline, short
from dashboards.page import card, figure_html, kv_table, page, section
from dashboards.perceptible import perceptible_caption, perceptible_counts, perceptible_table
from pipeline.summary.axes import native_norm
from tasks.protocol import CONDITIONS, MP, mp_foveations

HEADLINE_FOVEATION = mp_foveations()[0]  # the paper's strongest: the object crop

SECTIONS = (
    (
        "Findings",
        "The paper's qualitative claims, tested on this run with paired exact tests and Holm's correction.",
    ),
    ("Minimum perturbations", "How large each network's minimum perturbation e* is."),
    ("Perceptibility", "What the perturbations look like (appendix C)."),
    (
        "Transfer",
        "How each network's perturbations fool itself, the others, and random noise (Fig. 2, 7).",
    ),
    (
        "Where the perturbation matters",
        "Perturbation on the object vs on the background (Fig. 3, 8).",
    ),
    ("Foveation", "How much looking at a region gives back (Fig. 5, 6, 13; Tables 1, 2)."),
    (
        "Adaptive foveation",
        "How much of each foveation's gain survives an attacker who knows it (EOT for random crops).",
    ),
    ("Linearity", "Is the network locally linear along e*? (Fig. 4, 9-12)."),
)


# -- page pieces -------------------------------------------------------------------------
def provenance_html(data: ReportData) -> str:
    prov = data.provenance
    t = prov.tags
    cfg = data.config
    main = {
        "run": data.run_name,
        "run directory": data.run_path,
        "config": t.get("config_name", cfg.name if cfg else "–"),
        "dataset": t.get("dataset", "–"),
        "dataset hash": t.get("dataset_hash", "–"),
        "images": data.manifest.height,
        "bad rows": data.bad_rows.height,
        "models": ", ".join(m.name for m in cfg.models) if cfg else "–",
        "attacks": ", ".join(a.name for a in cfg.attacks) if cfg else "–",
        "criterion": f"top-{cfg.top_k}" if cfg else "–",
        "tasks": ", ".join(cfg.tasks) if cfg else "–",
        "MLflow run": f"{prov.run_id} ({prov.tracking_uri})" if prov.run_id else "–",
        "provenance from": prov.source,
    }
    versions = {
        k.removeprefix("version."): v for k, v in sorted(t.items()) if k.startswith("version.")
    }
    sha = html.escape(prov.git_sha)
    recomputed = (
        f"<p class=note>Aggregated here from the shards (no summary file): {', '.join(data.recomputed)}.</p>"
        if data.recomputed
        else ""
    )
    return (  # at the end, folded: the findings lead (issue 27.7)
        f'<section id="provenance"><h2>Provenance</h2>'
        f'<p class="sha">git sha: <code id="git-sha">{sha}</code></p>'
        f"<details><summary>run, config, dataset, versions</summary>"
        f'<div class="cols"><div>{kv_table(main)}</div><div><h4>versions</h4>{kv_table(versions)}</div></div>'
        f"{recomputed}"
        f"<details><summary>config.yaml</summary><pre>{html.escape(data.config_text)}</pre></details>"
        f"<details><summary>bad rows ({data.bad_rows.height})</summary>{tb.bad_rows_table(data.bad_rows)}</details>"
        "</details></section>"
    )


def headline_html(data: ReportData) -> str:
    """The numbers a reviewer looks for first, as cards."""
    cards = [card(str(data.manifest.height), "images")]
    for r in data.clean.to_dicts():
        if r.get("top5") is not None:
            cards.append(card(f"{r['top5']:.3f}", f"clean top-5, {short(r['model'])}"))
    for r in data.attacks.to_dicts():
        norm = native_norm(r["attack"])
        value = r.get(f"{norm}_median")
        if value is not None:
            cards.append(
                card(f"{value:.3g}", f"median {norm} of e*, {short(r['model'])} {r['attack']}")
            )
    t2 = data.table("table2")
    if t2.height:
        for r in t2.filter(
            (pl.col("value") == data.point) & pl.col("condition").is_in([MP, HEADLINE_FOVEATION])
        ).to_dicts():
            if is_baseline(r["attack"]):  # the baseline is in the figures
                continue
            what = "no foveation" if r["condition"] == MP else CONDITIONS.get(r["condition"]).label
            cards.append(
                card(
                    f"{r['accuracy']:.3f}",
                    f"accuracy at {r['norm']} {data.point:g}, {short(r['model'])} {r['attack']}, {what}",
                )
            )
    threshold = data.perceptible_linf
    seen = perceptible_counts(data.attack_rows, threshold)
    if seen.height and seen["perceptible"].sum():
        n, of = int(seen["perceptible"].sum()), int(seen["fooled"].sum())
        cards.append(
            card(f"{n} of {of}", f"minimum perturbations perceptible (linf > {threshold:g})")
        )
    f = data.table("findings")
    if f.height:
        counts = dict(f.group_by("verdict").len().iter_rows())
        text = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
        cards.append(card(str(f.height), f"paper findings tested: {text}"))
    return f'<section id="headline"><h2>Headline numbers</h2><div class="cards">{"".join(cards)}</div></section>'


def _table_block(title: str, caption: str, body: str) -> str:
    if not body:
        return ""
    return (
        f'<div class="tbl"><h3>{html.escape(title)}</h3><p>{html.escape(caption)}</p>{body}</div>'
    )


def below_every_mp(attacks: pl.DataFrame, point: float) -> str:
    """A warning when the evaluation point lies below every minimum perturbation a source
    found (on l1pp and linf): accuracy there is clean accuracy, not "does not transfer"."""
    if attacks.is_empty() or not {"l1pp_min", "linf_min"} <= set(attacks.columns):
        return ""
    below = [
        f"{r['attack']} of {short(r['model'])} ({norm} min {r[f'{norm}_min']:.3g})"
        for r in attacks.filter(
            ~pl.col("attack").map_elements(is_baseline, return_dtype=pl.Boolean)
        ).to_dicts()
        for norm in ("l1pp", "linf")
        if r[f"{norm}_min"] is not None and point < r[f"{norm}_min"]
    ]
    if not below:
        return ""
    return (
        f" Caution: {point:g} is below every minimum perturbation of "
        + "; ".join(below)
        + ": at that norm these sources have fooled no image yet, so their accuracy is the clean accuracy, not a sign that they do not transfer."
    )


def perceptible_block(data: ReportData) -> str:
    """The minimum perturbations above the perceptibility threshold, counted and flagged."""
    threshold = data.perceptible_linf
    counts = perceptible_counts(data.attack_rows, threshold)
    return _table_block(
        "Perceptible minimum perturbations",
        perceptible_caption(counts, threshold),
        perceptible_table(counts, threshold),
    )


def _best_sources(best: pl.DataFrame) -> str:
    if best.is_empty() or "from_attacks" not in best.columns:
        return ""
    rows = best.unique(subset=["model", "attack"]).sort("attack", "model")
    return (
        "; ".join(f"{r['attack']} on {r['model']}: {r['from_attacks']}" for r in rows.to_dicts())
        + "."
    )


def section_tables(data: ReportData) -> dict[str, list[str]]:
    """HTML tables per section, each with one sentence on what it shows."""
    t = data.table
    return {
        "Minimum perturbations": [
            _table_block(
                "Clean accuracy",
                "Accuracy of each network on the unperturbed images.",
                tb.clean_table(data.clean) if data.clean.height else "",
            ),
            _table_block(
                "Norm statistics per model and attack",
                "Success rate among images correct clean, then each norm of e* over the fooled images (0..255 units), and the most frequent label changes.",
                tb.norm_stats_table(data.attacks, data.class_names) if data.attacks.height else "",
            ),
            perceptible_block(data),
            _table_block(
                "Robustness measures (Balda et al., Table I)",
                "rho1 = mean ||e*||/||x|| over fooled images; rho2 = mean first-order distance margin/||gradient|| (softmax margin, images with margin > 0); eps >99% = smallest norm fooling more than 99% of the images (0..255 units).",
                tb.measures_table(data.measures),
            ),
            _table_block(
                "How minimal: AttackBench optimality against the best-known distances",
                "Per network and norm, each attack ranked by Cinà et al.'s optimality 1 - (A_attack - A*) / (clean_acc * d_max - A*), A the area under its robust-accuracy-vs-distance curve up to d_max, the largest best-known distance (the smallest perturbation any attack of any run sharing the store found for the image): 1 is the best known itself, 0 an attack that never succeeds.",
                tb.optimality_table(data.optimality),
            ),
            _table_block(
                "Certified lower bounds (Peck)",
                "Per image, no perturbation with a smaller L2 norm can change the top-1 class; 'violations' counts found perturbations below the bound (must be 0).",
                tb.bounds_table(data.bounds),
            ),
        ],
        "Transfer": [
            _table_block(
                "Transfer matrices (long form)",
                f"Accuracy at the norm {data.point:g} each target receives (the source's perturbation resized to its input) and median critical norms, received and in the source's frame, for every source/target pair; 'dense-grid mismatches' counts where a dense sweep disagreed with the critical-scale shortcut."
                + below_every_mp(data.attacks, data.point),
                tb.transfer_table(t("transfer"), data.point),
            )
        ],
        "Foveation": [
            _table_block(
                "Table 1: increase of the norm needed after foveation",
                "Median ratio of critical norms after / before each foveation, both sides found by the same refined search, with its 95% interval (order statistics; ±inf where n is too small for one), over images correct before and after; an image never fooled after the foveation is right-censored at the largest norm tried, not dropped, and '≥' marks a median that censored ratios decide (a lower bound) (paper: ~5x BFGS, 5-8x Sign, as means).",
                tb.table1_html(t("table1")),
            ),
            _table_block(
                "Table 1 on the run's best minimum perturbation",
                "The same ratios with each image's reference perturbation the smallest MP any attack of this run found in the column's norm (every condition read along that perturbation): where a gain shrinks here, part of it came from a weak attack. Which attack supplied the images: "
                + _best_sources(t("table1_best")),
                tb.table1_html(t("table1_best")),
            ),
            _table_block(
                "Table 2: accuracy of the foveations",
                "Top-k accuracy of each condition without perturbation and at each network's evaluation points on its attack's own norm (how each was chosen is in the block's title), over all evaluated images (the paper's population); in brackets, over the images the attack fooled.",
                tb.table2_html(t("table2")),
            ),
        ],
        "Adaptive foveation": [
            _table_block(
                "Adaptive gain: critical norm under the foveation's own attack / MP",
                "Per image, the minimum perturbation of the foveated network (the attack run through the crops, in the full image's frame and norm units; random crops attacked with EOT and judged on fresh draws) over the unfoveated network's MP, both from the attack's own line search: median with its 95% interval ('≥': a lower bound where never-fooled images decide it), beside the transferred gain (MP foveated / MP, Table 1). Masking checks (Carlini et al. 2019) count images the unbounded adaptive attack never fooled, images where it was weaker than the transferred MP, and images where random noise of the adaptive perturbation's norm fooled the foveated network too; each should be 0.",
                tb.adaptive_table(t("adaptive")),
            )
        ],
        "Linearity": [
            _table_block(
                "Linearity summary",
                "Median errors of the two linear estimates at e* and of the foveation terms (logits), per model and attack.",
                tb.linearity_table(t("linearity")),
            )
        ],
        "Findings": [
            _table_block(
                "Findings",
                "Each claim tested on paired images (McNemar's exact test for accuracies, the exact sign test for norm ratios and errors, a pair within the search's precision a tie) at evaluation points fixed before the evaluation. The primary family is the paper's own claims for its attacks (BFGS, Sign), at each network's point where its MP accuracy matches the paper's Table 2, with Holm's correction inside that family: green holds, red reversed, grey inconclusive. Exploratory rows (other attacks and points, the accuracy form of the ratio claims) are reported with their p-value and never called holds. Insufficient: fewer than 10 images, or too few informative pairs to reach p < alpha at all. '≥': a median that censored ratios decide is a lower bound.",
                tb.findings_html(t("findings")),
            )
        ],
    }


def render_report(data: ReportData) -> tuple[str, FigureSet]:
    """The page and its figures (the caller writes them: ``report/index.html``, ``figures/``)."""
    figs = build_figures(data)
    return render_page(data, figs), figs


def render_page(data: ReportData, figs: FigureSet) -> str:
    """The whole page: the headline, the findings, each section's figures and tables, then
    what the run did not produce and its provenance (folded)."""
    prov = data.provenance
    tables = section_tables(data)
    parts = [headline_html(data)]
    for name, lead in SECTIONS:
        figures = [figure_html(f) for f in figs.figures if f.section == name]
        blocks = [b for b in tables.get(name, []) if b]
        body = "".join(figures + blocks) or "<p class=note>Not produced by this run.</p>"
        parts.append(section(name, lead, body))
    notes = "".join(f"<li>{html.escape(s)}</li>" for s in figs.skipped)
    notes += "".join(
        f'<li class="note">failed: <pre>{html.escape(s)}</pre></li>' for s in figs.failed
    )
    if notes:
        parts.append(f'<section id="absent"><h2>Not in this run</h2><ul>{notes}</ul></section>')
    parts.append(provenance_html(data))
    built = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    subtitle = (
        "Minimum adversarial perturbations, transfer and foveation (Luo et al. 2016). "
        f"Report built {built}; git {html.escape(prov.git_sha[:12])}."
    )
    return page(f"foveabench: {data.run_name}", subtitle, [n for n, _ in SECTIONS], parts)
