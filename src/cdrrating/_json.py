"""JSON text without binary floats: one rule for every writer of JSON (private)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any


def exact_default(value: Any) -> Any:
    """``json.dumps(default=...)``: a ``Decimal`` as its exact text (a float would round
    it), a date or datetime as ISO 8601, a read-only mapping as an object; anything else
    is refused, as ``json`` does."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):  # a frozen mapping (MappingProxyType) of a record
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
