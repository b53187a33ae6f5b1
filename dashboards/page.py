"""The page shell every foveabench HTML page shares: one stylesheet, header, sections.

The run report and the nightly regression report are read side by side, so
they look alike: same header, cards, tables and row colours (``ok`` green,
``bad`` red, ``meh`` grey). Self-contained: inline CSS, no script, no network.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence

from dashboards.figures import Figure
from dashboards.figures import tables as tb

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


def kv_table(rows: Mapping[str, object]) -> str:
    body = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(tb.fmt(v))}</td></tr>"
        for k, v in rows.items()
    )
    return f'<table class="kv">{body}</table>'


def card(value: str, label: str) -> str:
    return f'<div class="card"><div class="v">{html.escape(value)}</div><div class="l">{html.escape(label)}</div></div>'


def anchor(name: str) -> str:
    return name.lower().replace(" ", "-")


def section(name: str, lead: str, body: str) -> str:
    return (
        f'<section id="{anchor(name)}"><h2>{html.escape(name)}</h2>'
        f'<p class="lead">{html.escape(lead)}</p>{body}</section>'
    )


def page(title: str, subtitle: str, nav: Sequence[str], parts: Sequence[str]) -> str:
    """A whole page: dark header with title, one line of context and section links."""
    links = "".join(f'<a href="#{anchor(name)}">{html.escape(name)}</a>' for name in nav)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>{subtitle}</p><nav>{links}</nav></header>"
        f"<main>{''.join(parts)}</main></body></html>"
    )


def figure_html(fig: Figure) -> str:
    b64 = base64.b64encode(fig.data).decode("ascii")
    return (
        f'<figure id="fig-{html.escape(fig.name)}"><h3>{html.escape(fig.title)}</h3>'
        f'<img src="data:{fig.mime};base64,{b64}" alt="{html.escape(fig.title)}" data-name="{html.escape(fig.name)}">'
        f"<figcaption>{html.escape(fig.caption)}</figcaption></figure>"
    )
