"""``cdrrating sessions import FILE`` and ``cdrrating sessions export``: EV-charging
sessions into and out of the database the other commands use (private).

Import reads OCPI 2.2.1 CDR objects or the list API's camelCase shape from a JSON array
(or an OCPI response ``{"data": [...]}``), JSON Lines or CSV (dotted headers such as
``location.country`` nest). Every record is either stored or reported on stderr with its
position and the reason; the valid ones are upserted in one transaction. Export writes
every matching session, page after page, as JSON Lines, a JSON array or CSV.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from cdrrating._storage.paging import SESSION_RECORD_KEYS
from cdrrating._storage.sessions import dumps_exact
from cdrrating.charging import ChargingSession
from cdrrating.errors import ValidationError
from cdrrating.repository import MAX_LIMIT

from ._common import (
    EXIT_OK,
    EXIT_REJECTED_ROWS,
    InputError,
    SubParsers,
    UsageError,
    add_db_option,
    open_repository,
    shown_db,
)

_INPUTS = ("auto", "json", "jsonl", "csv")
_OUTPUTS = ("jsonl", "json", "csv")
# CSV cells of the list shape that hold JSON (lists of objects or of ids).
_JSON_CELLS = ("chargingPeriods", "tariffIds")
_BOOL_CELLS = ("isRoaming", "ongoing", "location.isPublic")
_IN_CHUNK = 1000


# -- reading ----------------------------------------------------------------------------------


def _loads(text: str) -> Any:
    # OCPI numbers are exact decimals: floats would be refused by the session (and round).
    return json.loads(text, parse_float=Decimal)


def _input_format(path: str, given: str, head: str) -> str:
    if given != "auto":
        return given
    suffix = Path(path).suffix.lower()
    if suffix in (".json", ".jsonl", ".ndjson", ".csv"):
        return {".ndjson": "jsonl"}.get(suffix, suffix[1:])
    return "json" if head.lstrip().startswith("[") else "jsonl"


def _records(path: str, fmt: str, text: str) -> Iterator[tuple[str, Any]]:
    """(position, record or the exception that made it unreadable), in file order."""
    if fmt == "json":
        try:
            data = _loads(text)
        except ValueError as error:
            raise InputError(f"{path}: not JSON: {error}") from None
        if isinstance(data, Mapping) and isinstance(data.get("data"), list):
            data = data["data"]  # an OCPI response envelope
        if not isinstance(data, list):
            raise InputError(f"{path}: a JSON array of sessions (or {{'data': [...]}}) expected")
        for n, record in enumerate(data, 1):
            yield f"{path}: record {n}", record
    elif fmt == "jsonl":
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                yield f"{path}:{n}", _loads(line)
            except ValueError as error:
                yield f"{path}:{n}", ValidationError("line", line[:80], f"a JSON object ({error})")
    else:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        for row in reader:
            where = f"{path}:{reader.line_num}"
            try:
                yield where, _from_csv(row)
            except ValidationError as error:
                yield where, error


def _from_csv(row: Mapping[str | None, Any]) -> dict[str, Any]:
    """A CSV row of the list shape as its nested mapping: empty cells are absent."""
    out: dict[str, Any] = {}
    for name, cell in row.items():
        if name is None:
            raise ValidationError("row", cell, "no more cells than the header has names")
        if cell is None or cell == "":
            continue
        value: Any = cell
        if name in _BOOL_CELLS:
            if cell not in ("true", "false"):
                raise ValidationError(name, cell, "true or false")
            value = cell == "true"
        elif name in _JSON_CELLS:
            try:
                value = _loads(cell)
            except ValueError as error:
                raise ValidationError(name, cell, f"JSON ({error})") from None
        elif cell[:1] in "[{" and name.split(".")[0] not in _LIST_KEYS:
            # A column beyond the list shape (kept in extra) holding an object or an
            # array, as export writes one: read back as JSON, else kept as text.
            with contextlib.suppress(ValueError):
                value = _loads(cell)
        level = out
        *heads, last = name.split(".")
        for head in heads:
            level = level.setdefault(head, {})
            if not isinstance(level, dict):
                raise ValidationError(name, cell, f"a column beside a '{head}' column of its own")
        level[last] = value
    return out


# The list shape's own keys: any other CSV column is kept in the session's extra.
_LIST_KEYS = frozenset(SESSION_RECORD_KEYS) - {"createdAt"}


def _import(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        text = Path(args.file).read_text(encoding="utf-8-sig") if args.file != "-" else ""
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read {args.file}: {error}") from None
    if args.file == "-":
        text = sys.stdin.read()
    fmt = _input_format(args.file, args.input_format, text[:64])
    shape = args.shape
    rejected = skipped = 0
    kept: dict[str, tuple[str, ChargingSession]] = {}

    def report(where: str, reason: str, word: str = "rejected") -> None:
        err.write(f"{where}: {word}: {reason}\n")

    for where, record in _records(args.file, fmt, text):
        if isinstance(record, Exception):
            rejected += 1
            report(where, str(record))
            continue
        if not isinstance(record, Mapping):
            rejected += 1
            report(where, f"a JSON object expected, got {type(record).__name__}")
            continue
        try:
            session = ChargingSession.from_mapping(record, shape=shape)
        except ValidationError as error:
            rejected += 1
            report(where, str(error))
            continue
        earlier = kept.get(session.id)
        if earlier is not None:
            # The repository's upsert rule decides which of the two is stored.
            older, newer = (
                (earlier, (where, session))
                if earlier[1].updated_at <= session.updated_at
                else ((where, session), earlier)
            )
            skipped += 1
            report(
                older[0],
                f"session {session.id!r} is also given at {newer[0]}, updated later or at "
                "the same time: that one is stored",
                "skipped",
            )
            kept[session.id] = newer
            continue
        kept[session.id] = (where, session)
    with open_repository(args.db, "sessions") as repo:
        ids = sorted(kept)
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start : start + _IN_CHUNK]
            page = repo.query(filter={"id": {"$in": chunk}}, include_ongoing=True, limit=MAX_LIMIT)
            for stored in page:
                where, session = kept[stored.id]
                if session.updated_at < stored.session.updated_at:
                    skipped += 1
                    report(
                        where,
                        f"session {stored.id!r} is stored with a later update "
                        f"({stored.session.updated_at.isoformat()}); kept as stored",
                        "skipped",
                    )
                    del kept[stored.id]
        try:
            written = repo.upsert_many(s for _, s in kept.values()) if kept else 0
        except ValidationError as error:
            # A session that cannot be stored as it is (its extra holds NaN, say): the
            # position comes from the batch, which is in the order kept.
            wheres = [w for w, _ in kept.values()]
            index = _position(error.field)
            where = wheres[index] if index is not None and index < len(wheres) else args.file
            raise InputError(f"{where}: {error}; nothing was stored") from None
    err.write(
        f"imported {written} sessions into {shown_db(args.db)}"
        + (f"; {rejected} rejected" if rejected else "")
        + (f"; {skipped} skipped" if skipped else "")
        + "\n"
    )
    out.write(json.dumps({"imported": written, "rejected": rejected, "skipped": skipped}) + "\n")
    return EXIT_REJECTED_ROWS if rejected else EXIT_OK


def _position(field: str) -> int | None:
    if field.startswith("records[") and "]" in field:
        with contextlib.suppress(ValueError):
            return int(field[len("records[") : field.index("]")])
    return None


# -- writing ----------------------------------------------------------------------------------


def _flat(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects as dotted columns; lists as JSON text; booleans as true/false."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_flat(value, name + "."))
        elif isinstance(value, list | tuple | Mapping):
            out[name] = dumps_exact(value) if value else ""
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif value is None:
            out[name] = ""
        else:
            out[name] = str(value)
    return out


def _sessions(repo: Any, args: argparse.Namespace) -> Iterator[Any]:
    cursor = None
    while True:
        page = repo.query(
            filter=args.filter,
            sort=args.sort,
            order=args.order,
            since=args.since,
            before=args.before,
            include_ongoing=args.include_ongoing,
            limit=MAX_LIMIT,
            next_page_cursor=cursor,
        )
        yield from page
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def _mapping(stored: Any, args: argparse.Namespace) -> dict[str, Any]:
    if args.fields is not None:
        return dict(stored.to_mapping(args.fields))
    # The session alone (no createdAt): what import reads back as the same session.
    return dict(stored.session.to_mapping(shape=args.shape))


def _export(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.shape == "ocpi" and args.fields is not None:
        raise UsageError("--fields picks keys of the list shape: not with --shape ocpi")
    if args.filter is not None:
        try:
            args.filter = json.loads(args.filter)
        except ValueError as error:
            raise UsageError(f"--filter: not JSON: {error}") from None
    with contextlib.ExitStack() as stack:
        target = out
        if args.output is not None:
            try:
                target = stack.enter_context(Path(args.output).open("w", encoding="utf-8"))
            except OSError as error:
                raise InputError(f"cannot write {args.output}: {error.strerror or error}") from None
        with open_repository(args.db, "sessions", must_exist=True) as repo:
            try:
                count = _write(repo, args, target)
            except ValidationError as error:
                raise UsageError(str(error)) from None
    err.write(f"exported {count} sessions from {shown_db(args.db)}\n")
    return EXIT_OK


def _write(repo: Any, args: argparse.Namespace, out: TextIO) -> int:
    count = 0
    if args.format == "jsonl":
        for stored in _sessions(repo, args):
            out.write(dumps_exact(_mapping(stored, args)) + "\n")
            count += 1
        return count
    if args.format == "json":
        out.write("[")
        for stored in _sessions(repo, args):
            out.write(("\n" if count == 0 else ",\n") + dumps_exact(_mapping(stored, args)))
            count += 1
        out.write("\n]\n" if count else "]\n")
        return count
    # CSV: one pass for the columns every row needs, then the rows, a page at a time.
    header: dict[str, None] = {}
    for stored in _sessions(repo, args):
        header.update(dict.fromkeys(_flat(_mapping(stored, args))))
    writer = csv.DictWriter(out, fieldnames=list(header), lineterminator="\r\n", restval="")
    writer.writeheader()
    for stored in _sessions(repo, args):
        writer.writerow(_flat(_mapping(stored, args)))
        count += 1
    return count


# -- the parser -------------------------------------------------------------------------------


def _fields(text: str) -> Sequence[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def add_sessions(sub: SubParsers[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "sessions",
        help="import and export EV-charging sessions (OCPI CDRs or a list API's shape)",
        description="Store EV-charging sessions in the database and write them out again.",
    )
    inner = p.add_subparsers(dest="sessions_command", required=True, metavar="ACTION")

    imp = inner.add_parser(
        "import",
        help="store the sessions of a file (JSON array, JSON Lines or CSV)",
        description="Read OCPI 2.2.1 CDR objects or sessions in the list API's camelCase "
        "shape and store them (an upsert: a session already stored is replaced unless it "
        "was updated later). Every record is stored or reported on stderr with its "
        "position and the reason; exit code 1 if any was rejected.",
    )
    imp.add_argument("file", help="the file ('-' for stdin)")
    imp.add_argument(
        "--input-format",
        choices=_INPUTS,
        default="auto",
        help="auto: by the file's extension (.json, .jsonl/.ndjson, .csv), else by its "
        "first character",
    )
    imp.add_argument(
        "--shape",
        choices=("auto", "ocpi", "list"),
        default="auto",
        help="the records' shape (auto: OCPI if a record has start_date_time)",
    )
    add_db_option(imp)
    imp.set_defaults(handler=_import)

    exp = inner.add_parser(
        "export",
        help="write every stored session that matches",
        description="Write the sessions a list-API request would list, every page: "
        "--filter is the MongoDB-style filter (list API names such as operatorId, "
        "location.country, consumed, or extra.<path>).",
    )
    exp.add_argument("--format", choices=_OUTPUTS, default="jsonl")
    exp.add_argument("--shape", choices=("list", "ocpi"), default="list")
    exp.add_argument("--filter", metavar="JSON", help='e.g. \'{"location.country": "NL"}\'')
    exp.add_argument("--sort", help="a field to sort by (default updatedAt)")
    exp.add_argument("--order", choices=("asc", "desc"), default="asc")
    exp.add_argument("--since", help="updatedAt at or after (ISO 8601 with offset, epoch ms)")
    exp.add_argument("--before", help="updatedAt before (ISO 8601 with offset, epoch ms)")
    exp.add_argument("--include-ongoing", action="store_true", help="sessions without an end too")
    exp.add_argument("--fields", type=_fields, help="list-shape keys to keep, e.g. id,consumed")
    exp.add_argument("-o", "--output", metavar="FILE", help="write there instead of stdout")
    add_db_option(exp)
    exp.set_defaults(handler=_export)
