"""Exact money in pydantic models and JSON (needs ``pip install 'cdrrating[pydantic]'``).

:data:`Money` is a ``Decimal`` annotated for pydantic v2: it holds an amount in currency
units with at most six decimal places (one micro), the precision cdrrating rates with.
It accepts a ``Decimal``, an ``int``, decimal text (``"0.0125"``) and a ``float`` only
when the float *is* such an amount exactly (``0.5``, ``2.25``); ``0.1`` as a float is
``0.1000000000000000055…`` and is refused, as is a seventh decimal place. It is written
to JSON as a string (``"0.0125"``), never through a binary float, so a JavaScript client
that reads numbers as doubles cannot round it. The OpenAPI schema says so: a number or
a decimal string in requests, a decimal string in responses.

A JSON number is decimal text, and exact. But pydantic's own JSON parser (in
``model_validate_json``) and ``json.loads`` turn it into a float *before* a validator
sees it, losing digits beyond the 15th or 16th (pydantic 2.x parses JSON numbers for
``Decimal`` fields through a float too). Parse JSON with
:func:`loads` (numbers with a fraction or exponent become ``Decimal``) and validate the
result, as :func:`validate_json` does; a web framework that reads request bodies with
``json.loads`` can be given :func:`loads` instead (see ``docs/service.md``).

Conversions to and from micros go through :mod:`cdrrating.money`:
``to_micros(amount)`` and :func:`from_micros`.

The module also holds the API shapes a service over cdrrating needs (see
``docs/service.md``): request and response models for calls (:class:`CallBody`,
:class:`CDRCreate`, :class:`CDRPatch`, :class:`CDROut`), rates (:class:`RateIn`,
:class:`RatePatch`, :class:`RateOut`), a tenant's plan settings (:class:`PlanIn`),
listing parameters (:class:`Listing`, :class:`ExportListing`, :class:`SessionListing`) and
:class:`Page`. Their values are checked by the library's own types (a body is valid
when the :class:`~cdrrating.CDR` or :class:`~cdrrating.Rate` it stands for can be
built), so a refusal is the library's, named at the field the client sent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, Self, TypeVar

import attrs

try:
    from pydantic import (
        BaseModel,
        ConfigDict,
        Field,
        GetCoreSchemaHandler,
        GetJsonSchemaHandler,
        TypeAdapter,
        model_validator,
    )
    from pydantic.json_schema import JsonSchemaValue
    from pydantic_core import InitErrorDetails, PydanticCustomError, core_schema
    from pydantic_core import ValidationError as PydanticValidationError
except ImportError as _error:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "cdrrating.pydantic needs pydantic 2, which is not installed: "
        "pip install 'cdrrating[pydantic]'"
    ) from _error

from cdrrating._json import exact_default
from cdrrating._validate import MAX_SECONDS
from cdrrating.cdr import CDR, MAX_NUMBER_LEN, Direction, Disposition
from cdrrating.errors import ValidationError
from cdrrating.money import MAX_AMOUNT_UNITS, Rounding, format_micros, parse_decimal, to_micros
from cdrrating.plancache import PlanSettings
from cdrrating.rates import MAX_DESTINATION_LEN, MAX_PREFIX_LEN, Rate, RateStatus
from cdrrating.repository import DEFAULT_LIMIT, Query, StoredCDR, StoredRate
from cdrrating.repository import Page as RepositoryPage
from cdrrating.streaming import MEDIA_TYPES

__all__ = [
    "CDRCreate",
    "CDROut",
    "CDRPatch",
    "CallBody",
    "ExactMoney",
    "ExportListing",
    "Listing",
    "Money",
    "NonNegativeMoney",
    "Page",
    "PlanIn",
    "RateIn",
    "RateOut",
    "RatePatch",
    "SessionListing",
    "dumps",
    "from_micros",
    "loads",
    "validate_json",
]

T = TypeVar("T")
S = TypeVar("S")

# What the schema promises a client: the decimal text parse_decimal reads.
_DECIMAL_PATTERN = r"^\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$"
_DESCRIPTION = (
    "An exact amount in currency units, at most 6 decimal places; a JSON number or a "
    "decimal string in requests, a decimal string in responses."
)


def from_micros(micros: int) -> Decimal:
    """The exact ``Decimal`` amount of ``micros`` (``12_500`` → ``Decimal("0.0125")``),
    written as :func:`~cdrrating.money.format_micros` writes it (at least two places)."""
    return Decimal(format_micros(micros))


def _exact(value: Any, field: str) -> int:
    """Micros of an amount a client sent; ValidationError naming ``field`` if it is not
    an exact amount of at most six decimal places."""
    if isinstance(value, float):
        # A float is accepted only when it is itself the decimal amount: its exact binary
        # value must have at most six places. Decimal(float) is that exact value.
        if not math.isfinite(value):
            raise ValidationError(field, value, "a finite decimal amount")
        exact = Decimal(value)
        try:
            return to_micros(exact, field=field)
        except ValidationError:
            raise ValidationError(
                field,
                value,
                f"an exact decimal: the float {value!r} is {exact:.30g}...; send the amount "
                f"as a string ({str(value)!r}) or parse JSON numbers as Decimal "
                "(cdrrating.pydantic.loads)",
            ) from None
    if isinstance(value, str):
        return to_micros(parse_decimal(value, field=field), field=field)
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise ValidationError(field, value, "a decimal amount: a number or a decimal string")
    return to_micros(value, field=field)


@attrs.frozen
class ExactMoney:
    """The pydantic annotation behind :data:`Money`: ``Annotated[Decimal, ExactMoney()]``.

    ``ge``/``le`` bound the amount (inclusive), e.g. ``ExactMoney(ge=Decimal(0))`` for a
    price. Validated values are canonical (``Decimal(format_micros(micros))``), so equal
    amounts are written identically.
    """

    ge: Decimal | int | None = None
    le: Decimal | int | None = None

    def validate(self, value: Any, field: str = "amount") -> Decimal:
        """The canonical ``Decimal`` of ``value``; :class:`~cdrrating.ValidationError`
        naming ``field`` if it is not an exact amount within the bounds."""
        amount = from_micros(_exact(value, field))
        if self.ge is not None and amount < self.ge:
            raise ValidationError(field, value, f"an amount >= {self.ge}")
        if self.le is not None and amount > self.le:
            raise ValidationError(field, value, f"an amount <= {self.le}")
        return amount

    def __get_pydantic_core_schema__(
        self, _source: Any, _handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        def check(value: Any, info: core_schema.ValidationInfo) -> Decimal:
            try:
                return self.validate(value, info.field_name or "amount")
            except ValidationError as error:
                # pydantic's own error type, so the response names the field's location
                # and keeps the library's wording of what was expected.
                raise PydanticCustomError(
                    "exact_money", "{expected}", {"expected": error.expected}
                ) from None

        return core_schema.with_info_plain_validator_function(
            check,
            serialization=core_schema.plain_serializer_function_ser_schema(
                _to_text, when_used="json", return_schema=core_schema.str_schema()
            ),
        )

    def __get_pydantic_json_schema__(
        self, _schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        text: dict[str, Any] = {"type": "string", "pattern": _DECIMAL_PATTERN}
        if handler.mode == "serialization":
            return {**text, "description": _DESCRIPTION, "examples": ["0.0125"]}
        # Every amount cdrrating keeps is below MAX_AMOUNT_UNITS in absolute value.
        number: dict[str, Any] = {
            "type": "number",
            "exclusiveMaximum": MAX_AMOUNT_UNITS,
            "exclusiveMinimum": -MAX_AMOUNT_UNITS,
        }
        # A schema is documentation for clients; a bound is shown as a JSON number.
        if self.ge is not None:
            number["minimum"] = _schema_number(self.ge)
        if self.le is not None:
            number["maximum"] = _schema_number(self.le)
        return {"anyOf": [number, text], "description": _DESCRIPTION, "examples": ["0.0125"]}


def _schema_number(value: Decimal | int) -> int | float:
    return int(value) if value == int(value) else float(value)


def _to_text(value: Decimal) -> str:
    # Validated amounts are canonical already; this also canonicalises a Decimal that
    # was assigned without validation (model_construct), or refuses it.
    return format_micros(to_micros(value, field="amount"))


#: An exact amount of money in currency units (at most six decimal places).
Money = Annotated[Decimal, ExactMoney()]
#: :data:`Money` that is zero or more (prices, fees).
NonNegativeMoney = Annotated[Decimal, ExactMoney(ge=0)]


def _refuse_constant(name: str) -> Any:
    raise ValidationError("json", name, "a finite number (JSON has no NaN or Infinity)")


def loads(data: str | bytes | bytearray) -> Any:
    """``json.loads`` that keeps numbers exact: a number with a fraction or an exponent
    becomes a ``Decimal`` (integers stay ``int``); ``NaN`` and ``Infinity``, which JSON
    does not have, are refused with :class:`~cdrrating.ValidationError`."""
    try:
        return json.loads(data, parse_float=Decimal, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        raise ValidationError("json", error.doc[:80], f"valid JSON ({error.msg})") from None


def dumps(value: Any) -> str:
    """``json.dumps`` that writes a ``Decimal`` as its exact text, a string, never a float
    (and dates as ISO 8601): for responses built from mappings such as
    ``StoredSession.to_mapping()``. The counterpart of :func:`loads`."""
    return json.dumps(value, ensure_ascii=False, default=exact_default)


def validate_json(type_: type[T], data: str | bytes | bytearray) -> T:
    """Validate JSON text as ``type_`` (a pydantic model or any type pydantic knows),
    parsing numbers exactly with :func:`loads` first: what ``model_validate_json`` would
    do, without rounding a JSON number through a float."""
    return TypeAdapter(type_).validate_python(loads(data))


# -- the API shapes of a service over cdrrating ----------------------------------------------
#
# Each request model is checked by building the library type it stands for; the library's
# refusal is reported at the field the client sent (an API field may carry another name in
# the library: cost_per_minute is per_minute_micros). Limits appear in the OpenAPI schema
# read from the library's own constants, as documentation; the check itself stays the
# library's.


def _schema(**extra: Any) -> Any:
    return Field(json_schema_extra=extra)


def _checked(model: BaseModel, build: Callable[[], object], names: Mapping[str, str]) -> None:
    """Build the library value ``model`` stands for; a library refusal becomes a pydantic
    error located at the API field (``names`` maps library field names to API names)."""
    try:
        build()
    except ValidationError as error:
        field = names.get(error.field, error.field)
        detail = InitErrorDetails(
            type=PydanticCustomError("value_error", "{message}", {"message": str(error)}),
            loc=(field,),
            input=error.value,
        )
        raise PydanticValidationError.from_exception_data(type(model).__name__, [detail]) from None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


_Number = Annotated[str, _schema(maxLength=MAX_NUMBER_LEN)]
_Seconds = Annotated[int, _schema(minimum=0, maximum=MAX_SECONDS)]
_Direction = Annotated[str, _schema(examples=[d.value for d in Direction])]
_Disposition = Annotated[str, _schema(examples=[d.value for d in Disposition])]
_CALL_FIELDS = (
    "started_at",
    "destination_number",
    "caller_number",
    "direction",
    "disposition",
    "answered_at",
    "ended_at",
    "billsec",
    "duration",
)


def _call_values(cdr: CDR) -> dict[str, Any]:
    values = {name: getattr(cdr, name) for name in _CALL_FIELDS}
    return values | {"direction": cdr.direction.value, "disposition": cdr.disposition.value}


class CallBody(_Model):
    """A call as a client sends it, without its id (taken from the path). ``billsec`` and
    ``duration`` left out are derived as :class:`~cdrrating.CDR` derives them; direction
    and disposition are read as :meth:`~cdrrating.Disposition.parse` reads them
    (``"NO ANSWER"``)."""

    started_at: datetime
    destination_number: _Number
    caller_number: _Number = ""
    direction: _Direction = Direction.OUTBOUND.value
    disposition: _Disposition = Disposition.ANSWERED.value
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    billsec: _Seconds | None = None
    duration: _Seconds | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        _checked(self, self._build, {})
        return self

    def _build(self) -> CDR:
        return self.to_cdr("-")  # any valid id: the id is checked where it is given

    def to_cdr(self, call_id: str, *, tenant: str | None = None) -> CDR:
        """The :class:`~cdrrating.CDR` (unrated) of this call."""
        values = self.model_dump(include=set(_CALL_FIELDS), exclude_none=True)
        return CDR(**values, call_id=call_id, tenant=tenant)

    @classmethod
    def from_cdr(cls, cdr: CDR) -> Self:
        """The body a client would send for ``cdr`` (the inverse of :meth:`to_cdr`)."""
        return cls(**_call_values(cdr))


class CDRCreate(CallBody):
    """A call with its id, for a create (``POST``) endpoint."""

    call_id: Annotated[str, _schema(minLength=1, maxLength=255)]

    def _build(self) -> CDR:
        return self.to_cdr()

    def to_cdr(self, call_id: str | None = None, *, tenant: str | None = None) -> CDR:
        """The :class:`~cdrrating.CDR` of this call (``call_id`` None: the body's)."""
        return super().to_cdr(self.call_id if call_id is None else call_id, tenant=tenant)

    @classmethod
    def from_cdr(cls, cdr: CDR) -> Self:
        return cls(**_call_values(cdr), call_id=cdr.call_id)


class CDRPatch(_Model):
    """A partial update of a call: the fields sent replace the stored ones."""

    started_at: datetime | None = None
    destination_number: _Number | None = None
    caller_number: _Number | None = None
    direction: _Direction | None = None
    disposition: _Disposition | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    billsec: _Seconds | None = None
    duration: _Seconds | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        _checked(self, self._build, {})
        return self

    def _build(self) -> CDR:
        # The fields sent, each checked by CDR; the rest borrowed so that the
        # placeholder call cannot contradict them.
        changes = self.changes()
        first = changes.get("started_at") or changes.get("answered_at") or changes.get("ended_at")
        base: dict[str, Any] = {"call_id": "-", "destination_number": ""}
        base["started_at"] = first or _EPOCH
        return CDR(**(base | changes))

    def changes(self) -> dict[str, Any]:
        """The fields sent, by :class:`~cdrrating.CDR`'s names."""
        return self.model_dump(exclude_unset=True)

    def apply(self, cdr: CDR) -> CDR:
        """``cdr`` with the fields sent replaced (unrated: price it again)."""
        return attrs.evolve(cdr, **self.changes(), cost_micros=None, currency=None)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class CDROut(_Model):
    """A stored call as an API returns it: the call, its cost as exact :data:`Money`,
    the rating outcome and the repository's timestamps."""

    call_id: str
    started_at: datetime
    destination_number: str
    caller_number: str
    direction: str
    disposition: str
    answered_at: datetime | None
    ended_at: datetime | None
    billsec: int
    duration: int
    cost: Money | None
    currency: str | None
    status: str | None
    reason: str | None
    in_progress: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_stored(cls, stored: StoredCDR) -> Self:
        cdr = stored.cdr
        cost = None if cdr.cost_micros is None else from_micros(cdr.cost_micros)
        return cls(
            **_call_values(cdr),
            call_id=cdr.call_id,
            cost=cost,
            currency=cdr.currency,
            status=None if stored.status is None else stored.status.value,
            reason=None if stored.reason is None else stored.reason.value,
            in_progress=stored.in_progress,
            created_at=stored.created_at,
            updated_at=stored.updated_at,
        )


# One increment for the whole call: initial_seconds = increment_seconds = billing_increment.
_RATE_NAMES = {
    "per_minute_micros": "cost_per_minute",
    "initial_seconds": "billing_increment",
    "increment_seconds": "billing_increment",
}
_Prefix = Annotated[str, _schema(maxLength=MAX_PREFIX_LEN, pattern="^[0-9]*$")]
_Destination = Annotated[str, _schema(maxLength=MAX_DESTINATION_LEN)]
_Increment = Annotated[int, _schema(minimum=1, maximum=MAX_SECONDS)]
_Status = Annotated[str, _schema(enum=[s.value for s in RateStatus])]


def _rate_values(rate: Rate) -> dict[str, Any]:
    return {
        "prefix": rate.prefix,
        "destination": rate.destination,
        "cost_per_minute": from_micros(rate.per_minute_micros),
        "billing_increment": rate.increment_seconds,
        "status": rate.status.value,
    }


def _rate_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """API rate fields by :class:`~cdrrating.Rate`'s names and units."""
    fields = dict(values)
    if "cost_per_minute" in fields:
        cost = fields.pop("cost_per_minute")
        fields["per_minute_micros"] = cost if cost is None else to_micros(cost)
    if "billing_increment" in fields:
        fields["initial_seconds"] = fields["increment_seconds"] = fields.pop("billing_increment")
    return fields


_DEFAULT_INCREMENT = Rate(prefix="", per_minute_micros=0).increment_seconds  # Rate's own


class _RateFields(_Model):
    prefix: _Prefix
    cost_per_minute: NonNegativeMoney
    destination: _Destination = ""
    billing_increment: _Increment = _DEFAULT_INCREMENT
    status: _Status = RateStatus.ACTIVE.value


class RateIn(_RateFields):
    """A rate as a client sends it: a price per minute in exact :data:`Money` and one
    billing increment (the first and every later step)."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        _checked(self, self.to_rate, _RATE_NAMES)
        return self

    def to_rate(self, *, tenant: str | None = None, id: str | None = None) -> Rate:
        """The :class:`~cdrrating.Rate` of this body."""
        return Rate(**_rate_fields(self.model_dump()), tenant=tenant, id=id)

    @classmethod
    def from_rate(cls, rate: Rate) -> Self:
        """The body of ``rate``: ``billing_increment`` is its ``increment_seconds``."""
        return cls(**_rate_values(rate))


_PLACEHOLDER_RATE: dict[str, Any] = {"prefix": "", "per_minute_micros": 0}


class RatePatch(_Model):
    """A partial update of a rate: the fields sent replace the stored ones."""

    prefix: _Prefix | None = None
    cost_per_minute: NonNegativeMoney | None = None
    destination: _Destination | None = None
    billing_increment: _Increment | None = None
    status: _Status | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        _checked(
            self,
            lambda: Rate(**(_PLACEHOLDER_RATE | self.changes())),
            _RATE_NAMES,
        )
        return self

    def changes(self) -> dict[str, Any]:
        """The fields sent, by :class:`~cdrrating.Rate`'s names and units (for a
        repository's ``update``)."""
        return _rate_fields(self.model_dump(exclude_unset=True))


class RateOut(_RateFields):
    """A stored rate as an API returns it."""

    id: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_stored(cls, stored: StoredRate) -> Self:
        values = _rate_values(stored.rate)
        return cls(
            **values, id=stored.id, created_at=stored.created_at, updated_at=stored.updated_at
        )


class PlanIn(_Model):
    """A tenant's plan settings as a client sends and reads them (the rest of
    :class:`~cdrrating.plancache.PlanSettings` keeps its defaults)."""

    currency: Annotated[str, _schema(examples=["EUR"])]
    rounding: Annotated[str, _schema(enum=[r.value for r in Rounding])] = Rounding.UP.value
    timezone: str = "UTC"

    @model_validator(mode="after")
    def _check(self) -> Self:
        _checked(self, self.to_settings, {})
        return self

    def to_settings(self) -> PlanSettings:
        return PlanSettings(**self.model_dump())

    @classmethod
    def from_settings(cls, settings: PlanSettings) -> Self:
        return cls(
            currency=settings.currency,
            rounding=settings.rounding.value,
            timezone=settings.timezone,
        )


class Listing(_Model):
    """Query parameters of a listing (newest first): text search, a time window, a page
    size (``limit``, at most 10,000) and the ``cursor`` of a page."""

    search: str | None = None
    since: str | None = None
    until: str | None = None
    limit: Annotated[int, _schema(minimum=1)] = DEFAULT_LIMIT
    cursor: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        _checked(self, self.to_query, {})
        return self

    def to_query(self, tenant: str | None = None) -> Query:
        """The repository :class:`~cdrrating.repository.Query` of these parameters."""
        return Query(tenant=tenant, **self.model_dump(include=set(Listing.model_fields)))


class ExportListing(Listing):
    """A :class:`Listing` and the format of the export (``csv``, ``json``, ``jsonl``)."""

    format: Annotated[str, _schema(enum=list(MEDIA_TYPES))] = "csv"


class SessionListing(_Model):
    """Query parameters of the charging-session list API (see
    :meth:`~cdrrating.sql.SQLSessionRepository.query`): ``filter`` is a MongoDB-style
    filter as JSON text."""

    filter: str | None = None
    sort: str | None = None
    order: str = "asc"
    since: str | None = None
    before: str | None = None
    include_ongoing: bool = False
    limit: Annotated[int, _schema(minimum=1)] = DEFAULT_LIMIT
    next_page_cursor: str | None = None
    previous_page_cursor: str | None = None
    fields: str | None = None

    def query_arguments(self) -> dict[str, Any]:
        """The keyword arguments of the repository's ``query``. The filter is read with
        plain ``json.loads``: the filter language compares floats (bound as decimal
        text), not ``Decimal`` operands."""
        try:
            where = None if self.filter is None else json.loads(self.filter)
        except ValueError as error:
            raise ValidationError("filter", self.filter, f"a JSON object ({error})") from None
        return self.model_dump() | {"filter": where}


class Page(BaseModel, Generic[T]):
    """One page of a listing as an API returns it."""

    items: list[T]
    next_cursor: str | None

    @classmethod
    def of(cls, page: RepositoryPage[S], convert: Callable[[S], T]) -> Self:
        """A repository's :class:`~cdrrating.repository.Page`, each item converted:
        ``Page[RateOut].of(page, RateOut.from_stored)``."""
        return cls(items=[convert(x) for x in page], next_cursor=page.next_cursor)
