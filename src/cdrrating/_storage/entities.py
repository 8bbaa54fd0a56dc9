"""The fields of stored CDRs and rates: their kinds, limits and how text search folds them
(private)."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from cdrrating.cdr import Direction, Disposition
from cdrrating.charge import ChargeStatus, Reason
from cdrrating.rates import RateStatus

# -- fields: one description shared by every adapter ---------------------------------------


class Kind(enum.Enum):
    STR = "str"
    INT = "int"
    TIME = "time"  # stored as int microseconds since the epoch, UTC
    BOOL = "bool"
    ENUM = "enum"  # stored as the enum's value (a str)
    JSON = "json"  # stored as JSON text; filtered through dotted paths (JsonPath)


@attrs.frozen
class Field:
    name: str
    kind: Kind
    nullable: bool = False
    max_len: int | None = None
    parse: Callable[[Any], enum.Enum] | None = None  # ENUM fields: text → member

    @property
    def column(self) -> str:
        # A dotted name (a session's "location.country") is one column, "location_country".
        name = self.name.replace(".", "_")
        return name + "_us" if self.kind is Kind.TIME else name

    @property
    def sortable(self) -> bool:
        # A JSON column as a whole has no order; its values do (a sort by a dotted path).
        # Nullable fields sort with empty values lowest (``_storage.paging``).
        return self.kind is not Kind.JSON


@attrs.frozen
class Entity:
    """What an adapter needs to know about one stored type."""

    name: str  # "cdr" | "rate"
    key: str  # the id field; a record's identity is (tenant, id), see TENANT_KEY
    time_field: str  # since/until apply to it
    default_sort: str
    fields: Mapping[str, Field]
    fold_fields: tuple[str, ...]  # searched case-insensitively through a *_fold column
    plain_fields: tuple[str, ...]  # searched as stored (they hold no letters)
    enum_search: tuple[tuple[str, tuple[str, ...]], ...]  # searched by value set
    #: Names open to any dotted path below them: name -> (JSON column, path prefix).
    #: CDRs: ``extra`` -> ("extra", ()), so ``extra.location.country`` is a filter name.
    open_json: Mapping[str, tuple[str, tuple[str, ...]]] = attrs.field(factory=dict)
    #: Named values inside a JSON column: name -> (JSON column, path, the kind its
    #: operands must have: STR, INT or BOOL).
    json_names: Mapping[str, tuple[str, tuple[str, ...], Kind]] = attrs.field(factory=dict)
    #: Other spellings of names (a list API's camelCase) -> the name they stand for.
    aliases: Mapping[str, str] = attrs.field(factory=dict)
    #: The bool column that marks a record still in progress (a call's start row, an
    #: ongoing session), which ``Query(include_in_progress=False)`` leaves out.
    in_progress: str | None = None
    #: Identity is (tenant, id), with a tenant_key column; else the id alone.
    tenanted: bool = True


def _fmap(*fields: Field) -> dict[str, Field]:
    return {f.name: f for f in fields}


CDR_ENTITY = Entity(
    name="cdr",
    key="call_id",
    time_field="started_at",
    default_sort="started_at",
    fields=_fmap(
        Field("call_id", Kind.STR, max_len=255),
        Field("started_at", Kind.TIME),
        Field("answered_at", Kind.TIME, nullable=True),
        Field("ended_at", Kind.TIME, nullable=True),
        Field("destination_number", Kind.STR, max_len=50),
        Field("caller_number", Kind.STR, max_len=50),
        Field("direction", Kind.ENUM, max_len=50, parse=Direction.parse),
        Field("disposition", Kind.ENUM, max_len=50, parse=Disposition.parse),
        Field("billsec", Kind.INT),
        Field("duration", Kind.INT),
        Field("tenant", Kind.STR, nullable=True, max_len=255),
        Field("extension", Kind.STR, nullable=True, max_len=255),
        Field("currency", Kind.STR, nullable=True, max_len=3),
        Field("hangup_cause", Kind.STR, nullable=True, max_len=255),
        Field("queue_id", Kind.STR, nullable=True, max_len=255),
        Field("agent_id", Kind.STR, nullable=True, max_len=255),
        Field("cost_micros", Kind.INT, nullable=True),
        Field("status", Kind.ENUM, nullable=True, max_len=32, parse=ChargeStatus.parse),
        Field("reason", Kind.ENUM, nullable=True, max_len=32, parse=Reason.parse),
        Field("prefix", Kind.STR, nullable=True, max_len=50),
        Field("billed_seconds", Kind.INT, nullable=True),
        Field("in_progress", Kind.BOOL),
        Field("extra", Kind.JSON),
        Field("created_at", Kind.TIME),
        Field("updated_at", Kind.TIME),
    ),
    fold_fields=("caller_number", "destination_number"),
    plain_fields=(),
    enum_search=(
        ("direction", tuple(m.value for m in Direction)),
        ("disposition", tuple(m.value for m in Disposition)),
    ),
    open_json={"extra": ("extra", ())},
    in_progress="in_progress",
)

RATE_ENTITY = Entity(
    name="rate",
    key="id",
    time_field="created_at",
    default_sort="created_at",
    fields=_fmap(
        Field("id", Kind.STR, max_len=255),
        Field("tenant", Kind.STR, nullable=True, max_len=255),
        Field("prefix", Kind.STR, max_len=50),
        Field("destination", Kind.STR, max_len=255),
        Field("per_minute_micros", Kind.INT),
        Field("connection_fee_micros", Kind.INT),
        Field("initial_seconds", Kind.INT),
        Field("increment_seconds", Kind.INT),
        Field("grace_seconds", Kind.INT),
        Field("minimum_charge_micros", Kind.INT),
        Field("maximum_charge_micros", Kind.INT, nullable=True),
        Field("priority", Kind.INT),
        Field("status", Kind.ENUM, max_len=32, parse=RateStatus.parse),
        Field("direction", Kind.ENUM, max_len=50, parse=Direction.parse),
        Field("valid_from", Kind.TIME, nullable=True),
        Field("valid_until", Kind.TIME, nullable=True),
        Field("source_prefix", Kind.STR, nullable=True, max_len=255),
        Field("tiers", Kind.JSON),
        # The compact form str(Schedule) writes and Schedule.parse reads back exactly.
        Field("schedule", Kind.STR, nullable=True),
        Field("created_at", Kind.TIME),
        Field("updated_at", Kind.TIME),
    ),
    fold_fields=("destination",),
    plain_fields=("prefix",),
    enum_search=(("status", tuple(m.value for m in RateStatus)),),
)


def fold(text: str) -> str:
    """The case-insensitive form searches compare (Unicode case folding, done in Python
    so that every database agrees: SQLite's ``lower()`` folds ASCII only)."""
    return text.casefold()
