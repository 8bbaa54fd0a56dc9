"""The options of ``rate_table`` and ``rate_batches``, checked once (private)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from cdrrating.errors import ValidationError
from cdrrating.frame._output import ALL_OUTPUT_COLUMNS, OUTPUT_COLUMNS, STRINGS


@attrs.frozen
class Options:
    errors: str
    assume_tz: str | None
    columns: tuple[str, ...]  # the added columns, in ALL_OUTPUT_COLUMNS order
    strings: str
    threads: int


def output_columns(columns: Any, destination: Any) -> tuple[str, ...]:
    """The added columns that ``columns=`` and ``destination=`` ask for, in order."""
    if not isinstance(destination, bool):
        raise ValidationError("destination", destination, "True or False")
    valid = ", ".join(repr(name) for name in ALL_OUTPUT_COLUMNS)
    if columns is None:
        chosen = set(OUTPUT_COLUMNS)
    elif isinstance(columns, str | bytes | Mapping) or not isinstance(columns, Iterable):
        # A lone name is most likely meant as a list of one; iterating it would not be.
        raise ValidationError(
            "columns", columns, f"a sequence of output column names out of {valid}"
        )
    else:
        names = list(columns)
        unknown = [name for name in names if name not in ALL_OUTPUT_COLUMNS]
        if unknown:
            raise ValidationError(
                "columns",
                unknown[0],
                f"output column names out of {valid} (input columns are always passed through)",
            )
        chosen = set(names)
    if destination:
        chosen.add("destination")
    return tuple(name for name in ALL_OUTPUT_COLUMNS if name in chosen)


def options(
    *,
    errors: Any,
    assume_tz: Any,
    destination: Any,
    columns: Any,
    strings: Any,
    threads: Any,
) -> Options:
    if errors not in ("report", "raise"):
        raise ValidationError("errors", errors, "'report' or 'raise'")
    if assume_tz is not None:
        try:
            ZoneInfo(assume_tz)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ValidationError(
                "assume_tz", assume_tz, "an IANA time zone name such as 'Europe/Berlin'"
            ) from None
    check_strings(strings)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValidationError("threads", threads, "an int >= 1 (the threads to rate on)")
    return Options(errors, assume_tz, output_columns(columns, destination), strings, threads)


def check_strings(strings: Any) -> None:
    if not isinstance(strings, str) or strings not in STRINGS:
        raise ValidationError(
            "strings",
            strings,
            " or ".join(repr(s) for s in STRINGS) + " (how text columns come out)",
        )
