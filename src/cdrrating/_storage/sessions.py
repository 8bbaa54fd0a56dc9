"""Stored charging sessions: the entity (its columns, the values inside its JSON
document, the list API's names), the stored record, and the storage row (private;
re-exported by :mod:`cdrrating.repository`).

A session is kept as indexed columns for what a listing filters and sorts by most
(``id``, the times, ``ongoing``, ``operator_id``, ``company_id``,
``location.country``, ``evse_id``, ``session_id``, ``charge_box_id``, ``auth.uid``) and
the whole session as one JSON document (column ``data``) for everything else, which
filters reach through dotted paths (:mod:`cdrrating._storage.paths`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs

from cdrrating._storage.entities import Entity, Field, Kind
from cdrrating._storage.paging import Compiled, CursorCodec, compile_query
from cdrrating._storage.records import DEFAULT_LIMIT, Query, check_instant, pick
from cdrrating._storage.rows import _at, _check_text, _check_value, _json_exact, from_micros_epoch
from cdrrating.charging import (
    CdrDimension,
    ChargingPeriod,
    ChargingSession,
    SessionAuth,
    SessionLocation,
    thaw_json,
)
from cdrrating.errors import ValidationError

# The list API's names -> the names storage knows (a session's attribute paths). A
# filter, a sort and ``fields`` accept either spelling. The list API's ``cost`` and
# ``costInclVat`` are decimal currency units, not micros: filter on ``cost_micros``.
LIST_API_FIELDS: Mapping[str, str] = {
    "id": "id",
    "sessionId": "session_id",
    "operatorId": "operator_id",
    "company.id": "company_id",
    "auth.idTag.uid": "auth.uid",
    "auth.type": "auth.type",
    "auth.contractId": "auth.contract_id",
    "location.id": "location.id",
    "location.country": "location.country",
    "location.type": "location.type",
    "location.isPublic": "location.public",
    "location.timeZone": "location.time_zone",
    "isRoaming": "roaming",
    "consumed": "energy_wh",
    "evseId": "evse_id",
    "chargeBoxId": "charge_box_id",
    "startedAt": "started_at",
    "endedAt": "ended_at",
    "updatedAt": "updated_at",
    "createdAt": "created_at",
    "ongoing": "ongoing",
    "currency": "currency",
    "chargingSeconds": "charging_seconds",
    "parkingSeconds": "parking_seconds",
}

_COLUMN_FIELDS = (
    Field("id", Kind.STR, max_len=255),
    Field("started_at", Kind.TIME),
    Field("ended_at", Kind.TIME, nullable=True),
    Field("updated_at", Kind.TIME),
    Field("created_at", Kind.TIME),
    Field("ongoing", Kind.BOOL),
    Field("operator_id", Kind.STR, nullable=True, max_len=255),
    Field("company_id", Kind.STR, nullable=True, max_len=255),
    Field("location.country", Kind.STR, nullable=True, max_len=255),
    Field("evse_id", Kind.STR, nullable=True, max_len=255),
    Field("session_id", Kind.STR, nullable=True, max_len=255),
    Field("charge_box_id", Kind.STR, nullable=True, max_len=255),
    Field("auth.uid", Kind.STR, nullable=True, max_len=255),
    Field("data", Kind.JSON),
)

_DOCUMENT_NAMES = {
    "energy_wh": Kind.INT,
    "charging_seconds": Kind.INT,
    "parking_seconds": Kind.INT,
    "location.id": Kind.STR,
    "location.type": Kind.STR,
    "location.public": Kind.BOOL,
    "location.time_zone": Kind.STR,
    "auth.type": Kind.STR,
    "auth.contract_id": Kind.STR,
    "roaming": Kind.BOOL,
    "currency": Kind.STR,
    "cost_micros": Kind.INT,
    "cost_incl_vat_micros": Kind.INT,
}

SESSION_ENTITY = Entity(
    name="session",
    key="id",
    time_field="started_at",
    default_sort="updated_at",
    fields={f.name: f for f in _COLUMN_FIELDS},
    fold_fields=(),
    plain_fields=(),
    enum_search=(),
    open_json={"extra": ("data", ("extra",))},
    json_names={
        name: ("data", tuple(name.split(".")), kind) for name, kind in _DOCUMENT_NAMES.items()
    },
    aliases=LIST_API_FIELDS,
    in_progress="ongoing",
    tenanted=False,
)

#: The columns of a stored session, in table order.
SESSION_COLUMNS: tuple[str, ...] = tuple(f.column for f in _COLUMN_FIELDS)

# canonical name -> the list API's name, for ``fields``.
_LIST_NAME = {canonical: name for name, canonical in LIST_API_FIELDS.items()}


@attrs.frozen(kw_only=True)
class StoredSession:
    """A charging session as a repository holds it: the session, and ``created_at``
    (when the repository first stored it, from its clock)."""

    session: ChargingSession
    created_at: datetime

    @property
    def id(self) -> str:
        return self.session.id

    def to_mapping(self, fields: Sequence[str] | None = None) -> dict[str, Any]:
        """The list API's shape (``session.to_mapping(shape="list")``: camelCase, costs
        as :class:`~decimal.Decimal`) plus ``createdAt``. ``fields`` keeps those names,
        in either spelling (``consumed`` or ``energy_wh``; ``extra.<key>`` reads a key
        the list shape keeps at the top level); dotted names keep their nesting."""
        out = self.session.to_mapping(shape="list")
        out["createdAt"] = self.created_at.isoformat()
        if fields is None:
            return out
        return pick(out, [list_name(name) for name in fields])


def list_name(name: str) -> str:
    """The list API's spelling of a name ``fields`` may hold."""
    if name.startswith("extra."):
        return name[len("extra.") :]
    return _LIST_NAME.get(name, name)


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt is not None else None


def _document(s: ChargingSession) -> dict[str, Any]:
    loc, auth = s.location, s.auth
    return {
        "energy_wh": s.energy_wh,
        "charging_seconds": s.charging_seconds,
        "parking_seconds": s.parking_seconds,
        "location": {
            "id": loc.id,
            "country": loc.country,
            "type": loc.type,
            "public": loc.public,
            "time_zone": loc.time_zone,
        },
        "auth": {"uid": auth.uid, "type": auth.type, "contract_id": auth.contract_id},
        "evse_id": s.evse_id,
        "charge_box_id": s.charge_box_id,
        "session_id": s.session_id,
        "operator_id": s.operator_id,
        "company_id": s.company_id,
        "roaming": s.roaming,
        "currency": s.currency,
        "cost_micros": s.cost_micros,
        "cost_incl_vat_micros": s.cost_incl_vat_micros,
        # Periods keep their instants with the offset they were given and volumes as
        # decimal text: both read back equal.
        "charging_periods": [
            {
                "start": p.start.isoformat(),
                "tariff_id": p.tariff_id,
                "dimensions": [[d.type.value, str(d.volume)] for d in p.dimensions],
            }
            for p in s.charging_periods
        ],
        "tariff_ids": list(s.tariff_ids),
        "extra": thaw_json(s.extra),
    }


def _marked(value: Any, path: list[str | int], places: list[Any], decimals: list[str]) -> Any:
    """``value`` with each Decimal replaced by a stand-in no text can hold (NUL is
    refused), its exact text kept in ``decimals`` and its place in ``places``."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(value)
        places.append(path)
        decimals.append(str(value))
        return f"\x00{len(decimals) - 1}\x00"
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) and "\x00" not in k for k in value):
            raise ValueError(value)
        return {k: _marked(v, [*path, k], places, decimals) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_marked(v, [*path, i], places, decimals) for i, v in enumerate(value)]
    if not _json_exact(value):  # a NUL in text, a type JSON has not, NaN
        raise ValueError(value)
    return value


def _unmark(text: str, decimals: list[str]) -> str:
    for n, number in enumerate(decimals):
        text = text.replace(json.dumps(f"\x00{n}\x00"), number, 1)
    return text


def dumps_exact(value: Any, **options: Any) -> str:
    """JSON text in which Decimals are exact JSON numbers (``json.dumps`` refuses them;
    a float would round them). ``options`` go to ``json.dumps``. ValueError for what
    JSON cannot hold (NaN, infinities, NUL characters)."""
    decimals: list[str] = []
    marked = _marked(value, [], [], decimals)
    return _unmark(json.dumps(marked, ensure_ascii=False, allow_nan=False, **options), decimals)


def _document_text(document: dict[str, Any], session: ChargingSession) -> str:
    """The document as JSON text. ``extra`` may hold Decimals (OCPI data read with
    ``parse_float=Decimal``): they are written as exact JSON numbers, so that filters
    compare them as numbers, and their places are listed under ``extra_decimals`` so
    that they read back as Decimals (other non-integers read back as floats)."""
    decimals: list[str] = []
    places: list[Any] = []
    try:
        document["extra"] = _marked(document["extra"], [], places, decimals)
        document["extra_decimals"] = places
        text = json.dumps(document, ensure_ascii=False, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError):
        raise ValidationError(
            "extra",
            dict(session.extra),
            "JSON-like data that JSON keeps exactly: finite numbers, no NUL characters",
        ) from None
    return _unmark(text, decimals)


def _read_extra(doc: Mapping[str, Any]) -> Any:
    """The inverse of the Decimal marking in :func:`_document_text` (the document was
    read with ``parse_float=Decimal``)."""
    places = {tuple(p) for p in doc.get("extra_decimals", ())}

    def back(value: Any, path: tuple[str | int, ...]) -> Any:
        if path in places:
            return Decimal(value)
        if isinstance(value, Decimal):
            return float(value)  # written as repr(float): the same float again
        if isinstance(value, dict):
            return {k: back(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [back(v, (*path, i)) for i, v in enumerate(value)]
        return value

    return back(doc["extra"], ())


def session_row(session: Any, created_us: int, position: int | None = None) -> dict[str, Any]:
    """The storage form of a session (refused unless it reads back equal)."""
    try:
        if isinstance(session, StoredSession):
            session = session.session
        elif position is not None and isinstance(session, Mapping):
            session = ChargingSession.from_mapping(session)
        if not isinstance(session, ChargingSession):
            raise ValidationError("session", session, "a cdrrating.charging.ChargingSession")
        text = _document_text(_document(session), session)
        _check_text("session", text, None)
        row: dict[str, Any] = {
            "id": session.id,
            "started_at_us": check_instant("started_at", session.started_at),
            "ended_at_us": (
                check_instant("ended_at", session.ended_at) if session.ended_at else None
            ),
            "updated_at_us": check_instant("updated_at", session.updated_at),
            "created_at_us": created_us,
            "ongoing": session.ongoing,
            "operator_id": session.operator_id,
            "company_id": session.company_id,
            "location_country": session.location.country,
            "evse_id": session.evse_id,
            "session_id": session.session_id,
            "charge_box_id": session.charge_box_id,
            "auth_uid": session.auth.uid,
            "data": text,
        }
        for f in _COLUMN_FIELDS:
            if f.kind is not Kind.JSON:
                _check_value(f, row[f.column])
        back = stored_session(row).session
        if back != session:
            name = next(
                (
                    f.name
                    for f in attrs.fields(ChargingSession)
                    if getattr(back, f.name) != getattr(session, f.name)
                ),
                "session",
            )
            raise ValidationError(
                name, getattr(session, name), "a value whose stored form reads back equal"
            )
    except ValidationError as e:
        raise _at(e, position) from None
    return row


def stored_session(row: Mapping[Any, Any]) -> StoredSession:
    """The inverse of :func:`session_row` (instants of the columns come back in UTC)."""
    doc = json.loads(row["data"], parse_float=Decimal)
    loc, auth = doc["location"], doc["auth"]
    ended = row["ended_at_us"]
    session = ChargingSession(
        id=row["id"],
        started_at=from_micros_epoch(row["started_at_us"]),
        ended_at=from_micros_epoch(ended) if ended is not None else None,
        ongoing=bool(row["ongoing"]),
        energy_wh=doc["energy_wh"],
        charging_seconds=doc["charging_seconds"],
        parking_seconds=doc["parking_seconds"],
        location=SessionLocation(
            id=loc["id"],
            country=loc["country"],
            type=loc["type"],
            public=loc["public"],
            time_zone=loc["time_zone"],
        ),
        evse_id=doc["evse_id"],
        charge_box_id=doc["charge_box_id"],
        session_id=doc["session_id"],
        auth=SessionAuth(uid=auth["uid"], type=auth["type"], contract_id=auth["contract_id"]),
        operator_id=doc["operator_id"],
        company_id=doc["company_id"],
        roaming=doc["roaming"],
        currency=doc["currency"],
        cost_micros=doc["cost_micros"],
        cost_incl_vat_micros=doc["cost_incl_vat_micros"],
        updated_at=from_micros_epoch(row["updated_at_us"]),
        charging_periods=tuple(
            ChargingPeriod(
                start=datetime.fromisoformat(p["start"]),
                dimensions=tuple(CdrDimension(t, Decimal(v)) for t, v in p["dimensions"]),
                tariff_id=p["tariff_id"],
            )
            for p in doc["charging_periods"]
        ),
        tariff_ids=tuple(doc["tariff_ids"]),
        extra=_read_extra(doc),
    )
    return StoredSession(session=session, created_at=from_micros_epoch(row["created_at_us"]))


# -- the list API's query ---------------------------------------------------------------------


def session_query(
    *,
    filter: Mapping[str, Any] | None = None,
    sort: str | None = None,
    order: str = "asc",
    since: Any = None,
    before: Any = None,
    include_ongoing: bool = False,
    limit: int = DEFAULT_LIMIT,
    next_page_cursor: str | None = None,
    previous_page_cursor: str | None = None,
    fields: Sequence[str] | str | None = None,
    with_count: bool = False,
) -> tuple[Query, str | None]:
    """The list API's request as a :class:`Query` on the session entity, and the
    direction its cursor must have ("n", "p" or None)."""
    if next_page_cursor is not None and previous_page_cursor is not None:
        raise ValidationError(
            "previous_page_cursor",
            previous_page_cursor,
            "no previous-page cursor beside a next-page cursor (they are mutually exclusive)",
        )
    if not isinstance(include_ongoing, bool):
        raise ValidationError("include_ongoing", include_ongoing, "true or false")
    cursor = next_page_cursor if next_page_cursor is not None else previous_page_cursor
    direction = "n" if next_page_cursor is not None else "p" if cursor is not None else None
    try:
        query = Query(
            where=filter,
            sort=sort,
            order=order,  # type: ignore[arg-type]  # Query validates it
            updated_since=since,
            updated_before=before,
            include_in_progress=include_ongoing,
            limit=limit,
            cursor=cursor,
            fields=fields,
            with_count=with_count,
        )
    except ValidationError as e:
        names = {"where": "filter", "updated_since": "since", "updated_before": "before"}
        raise ValidationError(names.get(e.field, e.field), e.value, e.expected) from None
    return query, direction


def compile_session_query(query: Query, direction: str | None, codec: CursorCodec) -> Compiled:
    """:func:`compile_query` for sessions, with the cursor's direction checked: a
    next-page cursor given as the previous one (or the reverse) is refused."""
    try:
        compiled = compile_query(SESSION_ENTITY, query, codec)
    except ValidationError as e:
        if e.field == "where" or e.field.startswith("where."):
            raise ValidationError("filter" + e.field[5:], e.value, e.expected) from None
        if e.field == "cursor" and direction is not None:
            name = "next_page_cursor" if direction == "n" else "previous_page_cursor"
            raise ValidationError(name, e.value, e.expected) from None
        raise
    if direction is not None and compiled.backward != (direction == "p"):
        name = "next_page_cursor" if direction == "n" else "previous_page_cursor"
        other = "previous" if direction == "n" else "next"
        raise ValidationError(
            name, query.cursor, f"a {name.split('_')[0]}-page cursor (this is a {other}-page one)"
        )
    return compiled


def stale(stored_updated_us: int, incoming_updated_us: int) -> bool:
    """The upsert rule: an incoming session older than the stored one (an earlier
    ``updated_at``: a late or repeated update) does not replace it. The SQL adapter
    states the same rule in its upsert statement."""
    return incoming_updated_us < stored_updated_us
