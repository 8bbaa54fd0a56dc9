"""Reading the library's string enums from outside data (private).

Every enum that callers may name in text (``Direction``, ``Disposition``, ``RateStatus``,
``Rounding``, ``BandPolicy``, ...) reads it through one :class:`EnumParser`, so that
``"No Answer"``, ``"no-answer"`` and ``"NO_ANSWER"`` mean the same in every field, and
a refused value always gets the same kind of message.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from cdrrating.errors import ValidationError

__all__ = ["EnumParser"]

E = TypeVar("E", bound=enum.StrEnum)

# No member value or alias is longer; a longer text is refused before it is normalised.
_MAX_NAME_LEN = 64


def _key(text: str) -> str:
    return text.strip().lower().replace(" ", "_").replace("-", "_")


class EnumParser(Generic[E]):
    """Reads an enum member from the member itself or from its value written loosely:
    case, spaces, ``-`` and ``_`` do not matter. ``aliases`` adds other accepted names."""

    def __init__(self, cls: type[E], aliases: Mapping[str, E] | None = None) -> None:
        self._cls = cls
        self._table: dict[str, E] = {_key(m.value): m for m in cls}
        for name, member in (aliases or {}).items():
            self._table[_key(name)] = member
        # The values as the enum writes them: case, spaces and "-" are forgiven anyway.
        self._expected = "one of " + ", ".join(m.value for m in cls)

    def __call__(self, value: Any, field: str) -> E:
        if isinstance(value, self._cls):
            return value
        if isinstance(value, str) and len(value) <= _MAX_NAME_LEN:
            found = self._table.get(_key(value))
            if found is not None:
                return found
        raise ValidationError(field, value, self._expected)
