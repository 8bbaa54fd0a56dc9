"""Dotted paths into stored JSON: what a path may be, what it reads, and how values of
different JSON types compare (private).

One meaning for every adapter. The memory adapter reads paths with :func:`read`; the SQL
adapter builds each dialect's JSON path from the validated segments only and binds it as
a parameter, never as statement text.

Typed comparison ("type bracketing", as in MongoDB): a JSON value has a class, one of
``null`` (the key is missing, or holds null), ``number`` (int or float, compared as
numbers: ``1 == 1.0``), ``string`` (compared by code point), ``bool`` (``false < true``)
or ``other`` (an object or an array). An operand of one class matches only values of the
same class: ``{"$gt": 5}`` never matches the string ``"7"``, ``{"$eq": 1}`` never matches
``true``. ``$ne``/``$nin`` match what the positive operator does not, so values of
another class, and missing ones, match them. Sorting by a path orders the classes
``null < number < string < bool < other`` and values within a class; objects and arrays
tie with each other (the id breaks ties).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from cdrrating.errors import ValidationError

#: A path segment: an identifier. Nothing else can reach SQL text, and every dialect's
#: path syntax spells such a segment without quoting.
SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
MAX_DEPTH = 16

_BIGINT_MAX = 2**63 - 1  # operands are bound as SQL integers

# The class ranks, in sort order.
NULL, NUMBER, STRING, BOOL, OTHER = 0, 1, 2, 3, 4


def check_segments(name: str, segments: list[str] | tuple[str, ...], where: str) -> tuple[str, ...]:
    """Validate the segments of a dotted path ``name`` (named ``where`` in errors)."""
    if not segments or len(segments) > MAX_DEPTH:
        raise ValidationError(
            where, name, f"a dotted path of 1 to {MAX_DEPTH} keys after the field name"
        )
    for segment in segments:
        if not isinstance(segment, str) or SEGMENT.match(segment) is None:
            raise ValidationError(
                where,
                name,
                "a dotted path whose keys are identifiers (letters, digits and '_', not "
                f"starting with a digit, at most 64 characters); {segment!r} is not",
            )
    return tuple(segments)


@functools.lru_cache(maxsize=4096)
def _load(text: str) -> Any:
    # Rows keep JSON as text; a scan reads the same row's text for every path node.
    return json.loads(text)


class JsonText(str):
    """JSON text that keeps what it parses to: the in-memory adapter's rows hold their
    JSON columns so, and a scan parses each row's text once, not once per query."""

    @functools.cached_property
    def parsed(self) -> Any:
        return json.loads(self)


def read(text: str | None, path: tuple[str, ...]) -> Any:
    """The value at ``path`` in the JSON object ``text``; None when a key is missing, a
    step meets something other than an object, or the value is null."""
    if text is None:
        return None
    value = text.parsed if isinstance(text, JsonText) else _load(text)
    for segment in path:
        if not isinstance(value, dict):
            return None
        value = value.get(segment)
    return value


def value_class(value: Any) -> int:
    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int | float):
        return NUMBER
    if isinstance(value, str):
        return STRING
    return OTHER


def sort_key(value: Any) -> tuple[int, int | float, str]:
    """(class rank, number, text): numbers in the second place (booleans as 0/1), text
    in the third, zero and "" elsewhere, so that keys of any two rows compare."""
    rank = value_class(value)
    if rank == NUMBER:
        return rank, value, ""
    if rank == BOOL:
        return rank, int(value), ""
    if rank == STRING:
        return rank, 0, value
    return rank, 0, ""


def operand(where: str, value: Any, *, allow_none: bool) -> Any:
    """A filter operand for a JSON path: null (only where allowed), a bool, an int that
    fits 64 bits, a finite float or text."""
    if value is None:
        if allow_none:
            return None
        raise ValidationError(where, value, "a value (None only with $eq, $ne, $in, $nin)")
    if isinstance(value, bool | str):
        if isinstance(value, str):
            _check_operand_text(where, value)
        return value
    if isinstance(value, int):
        if not -_BIGINT_MAX - 1 <= value <= _BIGINT_MAX:
            raise ValidationError(where, value, "an int that fits 64 bits")
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise ValidationError(
        where,
        value,
        "a JSON scalar: None, true/false, an int, a finite float or a str "
        "(objects and arrays are not compared)",
    )


def _check_operand_text(where: str, value: str) -> None:
    if "\x00" in value:
        raise ValidationError(where, value, "text without NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(where, value, "valid Unicode text (no lone surrogates)") from None


def same(value: Any, arg: Any) -> bool:
    """Equality within a class (``1 == 1.0``; ``1`` is not ``true``)."""
    return value_class(value) == value_class(arg) and value == arg


def project(document: Mapping[str, Any], name: str) -> Any:
    """The value a dotted ``name`` reads from a mapping (None if missing)."""
    value: Any = document
    for segment in name.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(segment)
    return value


def nest(out: dict[str, Any], name: str, value: Any) -> None:
    """Set ``out[a][b][c] = value`` for ``name`` ``"a.b.c"``, making the levels."""
    *heads, last = name.split(".")
    level = out
    for head in heads:
        nxt = level.get(head)
        if not isinstance(nxt, dict):
            nxt = level[head] = {}
        level = nxt
    level[last] = value
