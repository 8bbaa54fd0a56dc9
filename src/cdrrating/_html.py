"""Escaped, row-limited HTML tables for notebooks (private).

Everything that comes from data passes through ``html.escape``: a destination label or
call id in a deck is user input, and a notebook renders what it is given.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

MAX_ROWS = 20


def table(
    header: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    total: int | None = None,
    caption: str = "",
    max_rows: int = MAX_ROWS,
) -> str:
    """An HTML table of at most ``max_rows`` rows; ``total`` says how many there are."""
    out = ["<table>"]
    if caption:
        out.append(f"<caption>{html.escape(caption)}</caption>")
    out.append(
        "<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead>"
    )
    out.append("<tbody>")
    shown = 0
    for row in rows:
        if shown == max_rows:
            break
        out.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
        shown += 1
    out.append("</tbody></table>")
    if total is not None and total > shown:
        out.append(f"<p>{shown} of {total:,} rows shown</p>")
    return "".join(out)


def pre(text: str) -> str:
    return f"<pre>{html.escape(text)}</pre>"
