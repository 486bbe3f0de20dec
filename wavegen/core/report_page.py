"""The pieces every wavegen report is built of: Markdown and HTML tables, and one HTML page shell.

`wavegen evaluate`, `wavegen listen analyze` and `wavegen demo` each write a report.md and a
report.html with these, so the three look alike and escape alike.
"""

from __future__ import annotations

import html

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1400px;margin:2em auto;padding:0 1em;color:#1d2733}"
    "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #bbb;padding:4px 8px;"
    "text-align:right}td:first-child,th:first-child{text-align:left}th{background:#eef2f6}"
    "img{max-width:100%}"
)


def markdown_table(head: list[str], rows: list[list[str]]) -> list[str]:
    """Lines of a Markdown table ('|' in a cell escaped)."""
    cells = [[c.replace("|", "\\|") for c in row] for row in rows]
    return [
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *["| " + " | ".join(row) + " |" for row in cells],
    ]


def html_table(head: list[str], rows: list[list[str]]) -> str:
    """An HTML table, every cell escaped."""
    e = html.escape
    header = "".join(f"<th>{e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>\n" for row in rows)
    return f"<table>\n<tr>{header}</tr>\n{body}</table>"


def html_page(title: str, body: list[str]) -> str:
    """A whole HTML document: ``title`` (escaped) as <title> and <h1>, then the ``body`` parts."""
    t = html.escape(title)
    head = f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{t}</title>'
    return (
        f"{head}<style>{STYLE}</style></head><body>\n<h1>{t}</h1>\n" + "\n".join(body) + "\n</body></html>\n"
    )
