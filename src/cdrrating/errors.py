"""The library's exception types.

Every error a caller can provoke with bad input is a :class:`ValidationError`, which is
a :class:`ValueError`, so code that already catches ``ValueError`` keeps working.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CdrRatingError",
    "Conflict",
    "NotFound",
    "PlanError",
    "StorageError",
    "ValidationError",
]


class CdrRatingError(Exception):
    """Base class of every exception raised by cdrrating."""


class ValidationError(CdrRatingError, ValueError):
    """A value was refused: the message names the field, the value and what was expected.

    ``field``, ``value`` and ``expected`` are kept as attributes so that batch reports
    and API handlers can show them without parsing the message.
    """

    def __init__(self, field: str, value: Any, expected: str) -> None:
        self.field = field
        self.value = value
        self.expected = expected
        super().__init__(f"{field}: got {self._describe(value)}, expected {expected}")

    @staticmethod
    def _describe(value: Any) -> str:
        # Long values (a whole CSV row) are cut so a message stays one readable line.
        return _short_repr(value)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keeps the error picklable (multiprocessing workers re-raise it in the parent).
        return (type(self), (self.field, self.value, self.expected))


class PlanError(ValidationError):
    """A rate plan cannot be built, e.g. two rates would be equally good for one call."""

    @staticmethod
    def _describe(value: Any) -> str:
        # The value names the rates in conflict: cutting it would hide one of them.
        return str(value)


class StorageError(CdrRatingError):
    """The database could not do what was asked: unreachable, out of space, or still
    deadlocked after the retries. The driver's own exception is ``__cause__``; nothing
    of the failed operation was written."""


class NotFound(CdrRatingError, LookupError):
    """A record asked for by its id does not exist."""


class Conflict(CdrRatingError):
    """A write would break a uniqueness rule (e.g. a call_id that is already stored)."""


def _short_repr(value: Any, limit: int = 80) -> str:
    # Describing a bad value must not fail in its turn: Python refuses to write an int of
    # more than 4,300 digits, and a deeply nested or hostile object may not repr at all.
    if isinstance(value, int) and value.bit_length() > 256:
        digits = int(value.bit_length() * 0.30103) + 1
        return f"{'a negative' if value < 0 else 'an'} integer of about {digits:,} digits"
    try:
        text = repr(value)
    except Exception:
        return f"<a {type(value).__name__} that cannot be shown>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
