"""The error a reader raises when a whole input cannot be read (private module)."""

from __future__ import annotations

from typing import Any

from cdrrating.errors import ValidationError


class FormatError(ValidationError):
    """The input as a whole cannot be read: wrong header, wrong encoding, not JSON, ...

    Raised, never collected as a reject: reading stops. ``line`` is the 1-based line
    where the problem was found; the message starts with it. ``line`` 0 means before the
    first line (the input could not be opened).
    """

    def __init__(self, line: int, message: str, *, field: str = "file", value: Any = None) -> None:
        self.line = line
        self.message = message
        super().__init__(field, value, message)
        # ValidationError's "field: got X, expected Y" reads badly for file-level problems.
        self.args = (f"line {line}: {message}" if line > 0 else message,)

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.line, self.message, self.field, self.value))


def _rebuild(line: int, message: str, field: str, value: Any) -> FormatError:
    return FormatError(line, message, field=field, value=value)
