"""``report/index.html``: one self-contained page reviewing a benchmark run.

Self-contained (figures as base64 data URIs, inline CSS, no script, no
network) because it is read as an MLflow artifact, attached to mails and
opened from cluster storage; the same figures are also written as files next
to it so MLflow's artifact viewer shows each one inline. Everything comes from
the run directory's Parquet (``foveabench report`` rebuilds it at any time);
provenance comes from the MLflow parent run's tags when the tracking store
answers, else it is recomputed here and marked so.
"""

from __future__ import annotations

import base64
import html
import json
import shutil
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from dashboards.figures import Figure, FigureSet, RunData, build_figures
from dashboards.figures import tables as tb
from dashboards.figures._style import BASELINE_ATTACKS, short
from dashboards.protocol import PAPER_NORM, native_norm

SECTIONS = (
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
    ("Linearity", "Is the network locally linear along e*? (Fig. 4, 9-12)."),
    (
        "Findings",
        "The paper's qualitative claims, tested on this run with bootstrap 95% intervals.",
    ),
)
PROBE_TIMEOUT_S = 3.0


@dataclass
class Provenance:
    """Who/what/where of a run; ``source`` says whether tags came from MLflow."""

    tags: dict[str, str] = field(default_factory=dict)
    source: str = "recomputed at report time (MLflow tags unavailable)"
    tracking_uri: str = ""
    run_id: str = ""

    @property
    def git_sha(self) -> str:
        return self.tags.get("git_sha", "unknown")


def mlflow_state(run_dir: Path) -> dict[str, object]:
    path = run_dir / "mlflow.json"
    try:
        return dict(json.loads(path.read_text())) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def _reachable(uri: str) -> bool:
    """A quick check so a down server costs seconds, not MLflow's minutes of retries."""
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=PROBE_TIMEOUT_S):
                return True
        except OSError:
            return False
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).is_file()
    return True


def fetch_tags(tracking_uri: str, run_id: str) -> dict[str, str] | None:
    """Tags of an MLflow run, or ``None`` when the store does not answer."""
    if not tracking_uri or not run_id or not _reachable(tracking_uri):
        return None
    try:
        from mlflow.tracking import MlflowClient

        return dict(MlflowClient(tracking_uri=tracking_uri).get_run(run_id).data.tags)
    except Exception as exc:  # provenance falls back to recomputation; say why
        print(f"report: MLflow tags unavailable ({type(exc).__name__}: {exc})", file=sys.stderr)
        return None


def provenance(data: RunData, tags: Mapping[str, str] | None = None) -> Provenance:
    state = mlflow_state(data.run_dir)
    prov = Provenance(
        tracking_uri=str(state.get("tracking_uri", "")), run_id=str(state.get("parent") or "")
    )
    found = dict(tags) if tags is not None else fetch_tags(prov.tracking_uri, prov.run_id)
    if found:
        prov.tags = {
            k: v for k, v in found.items() if not k.startswith("mlflow.") or k == "mlflow.runName"
        }
        prov.source = f"MLflow run {prov.run_id or '(given)'} at {prov.tracking_uri or '(given)'}"
        return prov
    from pipeline import provenance as pv

    prov.tags = {"git_sha": pv.git_sha(), **{f"version.{k}": v for k, v in pv.versions().items()}}
    if data.config:
        ds = data.config.dataset
        prov.tags["dataset"] = f"{ds.layout}:{ds.root or ''}"
        prov.tags["config_name"] = data.config.name
    if data.manifest.height:
        prov.tags["dataset_hash"] = pv.dataset_hash(data.manifest.to_arrow())
        prov.tags["n_images"] = str(data.manifest.height)
    return prov


# -- page pieces -------------------------------------------------------------------------
def _kv(rows: Mapping[str, object]) -> str:
    body = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(tb.fmt(v))}</td></tr>"
        for k, v in rows.items()
    )
    return f'<table class="kv">{body}</table>'


def provenance_html(data: RunData, prov: Provenance) -> str:
    t = prov.tags
    cfg = data.config
    main = {
        "run": data.run_dir.name,
        "run directory": str(data.run_dir.resolve()),
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
    return (
        f'<section id="provenance"><h2>Provenance</h2>'
        f'<p class="sha">git sha: <code id="git-sha">{sha}</code></p>'
        f'<div class="cols"><div>{_kv(main)}</div><div><h4>versions</h4>{_kv(versions)}</div></div>'
        f"{recomputed}"
        f"<details><summary>config.yaml</summary><pre>{html.escape(data.config_text)}</pre></details>"
        f"<details><summary>bad rows ({data.bad_rows.height})</summary>{tb.bad_rows_table(data.bad_rows)}</details>"
        "</section>"
    )


def _card(value: str, label: str) -> str:
    return f'<div class="card"><div class="v">{html.escape(value)}</div><div class="l">{html.escape(label)}</div></div>'


def headline_html(data: RunData) -> str:
    """The numbers a reviewer looks for first, as cards."""
    cards = [_card(str(data.manifest.height), "images")]
    for r in data.clean.to_dicts():
        if r.get("top5") is not None:
            cards.append(_card(f"{r['top5']:.3f}", f"clean top-5, {short(r['model'])}"))
    for r in data.attacks.to_dicts():
        norm = native_norm(r["attack"])
        value = r.get(f"{norm}_median")
        if value is not None:
            cards.append(
                _card(f"{value:.3g}", f"median {norm} of e*, {short(r['model'])} {r['attack']}")
            )
    t2 = data.table("table2")
    if t2.height:
        for r in t2.filter(
            (pl.col("value") == PAPER_NORM)
            & pl.col("condition").is_in(["mp", "object_crop"])
            & ~pl.col("attack").is_in(list(BASELINE_ATTACKS))  # the baseline is in the figures
        ).to_dicts():
            what = "no foveation" if r["condition"] == "mp" else "object crop"
            cards.append(
                _card(
                    f"{r['accuracy']:.3f}",
                    f"accuracy at {r['norm']} {PAPER_NORM}, {short(r['model'])} {r['attack']}, {what}",
                )
            )
    f = data.table("findings")
    if f.height:
        counts = dict(f.group_by("verdict").len().iter_rows())
        text = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
        cards.append(_card(str(f.height), f"paper findings tested: {text}"))
    return f'<section id="headline"><h2>Headline numbers</h2><div class="cards">{"".join(cards)}</div></section>'


def figure_html(fig: Figure) -> str:
    b64 = base64.b64encode(fig.data).decode("ascii")
    return (
        f'<figure id="fig-{html.escape(fig.name)}"><h3>{html.escape(fig.title)}</h3>'
        f'<img src="data:{fig.mime};base64,{b64}" alt="{html.escape(fig.title)}" data-name="{html.escape(fig.name)}">'
        f"<figcaption>{html.escape(fig.caption)}</figcaption></figure>"
    )


def _table_block(title: str, caption: str, body: str) -> str:
    if not body:
        return ""
    return (
        f'<div class="tbl"><h3>{html.escape(title)}</h3><p>{html.escape(caption)}</p>{body}</div>'
    )


def section_tables(data: RunData) -> dict[str, list[str]]:
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
                tb.norm_stats_table(data.attacks) if data.attacks.height else "",
            ),
        ],
        "Transfer": [
            _table_block(
                "Transfer matrices (long form)",
                f"Accuracy at the paper's norm {PAPER_NORM} and median critical norms for every source/target pair; 'dense-grid mismatches' counts where a dense sweep disagreed with the critical-scale shortcut.",
                tb.transfer_table(t("transfer")),
            )
        ],
        "Foveation": [
            _table_block(
                "Table 1: increase of the norm needed after foveation",
                "Mean ratio of critical norms after / before each foveation with its bootstrap 95% interval, over images correct before and after (paper: ~5x BFGS, 5-8x Sign).",
                tb.table1_html(t("table1")),
            ),
            _table_block(
                "Table 2: accuracy of the foveations",
                f"Top-k accuracy of each condition without perturbation and at the paper's norm {PAPER_NORM} of each attack's own norm.",
                tb.table2_html(t("table2")),
            ),
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
                "Each claim as a paired difference over images (left − right): green holds (interval above 0), red reversed, grey inconclusive.",
                tb.findings_html(t("findings")),
            )
        ],
    }


CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:18px 32px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#c8cdd8}main{max-width:1320px;margin:0 auto;padding:8px 32px 48px}
section{background:#fff;border:1px solid #e1e4ea;border-radius:8px;padding:12px 20px;margin:16px 0}
h2{font-size:19px;margin:6px 0 4px}h3{font-size:15px;margin:14px 0 4px}h4{margin:10px 0 4px;font-size:13px}
.lead{color:#555;margin-top:0}nav a{margin-right:14px;color:#c8cdd8}
figure{margin:10px 0 20px}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#444;font-size:13px;margin-top:4px;max-width:1000px}
table{border-collapse:collapse;font-size:12px;margin:6px 0;display:block;overflow-x:auto}
th,td{border:1px solid #e1e4ea;padding:3px 7px;text-align:left;white-space:nowrap}td.n{text-align:right}
th{background:#f0f2f5}
table.kv th{text-align:left}table.kv td{text-align:left;white-space:normal}
tr.ok td{background:#e3f5e6}tr.bad td{background:#fbe3e3}tr.meh td{background:#f3f3f3}
.cards{display:flex;flex-wrap:wrap;gap:10px}.card{border:1px solid #e1e4ea;border-radius:6px;padding:8px 12px;min-width:150px;max-width:240px}
.card .v{font-size:22px;font-weight:600}.card .l{font-size:12px;color:#555}
.cols{display:flex;gap:32px;flex-wrap:wrap}.sha code{font-size:15px;background:#eef;padding:2px 6px;border-radius:4px}
pre{background:#f6f7f9;padding:8px;overflow:auto;font-size:12px}.note{color:#8a5a00}
"""


def render_page(data: RunData, prov: Provenance, figs: FigureSet) -> str:
    """The whole page: provenance, headline, then each section's figures and tables."""
    tables = section_tables(data)
    nav = "".join(f'<a href="#{_anchor(name)}">{html.escape(name)}</a>' for name, _ in SECTIONS)
    parts = [provenance_html(data, prov), headline_html(data)]
    for name, lead in SECTIONS:
        figures = [figure_html(f) for f in figs.figures if f.section == name]
        blocks = [b for b in tables.get(name, []) if b]
        body = "".join(figures + blocks) or "<p class=note>Not produced by this run.</p>"
        parts.append(
            f'<section id="{_anchor(name)}"><h2>{html.escape(name)}</h2><p class="lead">{html.escape(lead)}</p>{body}</section>'
        )
    notes = "".join(f"<li>{html.escape(s)}</li>" for s in figs.skipped)
    notes += "".join(
        f'<li class="note">failed: <pre>{html.escape(s)}</pre></li>' for s in figs.failed
    )
    if notes:
        parts.append(f'<section id="absent"><h2>Not in this run</h2><ul>{notes}</ul></section>')
    title = f"foveabench: {data.run_dir.name}"
    built = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>Minimum adversarial perturbations, transfer and foveation "
        f"(Luo et al. 2016). Report built {built}; git {html.escape(prov.git_sha[:12])}.</p><nav>{nav}</nav></header>"
        f"<main>{''.join(parts)}</main></body></html>"
    )


def _anchor(name: str) -> str:
    return name.lower().replace(" ", "-")


def build_report(run_dir: Path, *, tags: Mapping[str, str] | None = None) -> Path:
    """Build ``<run_dir>/report/index.html`` and ``report/figures/*``; return the page's path.

    ``tags``: the MLflow parent run's tags when the caller already has them
    (skips the tracking-store lookup).
    """
    run_dir = Path(run_dir)
    data = RunData.load(run_dir)
    figs = build_figures(data)
    prov = provenance(data, tags)
    out = run_dir / "report"
    fig_dir = out / "figures"
    if fig_dir.exists():
        shutil.rmtree(fig_dir)  # no stale figure from an earlier, larger run
    fig_dir.mkdir(parents=True)
    for fig in figs.figures:
        (fig_dir / fig.filename).write_bytes(fig.data)
    page = out / "index.html"
    tmp = out / ".index.html.tmp"
    tmp.write_text(render_page(data, prov, figs), encoding="utf-8")
    tmp.replace(page)
    return page
