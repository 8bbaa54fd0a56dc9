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

from cdrrating._enum import EnumParser
from cdrrating._rules import round_once
from cdrrating.errors import ValidationError

__all__ = [
    "MAX_AMOUNT_UNITS",
    "MAX_MICROS",
    "MICROS_PER_UNIT",
    "Rounding",
    "format_micros",
    "parse_decimal",
    "round_micros",
    "to_micros",
]

MICROS_PER_UNIT = 1_000_000

#: Amounts are refused from this many currency units on (either sign): far above any
#: real price or call cost, and it keeps every amount in micros inside a signed 64-bit
#: integer (the BIGINT columns of the SQL store), with room to add many of them.
MAX_AMOUNT_UNITS = 10**12
#: The largest amount in micros any input may name (just under 10**18).
MAX_MICROS = MAX_AMOUNT_UNITS * MICROS_PER_UNIT - 1

# Bounds that keep the work per value small whatever the input: a decimal text longer
# than this, with more significant digits, or with more decimal places is not a price.
_MAX_TEXT_LEN = 64
_MAX_DIGITS = 40
_MAX_PLACES = 30

# ASCII digits only: dialled numbers refuse other scripts' digits, and so do amounts.
_DECIMAL_TEXT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


class Rounding(enum.StrEnum):
    """How an exact amount becomes a multiple of the quantum."""

    UP = "up"  # ceiling: never bill less than the exact amount
    DOWN = "down"  # floor
    HALF_UP = "half_up"  # nearest, ties away from zero
    HALF_EVEN = "half_even"  # nearest, ties to the even multiple (banker's rounding)

    @classmethod
    def parse(cls, value: Rounding | str, field: str = "rounding") -> Rounding:
        return _PARSE_ROUNDING(value, field)


_PARSE_ROUNDING = EnumParser(Rounding)


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
    steps = round_once(value.numerator, value.denominator * quantum, Rounding.parse(mode))
    return int(steps) * quantum


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

    Limits, so that no input costs more than a glance: the amount must be below
    :data:`MAX_AMOUNT_UNITS` (10**12) in absolute value, have at most 40 significant
    digits and 30 decimal places, and a text at most 64 characters. Digits are ASCII
    ``0``-``9``; other scripts' digits are refused, as in dialled numbers.
    """
    mode = None if rounding is None else Rounding.parse(rounding)
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
        if not -MAX_AMOUNT_UNITS < value < MAX_AMOUNT_UNITS:
            raise ValidationError(field, value, _TOO_LARGE)
        return value * MICROS_PER_UNIT
    if isinstance(value, str):
        dec = parse_decimal(value, decimal_separator=decimal_separator, field=field)
    elif isinstance(value, Decimal):
        dec = value
    else:
        raise ValidationError(field, value, "a Decimal, a decimal string or an int")
    return _decimal_micros(dec, value, mode, field)


_TOO_LARGE = f"an amount below {MAX_AMOUNT_UNITS:,} in absolute value"


def _decimal_micros(dec: Decimal, shown: object, mode: Rounding | None, field: str) -> int:
    if not dec.is_finite():
        raise ValidationError(field, shown, "a finite decimal amount")
    if dec.is_zero():
        return 0  # whatever its exponent: 0E+999999999 is still nothing
    # Checked on the decimal's parts before any arithmetic: 1E+999999999 would otherwise
    # become a billion-digit integer.
    if dec.adjusted() >= 12:
        raise ValidationError(field, shown, _TOO_LARGE)
    digits, exponent = dec.as_tuple()[1:]
    assert isinstance(exponent, int)  # a finite decimal has an int exponent
    if len(digits) > _MAX_DIGITS:
        raise ValidationError(field, shown, f"at most {_MAX_DIGITS} significant digits")
    significant = len(digits)
    while digits[significant - 1] == 0:  # trailing zeros are no decimal places
        significant -= 1
    if exponent + len(digits) - significant < -_MAX_PLACES:
        raise ValidationError(field, shown, f"at most {_MAX_PLACES} decimal places")
    exact = Fraction(dec) * MICROS_PER_UNIT
    if exact.denominator == 1:
        micros = int(exact)
    elif mode is None:
        raise ValidationError(
            field, shown, "at most 6 decimal places (or name a rounding mode to round to a micro)"
        )
    else:
        micros = round_micros(exact, mode=mode)
    if not -MAX_MICROS <= micros <= MAX_MICROS:
        raise ValidationError(field, shown, _TOO_LARGE)
    return micros


def parse_decimal(text: str, *, decimal_separator: str = ".", field: str = "amount") -> Decimal:
    """Read decimal text exactly as :func:`to_micros` reads it (the same bounds and
    messages), as a ``Decimal`` in currency units: for callers that scale it first
    (a price per second that a deck writes, to be priced per minute)."""
    if decimal_separator not in (".", ","):
        raise ValidationError("decimal_separator", decimal_separator, "'.' or ','")
    cleaned = text.strip()
    if len(cleaned) > _MAX_TEXT_LEN:
        raise ValidationError(
            field, text, f"a decimal number of at most {_MAX_TEXT_LEN} characters"
        )
    if decimal_separator == ",":
        if "." in cleaned:
            raise ValidationError(
                field, text, "a decimal with ',' as the separator (a '.' is ambiguous here)"
            )
        cleaned = cleaned.replace(",", ".")
    if not _DECIMAL_TEXT.fullmatch(cleaned):
        # Said in words, not as a Python argument: a file user sets it with a CLI flag.
        hint = (
            " (the decimal separator is '.' here, not ',')"
            if decimal_separator == "." and "," in cleaned
            else ""
        )
        raise ValidationError(field, text, "a decimal number such as '0.0125'" + hint)
    try:
        return Decimal(cleaned)
    except InvalidOperation:  # the exponent alone is beyond what Decimal holds
        raise ValidationError(field, text, _TOO_LARGE) from None


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
