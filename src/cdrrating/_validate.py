"""Small validators and parsers shared by the domain types (private)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from dateutil import parser as _dateutil_parser

from cdrrating.errors import ValidationError


def check_int(field: str, value: Any, *, minimum: int | None = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float):
            raise ValidationError(field, value, "an int (whole number), not a float")
        raise ValidationError(
            field, value, "an int" + (f" >= {minimum}" if minimum is not None else "")
        )
    if minimum is not None and value < minimum:
        raise ValidationError(field, value, f"an int >= {minimum}")
    return value


def check_micros(field: str, value: Any) -> int:
    if isinstance(value, float):
        raise ValidationError(
            field,
            value,
            f"an int of micro-units, not a float; convert a decimal amount exactly with "
            f"cdrrating.to_micros(Decimal({str(value)!r})) or to_micros({str(value)!r})",
        )
    if isinstance(value, Decimal | str):
        raise ValidationError(
            field, value, "an int of micro-units; convert decimals with cdrrating.to_micros()"
        )
    return check_int(field, value, minimum=0)


def check_str(field: str, value: Any, *, max_len: int, non_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise ValidationError(field, value, "a str")
    if non_empty and not value:
        raise ValidationError(field, value, "a non-empty str")
    if len(value) > max_len:
        raise ValidationError(field, value, f"at most {max_len} characters (got {len(value)})")
    return value


def check_aware(field: str, value: Any, *, optional: bool = False) -> datetime | None:
    if value is None and optional:
        return None
    if not isinstance(value, datetime):
        raise ValidationError(field, value, "a timezone-aware datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(
            field, value, "a timezone-aware datetime (naive datetimes are ambiguous; add tzinfo)"
        )
    return value


def parse_timestamp(field: str, value: Any, default_tz: tzinfo = UTC) -> datetime | None:
    """ISO 8601, free-form date text (dateutil), epoch milliseconds or a datetime.

    Naive results take ``default_tz``. Empty values give None.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValidationError(field, value, "a timestamp")
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        ms = int(value)
        dt = datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=(ms % 1000) * 1000)
    elif isinstance(value, float):
        raise ValidationError(field, value, "epoch milliseconds as an int, not a float")
    elif isinstance(value, str):
        text = value.strip()
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            try:
                dt = _dateutil_parser.parse(text)
            except (ValueError, OverflowError):
                raise ValidationError(
                    field, value, "an ISO 8601 timestamp, a date-time text or epoch milliseconds"
                ) from None
    else:
        raise ValidationError(field, value, "an ISO 8601 timestamp or epoch milliseconds")
    if dt.tzinfo is None or dt.utcoffset() is None:
        dt = dt.replace(tzinfo=default_tz)
    return dt


def ceil_seconds(later: datetime, earlier: datetime) -> int:
    """Whole seconds from earlier to later, rounded up, computed without floats."""
    delta = later - earlier
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return -(-micros // 1_000_000)


def freeze_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if value is None:
        return MappingProxyType({})
    if isinstance(value, MappingProxyType):
        return value
    if not isinstance(value, Mapping):
        raise ValidationError("extra", value, "a mapping")
    return MappingProxyType(dict(value))
