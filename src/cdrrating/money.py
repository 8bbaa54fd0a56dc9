"""Money as integer micro-units: exact conversion, formatting and rounding.

One currency unit is 1,000,000 micros, so ``0.0125`` per minute is ``12_500``. Floats
are refused everywhere: a binary float cannot hold most decimal prices exactly, and a
rating library that starts from an inexact number cannot promise an exact cost.
"""

from __future__ import annotations

import enum
import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from cdrrating.errors import ValidationError

__all__ = [
    "MICROS_PER_UNIT",
    "Rounding",
    "format_micros",
    "round_micros",
    "to_micros",
]

MICROS_PER_UNIT = 1_000_000

_DECIMAL_TEXT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


class Rounding(enum.StrEnum):
    """How an exact amount becomes a multiple of the quantum."""

    UP = "up"  # ceiling: never bill less than the exact amount
    DOWN = "down"  # floor
    HALF_UP = "half_up"  # nearest, ties away from zero
    HALF_EVEN = "half_even"  # nearest, ties to the even multiple (banker's rounding)

    @classmethod
    def parse(cls, value: Rounding | str, field: str = "rounding") -> Rounding:
        if isinstance(value, Rounding):
            return value
        if isinstance(value, str):
            try:
                return cls(value.strip().lower().replace("-", "_"))
            except ValueError:
                pass
        raise ValidationError(field, value, "one of " + ", ".join(m.value for m in cls))


def round_micros(
    value: Fraction | Decimal | int,
    *,
    quantum: int = 1,
    mode: Rounding | str = Rounding.UP,
) -> int:
    """Round an exact amount of micros to a multiple of ``quantum`` with a named mode."""
    if not isinstance(quantum, int) or isinstance(quantum, bool) or quantum < 1:
        raise ValidationError("quantum", quantum, "an int >= 1 (micros)")
    if isinstance(value, bool) or not isinstance(value, Fraction | int | Decimal):
        raise ValidationError(
            "value", value, "an exact amount of micros: int, Fraction or Decimal, not a float"
        )
    value = Fraction(value)
    return (
        _round_ratio(value.numerator, value.denominator * quantum, Rounding.parse(mode)) * quantum
    )


def _round_ratio(num: int, den: int, mode: Rounding) -> int:
    """Round num/den (den > 0) to an integer. Integer-only: this sits on the rating hot path."""
    q, r = divmod(num, den)  # floor division: 0 <= r < den
    if r == 0 or mode is Rounding.DOWN:
        return q
    if mode is Rounding.UP:
        return q + 1
    twice = 2 * r
    if twice > den:
        return q + 1
    if twice < den:
        return q
    if mode is Rounding.HALF_UP:
        return q + 1 if q >= 0 else q  # a tie rounds away from zero
    return q if q % 2 == 0 else q + 1


def to_micros(
    value: Decimal | str | int,
    *,
    decimal_separator: str = ".",
    rounding: Rounding | str | None = None,
    field: str = "amount",
) -> int:
    """Convert a decimal amount in currency units to micros, exactly.

    ``int`` and ``Decimal`` values and decimal strings (``"0.0125"``, or ``"0,0125"`` with
    ``decimal_separator=","``) are accepted. A value with more than six decimal places is
    refused unless ``rounding`` names a mode. ``field`` names the value in errors.
    """
    if isinstance(value, bool):
        raise ValidationError(field, value, "a decimal amount, not a bool")
    if isinstance(value, float):
        raise ValidationError(
            field,
            value,
            f"an exact decimal: pass Decimal({str(value)!r}) or the string {str(value)!r}, "
            "not a float (floats cannot hold most prices exactly)",
        )
    if isinstance(value, int):
        return value * MICROS_PER_UNIT
    if isinstance(value, str):
        dec = _parse_decimal_text(value, decimal_separator, field)
    elif isinstance(value, Decimal):
        dec = value
    else:
        raise ValidationError(field, value, "a Decimal, a decimal string or an int")
    if not dec.is_finite():
        raise ValidationError(field, value, "a finite decimal amount")
    exact = Fraction(dec) * MICROS_PER_UNIT
    if exact.denominator == 1:
        return int(exact)
    if rounding is None:
        raise ValidationError(
            field, value, "at most 6 decimal places (or name a rounding mode to round to a micro)"
        )
    return round_micros(exact, mode=rounding)


def _parse_decimal_text(text: str, decimal_separator: str, field: str) -> Decimal:
    if decimal_separator not in (".", ","):
        raise ValidationError("decimal_separator", decimal_separator, "'.' or ','")
    cleaned = text.strip()
    if decimal_separator == ",":
        if "." in cleaned:
            raise ValidationError(
                field, text, "a decimal with ',' as the separator (a '.' is ambiguous here)"
            )
        cleaned = cleaned.replace(",", ".")
    if not _DECIMAL_TEXT.fullmatch(cleaned):
        hint = (
            " (use decimal_separator=',' for a decimal comma)"
            if decimal_separator == "." and "," in cleaned
            else ""
        )
        raise ValidationError(field, text, "a decimal number such as '0.0125'" + hint)
    try:
        return Decimal(cleaned)
    except InvalidOperation:  # pragma: no cover - the pattern above admits only valid text
        raise ValidationError(field, text, "a decimal number") from None


def format_micros(micros: int, currency: str | None = None, *, places: int | None = None) -> str:
    """Format micros as a decimal string: ``format_micros(12_500, "EUR") == "0.0125 EUR"``.

    With ``places=None`` the shortest exact form with at least two decimals is used;
    with ``places=N`` exactly N decimals (N <= 6, since micros have six), so no digit is lost.
    """
    if not isinstance(micros, int) or isinstance(micros, bool):
        raise ValidationError("micros", micros, "an int of micro-units")
    if places is not None and not 0 <= places <= 6:
        raise ValidationError("places", places, "an int from 0 to 6, or None")
    sign = "-" if micros < 0 else ""
    units, frac = divmod(abs(micros), MICROS_PER_UNIT)
    digits = f"{frac:06d}"
    if places is None:
        digits = digits.rstrip("0").ljust(2, "0")
    else:
        kept, dropped = digits[:places], digits[places:]
        if dropped.strip("0"):
            raise ValidationError(
                "places", places, f"enough places to show {micros} micros without loss"
            )
        digits = kept
    text = f"{sign}{units}.{digits}" if digits else f"{sign}{units}"
    return f"{text} {currency}" if currency else text
