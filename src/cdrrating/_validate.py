"""Small validators and parsers shared by the domain types (private).

Every parser here does bounded work whatever it is given (a length or magnitude check
comes before any conversion) and raises only :class:`ValidationError`.
"""

from __future__ import annotations

import operator
import re
import warnings
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Literal
from zoneinfo import ZoneInfo

from dateutil import parser as _dateutil_parser

from cdrrating._rules import instant
from cdrrating.errors import ValidationError
from cdrrating.money import MAX_MICROS

#: Whole seconds (billsec, duration, increments) are refused from here on: about 31
#: years, beyond any call, and far inside every integer column.
MAX_SECONDS = 10**9
#: Signed 64-bit, the SQL store's BIGINT.
MAX_INT64 = 2**63 - 1

EpochUnit = Literal["s", "ms", "us", "ns"]
EPOCH_UNITS: Mapping[str, int] = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}

_MAX_WHOLE_TEXT = 24  # "-9223372036854775808" and some spaces
_WHOLE_TEXT = re.compile(r"[+-]?[0-9]+")
_MAX_TIMESTAMP_TEXT = 64


def check_int(
    field: str, value: Any, *, minimum: int | None = 0, maximum: int | None = None
) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float):
            raise ValidationError(field, value, "an int (whole number), not a float")
        raise ValidationError(field, value, "an int" + _at_least(minimum))
    _check_range(field, value, value, "an int", minimum=minimum, maximum=maximum)
    return value


def _at_least(minimum: int | None) -> str:
    return f" >= {minimum}" if minimum is not None else ""


def _check_range(
    field: str, value: Any, number: int, what: str, *, minimum: int | None, maximum: int | None
) -> None:
    # Each bound is named on its own side: "an int >= 0" for -1, "<= 1,000,000,000" above.
    if minimum is not None and number < minimum:
        raise ValidationError(field, value, f"{what} >= {minimum}")
    if maximum is not None and number > maximum:
        raise ValidationError(field, value, f"{what} <= {maximum:,}")


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
    return check_int(field, value, minimum=0, maximum=MAX_MICROS)


def parse_whole(
    field: str,
    value: Any,
    *,
    minimum: int | None = 0,
    maximum: int = MAX_INT64,
    what: str = "a whole number",
) -> int:
    """A whole number from an int, ASCII digit text or an integral Decimal, in range."""
    number: int | None = None
    if isinstance(value, bool | float):
        pass
    elif isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        if len(text) <= _MAX_WHOLE_TEXT and _WHOLE_TEXT.fullmatch(text):
            number = int(text)
    elif (
        isinstance(value, Decimal)
        and value.is_finite()
        # Magnitude first: int(Decimal("1E+999999999")) would build a billion digits.
        and (value.is_zero() or value.adjusted() < 20)
        and value == value.to_integral_value()
    ):
        number = int(value)
    if number is None:
        raise ValidationError(field, value, what)
    _check_range(field, value, number, what, minimum=minimum, maximum=maximum)
    return number


def text_value(field: str, value: Any, *, max_len: int) -> str:
    """Text as given, or an integer's decimal digits (``4420`` read from a number
    cell); anything else is refused rather than turned into its Python ``str()``."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, int) and not isinstance(value, bool):
        if not -(10**max_len) < value < 10**max_len:
            raise ValidationError(field, value, f"at most {max_len} characters")
        text = str(value)
    else:
        try:  # numpy and Arrow integers
            text = str(operator.index(value)) if not isinstance(value, bool) else ""
        except TypeError:
            text = ""
        if not text or len(text) > max_len:
            raise ValidationError(field, value, "text (or a whole number)")
    return check_str(field, text, max_len=max_len)


def check_str(field: str, value: Any, *, max_len: int, non_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise ValidationError(field, value, "a str")
    if non_empty and not value:
        raise ValidationError(field, value, "a non-empty str")
    if len(value) > max_len:
        raise ValidationError(field, value, f"at most {max_len} characters (got {len(value)})")
    return value


# -- instants ---------------------------------------------------------------------------


def check_aware(field: str, value: Any, *, optional: bool = False) -> datetime | None:
    # The common case first, and cheaply (it is on every look-up and every CDR): a plain
    # datetime at a fixed offset (UTC among them) is aware, has no skipped or repeated
    # wall times, and away from years 1 and 9999 stays on the calendar in UTC. Every
    # other value takes the full checks below. (RatePlan.lookup skips the call for a
    # datetime in UTC; tests/test_lookup_fast_path.py holds that to what this decides.)
    if type(value) is datetime and type(value.tzinfo) is timezone and 1 < value.year < 9999:
        return value
    if value is None and optional:
        return None
    if not isinstance(value, datetime):
        raise ValidationError(field, value, "a timezone-aware datetime")
    try:
        offset = value.utcoffset()
    except (ValueError, TypeError):  # a tzinfo whose offset is not a timedelta under 24 h
        offset = None
    if value.tzinfo is None or offset is None:
        raise ValidationError(
            field, value, "a timezone-aware datetime (naive datetimes are ambiguous; add tzinfo)"
        )
    if value.year in (1, 9999):  # only there can the instant in UTC leave the calendar
        try:
            value.astimezone(UTC)
        except (OverflowError, ValueError):
            raise ValidationError(field, value, "an instant from year 1 to 9999 in UTC") from None
    tz = value.tzinfo
    # Fixed offsets skip nothing; elsewhere only a wall time whose two folds differ (the
    # hour a change skips or repeats) needs the round trip through UTC.
    try:
        folds_differ = type(tz) is not timezone and (
            value.replace(fold=1 - value.fold).utcoffset() != offset
        )
    except (ValueError, TypeError):  # a tzinfo that fails on the other fold
        folds_differ = False
    if folds_differ:
        back = value.astimezone(UTC).astimezone(tz)
        if back.replace(fold=0) != value.replace(fold=0):
            raise ValidationError(field, value, _SKIPPED.format(zone=tz))
    return value


_SKIPPED = "a wall time that exists in {zone} (the clocks jump past it)"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_micros(dt: datetime) -> int:
    """Microseconds from the Unix epoch to an aware datetime, as an instant."""
    delta = instant(dt) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def ceil_seconds(later: datetime, earlier: datetime) -> int:
    """Whole seconds from earlier to later, rounded up, on absolute time, without floats."""
    delta = instant(later) - instant(earlier)
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return -(-micros // 1_000_000)


def to_tzinfo(field: str, value: Any) -> tzinfo:
    """A tzinfo, or an IANA zone name such as ``"Europe/Berlin"``."""
    if isinstance(value, tzinfo):
        return value
    if isinstance(value, str) and 0 < len(value) <= 64:
        try:
            return ZoneInfo(value.strip())
        except (ValueError, KeyError, OSError):  # unknown name, bad path, unreadable file
            pass
    raise ValidationError(
        field, value, "a time zone: a tzinfo or an IANA name such as 'Europe/Berlin' or 'UTC'"
    )


def to_tzinfos(value: Any) -> Mapping[str, tzinfo] | None:
    """The zone abbreviations a caller vouches for: ``{"EST": "America/New_York"}``."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValidationError(
            "tzinfos", value, "a mapping of zone abbreviations to zones, e.g. {'EST': ...}"
        )
    out: dict[str, tzinfo] = {}
    for name, zone in value.items():
        if not isinstance(name, str) or not name.strip():
            raise ValidationError("tzinfos", name, "zone abbreviations as non-empty str")
        out[name.strip().upper()] = to_tzinfo(f"tzinfos[{name!r}]", zone)
    return out


def epoch_per_second(value: Any) -> int | None:
    """Units per second of an epoch unit name, or None (no unit named)."""
    if value is None:
        return None
    per_second = EPOCH_UNITS.get(value) if isinstance(value, str) else None
    if per_second is None:
        raise ValidationError("epoch_unit", value, "one of s, ms, us, ns (or None)")
    return per_second


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_EPOCH_S = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // timedelta(seconds=1) + 86_400
_MAX_EPOCH_S = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // timedelta(seconds=1) - 86_400
# Without a named unit an epoch number is milliseconds, and only with 13 digits
# (2001-09-09 to 2286-11-20): epoch seconds, microseconds and nanoseconds of the same
# years have 10, 16 and 19 digits and an ISO basic date 8, so none is ever misread.
_DEFAULT_MS = (10**12, 10**13)
_DIGIT_HINTS = {
    8: "; 8 digits look like a date: write it as 2025-04-22",
    10: "; 10 digits look like epoch seconds: name the epoch unit 's'",
    16: "; 16 digits look like epoch microseconds: name the epoch unit 'us'",
    19: "; 19 digits look like epoch nanoseconds: name the epoch unit 'ns'",
}


def _from_epoch(field: str, value: Any, number: int, per_second: int | None) -> datetime:
    if per_second is None:
        if not _DEFAULT_MS[0] <= number < _DEFAULT_MS[1]:
            digits = len(str(abs(number))) if abs(number) < 10**30 else 31
            raise ValidationError(
                field,
                value,
                "epoch milliseconds with 13 digits (2001 to 2286), or a date-time text"
                + _DIGIT_HINTS.get(digits, "; for other epochs name the unit (s, ms, us, ns)"),
            )
        per_second = 1_000
    seconds, rest = divmod(number, per_second)
    if not _MIN_EPOCH_S <= seconds <= _MAX_EPOCH_S:
        raise ValidationError(field, value, "an epoch time within the years 1 to 9999")
    # Below a microsecond (nanosecond epochs) is dropped: datetime holds microseconds.
    return _EPOCH + timedelta(seconds=seconds, microseconds=rest * 1_000_000 // per_second)


class _ZoneRefused(Exception):
    """Raised inside dateutil's parse to stop at a zone name it would guess."""

    def __init__(self, name: str) -> None:
        self.name = name


_UTC_NAMES = frozenset({"UTC", "GMT", "Z", "UT"})
# "GMT+3" is UTC+3 to most people and UTC-3 to POSIX (and dateutil): refused.
_UTC_WITH_OFFSET = re.compile(r"(?<![A-Za-z])(UTC|GMT|UT)\s*[+-]", re.IGNORECASE)
# Defaults that differ in year, month and day: a text that leaves any of them to the
# default gives two different dates, so "10:00" or "Monday" is found out.
_PROBES = (datetime(2000, 1, 1), datetime(2001, 2, 3))


def _zone_resolver(
    tzinfos: Mapping[str, tzinfo] | None,
) -> Callable[[str | None, int | None], tzinfo | None]:
    def resolve(name: str | None, offset: int | None) -> tzinfo | None:
        if name is None:
            return None if offset is None else timezone(timedelta(seconds=offset))
        key = name.upper()
        if key in _UTC_NAMES and not offset:
            return UTC
        if offset is None and tzinfos is not None and key in tzinfos:
            return tzinfos[key]
        raise _ZoneRefused(name)

    return resolve


def _parse_text(
    field: str, value: str, tzinfos: Mapping[str, tzinfo] | None, dayfirst: bool
) -> datetime:
    text = value.strip()
    if len(text) > _MAX_TIMESTAMP_TEXT or not text.isascii():
        raise ValidationError(
            field,
            value,
            f"a date-time text of at most {_MAX_TIMESTAMP_TEXT} characters, in ASCII",
        )
    try:  # ISO 8601 first: fast, and never ambiguous
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    if _UTC_WITH_OFFSET.search(text):
        raise ValidationError(
            field, value, "a UTC offset written as +03:00 ('GMT+3' is read both ways)"
        )
    resolve = _zone_resolver(tzinfos)
    try:
        with warnings.catch_warnings():
            # dateutil warns (and guesses) where this module refuses: nothing to say twice.
            warnings.simplefilter("ignore")
            first, second = (
                _dateutil_parser.parse(text, default=d, tzinfos=resolve, dayfirst=dayfirst)
                for d in _PROBES
            )
    except _ZoneRefused as e:
        raise ValidationError(
            field,
            value,
            f"a UTC offset such as -05:00 instead of the zone name {e.name!r} (zone names "
            "are ambiguous unless mapped to a zone)",
        ) from None
    except (ValueError, OverflowError, TypeError, ArithmeticError, IndexError):
        raise ValidationError(
            field,
            value,
            "an ISO 8601 timestamp such as 2025-04-22T10:00:00+02:00, or a date-time text",
        ) from None
    if first.date() != second.date():
        raise ValidationError(field, value, "a date-time with a full date (year, month and day)")
    return first


def parse_timestamp(
    field: str,
    value: Any,
    default_tz: tzinfo | str = UTC,
    *,
    epoch_unit: EpochUnit | None = None,
    tzinfos: Mapping[str, tzinfo | str] | None = None,
    dayfirst: bool = False,
) -> datetime | None:
    """An instant from an aware datetime, ISO 8601 or date-time text, or an epoch number.

    Naive datetimes and texts without an offset take ``default_tz`` (a tzinfo or a zone
    name); a text naming a wall time that ``default_tz`` skips or repeats is refused, as
    is a zone abbreviation not in ``tzinfos`` and a text without a full date. Epoch
    numbers (ints or digit text) are read in ``epoch_unit``; without one, only 13-digit
    milliseconds are accepted. Empty values give None.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    tz = to_tzinfo("default_tz", default_tz)
    per_second = epoch_per_second(epoch_unit)
    from_text = False
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, bool | float):
        raise ValidationError(
            field, value, "a timestamp (epoch numbers as an int, not a float or bool)"
        )
    elif isinstance(value, int):
        dt = _from_epoch(field, value, value, per_second)
    elif isinstance(value, str):
        text = value.strip()
        if _WHOLE_TEXT.fullmatch(text) and len(text) <= _MAX_WHOLE_TEXT:
            dt = _from_epoch(field, value, int(text), per_second)
        else:
            dt = _parse_text(field, value, to_tzinfos(tzinfos), dayfirst)
            from_text = True
    else:
        raise ValidationError(field, value, "an ISO 8601 timestamp, a datetime or an epoch int")
    if dt.tzinfo is None or dt.utcoffset() is None:
        dt = dt.replace(tzinfo=tz)
        if from_text and type(tz) is not timezone:
            _check_wall_time(field, value, dt)
    try:
        check_aware(field, dt)
    except ValidationError as e:  # say it of the value as the caller wrote it
        raise ValidationError(field, value, e.expected) from None
    return dt


def _check_wall_time(field: str, value: Any, dt: datetime) -> None:
    """A local text in the hour a daylight-saving change repeats or skips names no single
    instant: refused, never guessed."""
    try:
        first, second = dt.replace(fold=0).utcoffset(), dt.replace(fold=1).utcoffset()
    except (ValueError, TypeError):
        return  # check_aware reports a tzinfo that gives no offset
    if first == second or first is None or second is None:
        return
    if first > second:  # the clocks went back: the wall time is shown twice
        offsets = " or ".join(_offset_text(o) for o in (first, second))
        raise ValidationError(
            field,
            value,
            f"a wall time shown once in {dt.tzinfo}: clocks go back then and it happens "
            f"twice, so write its UTC offset ({offsets})",
        )
    raise ValidationError(field, value, _SKIPPED.format(zone=dt.tzinfo))


def _offset_text(offset: timedelta) -> str:
    minutes = offset // timedelta(minutes=1)
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


def freeze_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if value is None:
        return MappingProxyType({})
    if isinstance(value, MappingProxyType):
        return value
    if not isinstance(value, Mapping):
        raise ValidationError("extra", value, "a mapping")
    return MappingProxyType(dict(value))
