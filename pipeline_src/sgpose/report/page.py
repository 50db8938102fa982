"""`index.html`: one static page with every table and figure, readable from disk without a server
(relative links only, inline CSS, no script)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sgpose.core.io import atomic_path

CSS = """body{font-family:sans-serif;max-width:78em;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.2em .6em;border-bottom:1px solid #ddd;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee}
.note{color:#555;font-size:.92em}pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:.85em}
nav a{margin-right:.8em}"""


@dataclass
class Section:
    """One table or figure: a heading, an explanation, the table and/or the image, data links."""

    key: str
    title: str
    text: str
    table: pd.DataFrame | None = None
    image: str | None = None
    links: list[str] = field(default_factory=list)
    anchors: list[tuple[str, str]] = field(default_factory=list)  # (section key, its name): links down the page


def _table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, na_rep="-", float_format=lambda v: f"{v:g}", border=0, escape=True)


def _section(s: Section) -> str:
    parts = [f'<h2 id="{html.escape(s.key)}">{html.escape(s.title)}</h2>', f'<p class="note">{html.escape(s.text)}</p>']
    if s.anchors:
        parts.append("<p>See: " + ", ".join(f'<a href="#{html.escape(k)}">{html.escape(name)}</a>' for k, name in s.anchors)
                     + "</p>")
    if s.links:
        parts.append("<p>Data: " + ", ".join(f'<a href="{html.escape(x)}">{html.escape(x)}</a>' for x in s.links) + "</p>")
    if s.table is not None:
        parts.append(_table(s.table) if len(s.table) else "<p><em>no runs yet</em></p>")
    if s.image:
        parts.append(f'<img src="{html.escape(s.image)}" alt="{html.escape(s.title)}">')
    return "\n".join(parts)


def _provenance(prov: dict) -> str:
    rows = [("code sha256", prov["code_sha256"]), ("params file", prov["params_file"]),
            ("params sha256", prov["params_sha256"])]
    rows += [(f"version: {k}", v) for k, v in prov["versions"].items()]
    rows += [(c["what"], f'{c["sha256"]} ({c["file"]})') for c in prov["checkpoints"]]
    rows += [(f"CPU numerics ({c['file']})", c["numerics"]) for c in prov["checkpoints"] if "numerics" in c]
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f'<h2 id="provenance">Provenance</h2><table class="prov">{body}</table>'


def render(title: str, intro: str, sections: list[Section], prov: dict, params_yaml: str) -> str:
    """The page's HTML."""
    nav = " ".join(f'<a href="#{html.escape(s.key)}">{html.escape(s.key)}</a>' for s in sections)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<link rel="icon" href="data:,">
<style>{CSS}</style>
</head><body>
<h1>{html.escape(title)}</h1>
<p class="note">{html.escape(intro)}</p>
<nav>{nav}<a href="#provenance">provenance</a><a href="#params">params</a></nav>
{chr(10).join(_section(s) for s in sections)}
{_provenance(prov)}
<h2 id="params">Parameters</h2>
<pre>{html.escape(params_yaml)}</pre>
</body></html>
"""


def write_page(path: Path, title: str, intro: str, sections: list[Section], prov: dict, params_yaml: str) -> None:
    """Write index.html atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(render(title, intro, sections, prov, params_yaml), encoding="utf-8")
