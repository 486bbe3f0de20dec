"""The pieces every wavegen report is built of: Markdown and HTML tables, and one HTML page shell.

`wavegen evaluate`, `wavegen listen analyze` and `wavegen demo` each write a report.md and a
report.html with these, so the three look alike and escape alike.
"""

from __future__ import annotations

import html

# Readable on a phone too: the page never gets wider than the screen; a wide table scrolls
# sideways inside its own box, its first column kept in view.
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1400px;margin:1em auto;padding:0 0.75em;"
    "color:#1d2733;line-height:1.45;overflow-wrap:anywhere;-webkit-text-size-adjust:100%}"
    "h1{font-size:1.45em}h2{font-size:1.2em;margin-top:1.5em}"
    ".table-wrap{overflow-x:auto;max-width:100%;margin:0.5em 0}"
    "table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:4px 8px;"
    "text-align:right;overflow-wrap:normal}td{white-space:nowrap}td:first-child,th:first-child{text-align:left;position:sticky;"
    "left:0;background:#fff}th{background:#eef2f6}th:first-child{background:#eef2f6}"
    "img{max-width:100%;height:auto}.warnings{border-left:4px solid #b3261e;padding:0.3em 1em 0.3em 2em;"
    "background:#fdf3f2}"
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
    return f'<div class="table-wrap"><table>\n<tr>{header}</tr>\n{body}</table></div>'


def html_page(title: str, body: list[str]) -> str:
    """A whole HTML document: ``title`` (escaped) as <title> and <h1>, then the ``body`` parts."""
    t = html.escape(title)
    head = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{t}</title>'
    )
    return (
        f"{head}<style>{STYLE}</style></head><body>\n<h1>{t}</h1>\n" + "\n".join(body) + "\n</body></html>\n"
    )
