"""Every record of a query as a stream of text chunks: CSV (RFC 4180), JSON, JSON Lines.

For an HTTP export (``StreamingResponse(stream_records(...))``) or a file: the records
are read a page at a time along the keyset cursors
(:func:`cdrrating.repository.iter_records`) and written into chunks of about
``chunk_size`` characters, so memory holds one page and one chunk however many
records match, and the first bytes leave before the last page is read.

- ``csv``: RFC 4180: a header line, CRLF line ends, a field holding a comma, a quote,
  CR or LF is quoted and its quotes doubled. ``None`` is an empty field, booleans
  ``true``/``false``, lists and mappings their JSON text, ``Decimal`` its exact text.
- ``json``: one JSON array of objects (``[]`` when nothing matches).
- ``jsonl``: one JSON object a line.

JSON never goes through a binary float: a ``Decimal`` is written as a string
(``"0.0125"``), exactly; amounts in micros are integers.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from cdrrating._json import exact_default
from cdrrating.errors import ValidationError
from cdrrating.repository import MAX_LIMIT, Query, iter_records

__all__ = ["MEDIA_TYPES", "stream_records"]

#: The HTTP media type of each format.
MEDIA_TYPES: Mapping[str, str] = {
    "csv": "text/csv; charset=utf-8; header=present",
    "json": "application/json",
    "jsonl": "application/jsonl; charset=utf-8",
}

Convert = Callable[[Any], Mapping[str, Any]]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=exact_default)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def stream_records(
    repository: Any,
    query: Query | None = None,
    *,
    format: str = "csv",
    columns: Sequence[str] | None = None,
    convert: Convert | None = None,
    chunk_size: int = 64 * 1024,
) -> Iterator[str]:
    """The records ``query`` matches, as text chunks in ``format`` (``csv``, ``json`` or
    ``jsonl``), read a page at a time.

    ``convert`` turns a stored record into the mapping written (default:
    ``record.to_mapping(query.fields)``). CSV ``columns`` default to ``query.fields``,
    else to the keys of the first mapping; with neither and no record, the CSV is empty.
    A bad argument raises :class:`~cdrrating.ValidationError` at the call, before any
    chunk is made.
    """
    if format not in MEDIA_TYPES:
        raise ValidationError("format", format, "one of " + ", ".join(MEDIA_TYPES))
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValidationError("chunk_size", chunk_size, "an int >= 1 (characters)")
    q = query if query is not None else Query(limit=MAX_LIMIT)
    if not isinstance(q, Query):
        raise ValidationError("query", q, "a cdrrating.repository.Query")
    fields = q.fields
    to_mapping: Convert = convert if convert is not None else (lambda r: r.to_mapping(fields))
    header = list(columns) if columns is not None else (list(fields) if fields else None)
    records = (to_mapping(r) for r in iter_records(repository, q))
    if format == "csv":
        return _csv(records, header, chunk_size)
    return _json(records, format == "json", chunk_size)


def _csv(
    records: Iterator[Mapping[str, Any]], header: list[str] | None, size: int
) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    if header is not None:
        writer.writerow(header)
    for mapping in records:
        if header is None:
            header = list(mapping)
            writer.writerow(header)
        writer.writerow([_cell(mapping.get(name)) for name in header])
        if buffer.tell() >= size:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


def _json(records: Iterator[Mapping[str, Any]], array: bool, size: int) -> Iterator[str]:
    parts: list[str] = ["["] if array else []
    length = len(parts)
    first = True
    for mapping in records:
        text = json.dumps(mapping, ensure_ascii=False, default=exact_default)
        if array:
            text = text if first else "," + text
        else:
            text += "\n"
        first = False
        parts.append(text)
        length += len(text)
        if length >= size:
            yield "".join(parts)
            parts, length = [], 0
    if array:
        parts.append("]\n")
    if parts:
        yield "".join(parts)
