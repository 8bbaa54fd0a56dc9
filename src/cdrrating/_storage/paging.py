"""Cursors, compiled queries and page assembly: one meaning of a query for every adapter
(private)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

from cdrrating._storage import paths
from cdrrating._storage.entities import (
    CDR_ENTITY,
    Entity,
    Field,
    Kind,
    fold,
)
from cdrrating._storage.filters import (
    TRUE,
    JsonPath,
    Node,
    cmp,
    parse_filter,
    resolve,
)
from cdrrating._storage.records import (
    Clock,
    Page,
    Query,
    T,
    check_instant,
    parse_instant,
)
from cdrrating._storage.rows import (
    TENANT_KEY,
    _check_text,
    to_micros_epoch,
)
from cdrrating.cdr import CDR
from cdrrating.errors import (
    ValidationError,
)

# -- cursors --------------------------------------------------------------------------------


class CursorCodec:
    """Signs and checks cursors with a key the repository holds.

    A cursor carries the position (sort value and id of the row it continues from), the
    direction and a fingerprint of the query that made it; it is signed with
    HMAC-SHA256. A cursor that was altered, signed with another key, or used with a
    different query is refused with a :class:`~cdrrating.ValidationError`. Without a
    ``key`` a random one is drawn: cursors then work only within this repository
    object; pass the same key to every process that serves one API.
    """

    def __init__(self, key: bytes | str | None = None) -> None:
        if key is None:
            key = secrets.token_bytes(32)
        elif isinstance(key, str):
            key = key.encode("utf-8")
        if not isinstance(key, bytes) or len(key) < 16:
            raise ValidationError("cursor_key", key, "bytes or text of at least 16 bytes")
        self._key = key

    def _sign(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:16]

    def encode(self, direction: str, position: Sequence[Any], fingerprint: str) -> str:
        body = json.dumps([1, direction, list(position), fingerprint], separators=(",", ":"))
        raw = body.encode()
        return _b64(raw) + "." + _b64(self._sign(raw))

    def decode(self, cursor: str, fingerprint: str) -> tuple[str, tuple[Any, ...]]:
        bad = "a cursor returned by a page of this same query from this repository"
        try:
            body_text, sig_text = cursor.split(".")
            body, sig = _unb64(body_text), _unb64(sig_text)
        except (ValueError, TypeError):
            raise ValidationError("cursor", cursor, bad) from None
        # Base64 text has spellings that decode alike (the unused bits of the last
        # character); only the one this codec writes is accepted.
        if _b64(body) != body_text or _b64(sig) != sig_text:
            raise ValidationError("cursor", cursor, bad + " (not in its canonical form)")
        if not hmac.compare_digest(sig, self._sign(body)):
            raise ValidationError("cursor", cursor, bad + " (signature does not match)")
        version, direction, position, made_for = json.loads(body)
        if version != 1 or made_for != fingerprint:
            raise ValidationError(
                "cursor", cursor, bad + " (it belongs to a query with other filters or sort)"
            )
        return direction, tuple(position)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text.isascii():
        raise ValueError(text)
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# -- compiled queries and page assembly -----------------------------------------------------

#: The top-level keys of a stored session's ``to_mapping()`` (the list API's shape).
SESSION_RECORD_KEYS = (
    "id", "sessionId", "operatorId", "company", "auth", "location", "isRoaming", "consumed",
    "evseId", "chargeBoxId", "startedAt", "endedAt", "updatedAt", "ongoing", "currency",
    "cost", "costInclVat", "chargingSeconds", "parkingSeconds", "chargingPeriods",
    "tariffIds", "createdAt",
)  # fmt: skip


@attrs.frozen
class Compiled:
    """A query checked against an entity, in storage terms, ready for an adapter."""

    entity: Entity
    filter: Node  # what count() counts: tenant, search, times, where, in-progress
    keyset: Node  # the rows after the cursor in scan order (TRUE without a cursor)
    order: tuple[str, ...]  # the columns rows are listed by: sort, id, tenant key
    descending: bool
    limit: int
    backward: bool  # fetching the page before the cursor
    after: tuple[Any, ...] | None  # the position to continue from, in ``order`` columns
    fingerprint: str
    fields: tuple[str, ...] | None
    with_count: bool = False
    sort_path: JsonPath | None = None  # sorting by a JSON path: order starts SORT_COLUMNS
    #: The sort column may be empty (NULL): empty values sort lowest, before every value
    #: ascending and after every value descending, ties broken by the id.
    sort_nullable: bool = False

    @property
    def sort_column(self) -> str:
        return self.order[0]

    @property
    def key_column(self) -> str:
        return self.entity.key

    @property
    def page_filter(self) -> Node:
        """The rows a page is read from: the filter and the keyset condition."""
        return ("and", [self.filter, self.keyset])

    @property
    def scan_descending(self) -> bool:
        """The order to fetch rows in: backward pages read the other way and flip."""
        return self.descending != self.backward

    def sort_key(self, row: Mapping[Any, Any]) -> tuple[Any, ...]:
        """The row's position in ``order`` columns, as a cursor carries it (None for an
        empty sort value)."""
        return tuple(row[c] for c in self.order)

    def scan_key(self, row: Mapping[Any, Any]) -> tuple[Any, ...]:
        """A Python sort key for the listing order: empty values lowest (memory)."""
        key = self.sort_key(row)
        if not self.sort_nullable:
            return key
        return ((key[0] is not None, key[0]), *key[1:])


def compile_query(entity: Entity, query: Query | None, codec: CursorCodec) -> Compiled:
    q = query if query is not None else Query()
    if not isinstance(q, Query):
        raise ValidationError("query", q, "a cdrrating.repository.Query")
    parts: list[Node] = []
    if q.tenant is not None:
        # The identity column: the (tenant, started_at, id) index serves the listing.
        parts.append(("cmp", TENANT_KEY, "eq", q.tenant))
    time_col = entity.fields[entity.time_field].column
    if q.since is not None:
        parts.append(("cmp", time_col, "gte", check_instant("since", q.since)))
    if q.until is not None:
        parts.append(("cmp", time_col, "lt", check_instant("until", q.until)))
    if q.updated_since is not None:
        parts.append(
            ("cmp", "updated_at_us", "gte", check_instant("updated_since", q.updated_since))
        )
    if q.updated_before is not None:
        parts.append(
            ("cmp", "updated_at_us", "lt", check_instant("updated_before", q.updated_before))
        )
    if not q.include_in_progress and entity.in_progress is not None:
        parts.append(("cmp", entity.in_progress, "eq", False))
    if q.where:
        parts.append(parse_filter(entity, q.where))
    if q.search:
        _check_text("search", q.search, 255)
        parts.append(search_node(entity, fold(q.search)))
    sort_name = q.sort or entity.default_sort
    field, sort_path = _sort_by(entity, sort_name)
    if q.fields is not None:
        known = record_keys(entity)
        for name in q.fields:
            if name not in known and not _resolves(entity, name):
                opened = [f"{n}.<key>[.<key>...]" for n in entity.open_json]
                raise ValidationError(
                    "fields", name, "field names from: " + ", ".join([*known, *opened])
                )
    node: Node = ("and", parts)
    leading = SORT_COLUMNS if sort_path is not None else (field.column,)
    order = (*leading, entity.key, *((TENANT_KEY,) if entity.tenanted else ()))
    fingerprint = hashlib.sha256(
        json.dumps(
            [entity.name, node, list(order), q.order, sort_path and sort_path.path],
            default=str,
            separators=(",", ":"),
        ).encode()
    ).hexdigest()[:24]
    backward, after = False, None
    if q.cursor is not None:
        direction, after = codec.decode(q.cursor, fingerprint)
        backward = direction == "p"
        _check_position(q.cursor, after, field, len(order), sort_path is not None)
    descending = q.order == "desc"
    nullable = sort_path is None and field.nullable
    keyset = TRUE if after is None else keyset_node(order, after, descending != backward, nullable)
    return Compiled(
        entity=entity,
        filter=node,
        keyset=keyset,
        order=order,
        descending=descending,
        limit=q.limit,
        backward=backward,
        after=after,
        fingerprint=fingerprint,
        fields=q.fields,
        with_count=q.with_count,
        sort_path=sort_path,
        sort_nullable=nullable,
    )


#: The pseudo-columns a sort by a JSON path orders by: the value's class rank, its
#: number (booleans as 0/1) and its text (see ``_storage.paths.sort_key``). Adapters
#: compute them per row (memory) or select them as labelled expressions (SQL).
SORT_COLUMNS = ("_sort_rank", "_sort_num", "_sort_text")


def _sort_by(entity: Entity, name: str) -> tuple[Field, JsonPath | None]:
    """A sort key: a column (one that may be empty sorts its empty values lowest), or a
    dotted path into JSON (any value sorts: by class, then value; see
    ``_storage.paths``)."""
    field = entity.fields.get(entity.aliases.get(name, name))
    if field is not None and field.sortable:
        return field, None
    if field is None:
        try:
            ref = resolve(entity, name, "sort")
        except ValidationError:
            ref = None
        if isinstance(ref, JsonPath):
            return Field(ref.name, Kind.JSON), ref
    names = [n for n, f in entity.fields.items() if f.sortable]
    names += [a for a, n in entity.aliases.items() if n in names]
    names += list(entity.json_names)
    names += [f"{n}.<key>[.<key>...]" for n in entity.open_json]
    raise ValidationError("sort", name, "a field or a JSON path: " + ", ".join(names))


def with_sort_columns(compiled: Compiled, row: Mapping[str, Any]) -> Mapping[str, Any]:
    """The row with the :data:`SORT_COLUMNS` of a sort by a JSON path (memory)."""
    ref = compiled.sort_path
    if ref is None:
        return row
    key = paths.sort_key(paths.read(row[ref.column], ref.path))
    return {**row, **dict(zip(SORT_COLUMNS, key, strict=True))}


def _resolves(entity: Entity, name: str) -> bool:
    """A name a filter could use: another spelling, or a dotted path into JSON
    (``extra.location.country``)."""
    try:
        resolve(entity, name, "fields")
    except ValidationError:
        return False
    return True


def _check_position(
    cursor: str, after: tuple[Any, ...], field: Field, size: int, by_path: bool
) -> None:
    # A signed cursor holds what this codec wrote; this guards a reused key.
    kinds = {Kind.BOOL: bool, Kind.INT: int, Kind.TIME: int}
    lead = 3 if by_path else 1
    ok = len(after) == size and all(isinstance(v, str) for v in after[lead:])
    if ok and by_path:
        rank, number, text = after[:3]
        ok = (
            type(rank) is int
            and isinstance(number, int | float)
            and not isinstance(number, bool)
            and isinstance(text, str)
        )
    elif ok:
        ok = type(after[0]) is kinds.get(field.kind, str) or (after[0] is None and field.nullable)
    if not ok:
        raise ValidationError(
            "cursor", cursor, "a cursor of this query (its position is malformed)"
        )


def keyset_node(
    order: Sequence[str], after: Sequence[Any], descending: bool, nullable: bool = False
) -> Node:
    """Rows strictly after ``after`` in the lexicographic order of ``order`` columns:
    (a, b, c) < (x, y, z) spelt out as comparisons. The leading ``a <= x`` is implied
    by the rest; it lets every planner scan the (a, b, c) index as a range.
    ``nullable``: the first column may be empty, and empty sorts lowest."""
    if nullable:
        return _nullable_keyset(order, after, descending)
    strict, loose = ("lt", "lte") if descending else ("gt", "gte")
    options: list[Node] = []
    for i, col in enumerate(order):
        equal = [("cmp", order[j], "eq", after[j]) for j in range(i)]
        options.append(("and", [*equal, _cmp_col(col, strict, after[i])]))
    return ("and", [_cmp_col(order[0], loose, after[0]), ("or", options)])


def _nullable_keyset(order: Sequence[str], after: Sequence[Any], descending: bool) -> Node:
    """:func:`keyset_node` when the first column may be empty (NULL), which sorts below
    every value. A comparison with NULL is never true in SQL (nor in ``evaluate``), so the
    empty rows are named with IS NULL / IS NOT NULL rather than compared."""
    lead, value = order[0], after[0]
    # Rows tied on the sort value continue by the unique key (never empty).
    rest = keyset_node(order[1:], after[1:], descending)
    empty: Node = ("cmp", lead, "eq", None)  # IS NULL
    if value is None:
        tied: Node = ("and", [empty, rest])
        # Ascending, every value follows the empty ones; descending, nothing does.
        return tied if descending else ("or", [tied, ("cmp", lead, "ne", None)])
    beyond = _cmp_col(lead, "lt" if descending else "gt", value)
    tied = ("and", [_cmp_col(lead, "eq", value), rest])
    if descending:
        return ("or", [beyond, tied, empty])
    # As in keyset_node: the implied ``a >= x`` lets a planner scan an index as a range.
    return ("and", [_cmp_col(lead, "gte", value), ("or", [beyond, tied])])


def _cmp_col(column: str, op: str, value: Any) -> Node:
    if isinstance(value, bool):  # a boolean sort column: see cmp()
        return cmp(Field(column, Kind.BOOL), op, value)
    return ("cmp", column, op, value)


def record_keys(entity: Entity) -> tuple[str, ...]:
    """The keys of a stored record's :meth:`to_mapping`, in order."""
    if entity.name == "session":
        return SESSION_RECORD_KEYS
    if entity is CDR_ENTITY:
        return (
            *(f.name for f in attrs.fields(CDR)),
            "status",
            "reason",
            "prefix",
            "billed_seconds",
            "in_progress",
            "created_at",
            "updated_at",
        )
    return tuple(entity.fields)


def search_node(entity: Entity, needle: str) -> Node:
    """The search as a filter: a literal substring of a folded text column, or of a
    column stored as written, or an enum whose value contains it."""
    options: list[Node] = [("contains", name + "_fold", needle) for name in entity.fold_fields]
    options.extend(("contains", name, needle) for name in entity.plain_fields)
    for name, values in entity.enum_search:
        found = values_matching(needle, values)
        if found:
            options.append(("in", name, list(found), False))
    return ("or", options)


def values_matching(needle: str, values: Sequence[str]) -> tuple[str, ...]:
    """The enum values a folded search needle finds (enums are searched by value set)."""
    return tuple(v for v in values if needle in fold(v))


def build_page(
    compiled: Compiled,
    rows: Sequence[Mapping[Any, Any]],
    codec: CursorCodec,
    make: Callable[[Mapping[Any, Any]], T],
    count: int | None = None,
) -> Page[T]:
    """A page from up to ``limit + 1`` rows fetched in ``compiled.scan_descending`` order
    after ``compiled.after``; the extra row only says that more exist."""
    limit = compiled.limit
    more = len(rows) > limit
    rows = list(rows[:limit])
    if compiled.backward:
        rows.reverse()
    next_cursor = previous_cursor = None
    if rows:
        if more if not compiled.backward else True:
            next_cursor = codec.encode("n", compiled.sort_key(rows[-1]), compiled.fingerprint)
        if (compiled.after is not None) if not compiled.backward else more:
            previous_cursor = codec.encode("p", compiled.sort_key(rows[0]), compiled.fingerprint)
    return Page(
        tuple(make(r) for r in rows),
        next_cursor=next_cursor,
        previous_cursor=previous_cursor,
        count=count,
        fields=compiled.fields,
    )


def now_micros(clock: Clock) -> int:
    now = clock()
    if not isinstance(now, datetime) or now.utcoffset() is None:
        raise ValidationError("clock", now, "a callable returning an aware datetime")
    return to_micros_epoch(now)


def prune_cutoff(older_than: datetime | timedelta, clock: Clock) -> int:
    if isinstance(older_than, timedelta):
        return now_micros(clock) - (
            (older_than.days * 86_400 + older_than.seconds) * 1_000_000 + older_than.microseconds
        )
    if isinstance(older_than, datetime) and older_than.utcoffset() is not None:
        return to_micros_epoch(older_than)
    raise ValidationError("older_than", older_than, "an aware datetime or a timedelta (an age)")


def plan_instant(at: Any) -> int | None:
    """``load_plan``'s ``at`` as storage microseconds (naive datetimes refused)."""
    if at is None:
        return None
    if not isinstance(at, datetime):
        raise ValidationError("at", at, "an aware datetime or None")
    dt = parse_instant("at", at)
    assert dt is not None
    return to_micros_epoch(dt)


def check_batch_size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError("batch_size", value, "an int >= 1")
    return value
