"""Batches: the charges of many CDRs in input order, with every bad record reported."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from cdrrating import _html
from cdrrating.cdr import CDR
from cdrrating.charge import Charge
from cdrrating.errors import ValidationError
from cdrrating.money import format_micros

__all__ = ["BatchResult", "CostChange", "DestinationTotal", "RowError"]

_BATCH_COLUMNS = (
    "position",
    "call_id",
    "status",
    "reason",
    "cost_micros",
    "currency",
    "billed_seconds",
    "prefix",
    "error",
)


@attrs.frozen
class RowError:
    """A record that could not be rated: its position in the input and why."""

    position: int
    error: str
    field: str | None = None
    record: Any = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class DestinationTotal:
    calls: int = 0
    answered: int = 0
    billed_seconds: int = 0
    cost_micros: int = 0


@attrs.frozen
class CostChange:
    """One CDR whose charge differs between two ratings (re-rating)."""

    position: int
    call_id: str
    before_micros: int | None
    after_micros: int | None
    before_status: str | None
    after_status: str

    @property
    def delta_micros(self) -> int | None:
        if self.before_micros is None or self.after_micros is None:
            return None
        return self.after_micros - self.before_micros


class BatchResult:
    """Charges of a batch in input order, with counts, totals and every bad record.

    ``charges[i]`` belongs to the i-th input record; it is None exactly when that record
    is in ``errors`` (with its position and reason). Nothing is dropped.
    """

    def __init__(self) -> None:
        self.charges: list[Charge | None] = []
        self.errors: list[RowError] = []
        self.by_status: Counter[str] = Counter()
        self.by_reason: Counter[str] = Counter()
        self.totals: dict[str, int] = {}
        self.by_destination: dict[tuple[str, str], DestinationTotal] = {}

    def _add(self, charge: Charge) -> None:
        self.charges.append(charge)
        self.by_status[charge.status.value] += 1
        if charge.reason is not None:
            self.by_reason[charge.reason.value] += 1
        currency = charge.currency or ""
        if charge.cost_micros is not None and charge.currency is not None:
            self.totals[currency] = self.totals.get(currency, 0) + charge.cost_micros
        key = (currency, charge.destination)
        old = self.by_destination.get(key) or DestinationTotal()
        self.by_destination[key] = DestinationTotal(
            old.calls + 1,
            old.answered + (charge.cdr.is_billable),
            old.billed_seconds + charge.billed_seconds,
            old.cost_micros + (charge.cost_micros or 0),
        )

    def _fail(self, position: int, error: Exception, record: Any) -> None:
        self.charges.append(None)
        self.errors.append(RowError(position, str(error), getattr(error, "field", None), record))

    def __len__(self) -> int:
        return len(self.charges)

    def __iter__(self) -> Iterator[Charge | None]:
        return iter(self.charges)

    @property
    def ok(self) -> bool:
        """True when every record was rated or reported as unanswered/not rated (no errors)."""
        return not self.errors

    def rated_cdrs(self) -> list[CDR]:
        """The input CDRs with ``cost_micros`` and ``currency`` set (bad records left out:
        they are in ``errors``)."""
        return [c.cdr.with_charge(c) for c in self.charges if c is not None]

    def changes(self, previous: BatchResult | None = None) -> list[CostChange]:
        """CDRs whose cost changed: against ``previous`` (the same records rated before),
        or else against the ``cost_micros`` each input CDR already carried."""
        if previous is not None and len(previous) != len(self):
            raise ValidationError(
                "previous", f"{len(previous)} records", f"the same {len(self)} records, in order"
            )
        out: list[CostChange] = []
        for i, charge in enumerate(self.charges):
            if charge is None:
                continue
            if previous is not None:
                before = previous.charges[i]
                before_cost = before.cost_micros if before is not None else None
                before_status = before.status.value if before is not None else None
            else:
                before_cost, before_status = charge.cdr.cost_micros, None
            if before_cost != charge.cost_micros:
                out.append(
                    CostChange(
                        i,
                        charge.call_id,
                        before_cost,
                        charge.cost_micros,
                        before_status,
                        charge.status.value,
                    )
                )
        return out

    def summary(self) -> str:
        parts = [f"{len(self)} records"]
        parts += [f"{k} {v}" for k, v in sorted(self.by_status.items())]
        if self.errors:
            parts.append(f"errors {len(self.errors)}")
        totals = ", ".join(format_micros(v, k) for k, v in sorted(self.totals.items()))
        return "; ".join(parts) + (f"; total {totals}" if totals else "")

    def __repr__(self) -> str:
        return f"<BatchResult {self.summary()}>"

    def _table_columns(self) -> dict[str, list[Any]]:
        """One row per input record, in input order (bad records included)."""
        errors = {e.position: e for e in self.errors}
        columns: dict[str, list[Any]] = {name: [] for name in _BATCH_COLUMNS}
        for position, charge in enumerate(self.charges):
            columns["position"].append(position)
            if charge is None:
                error = errors.get(position)
                record = error.record if error is not None else None
                if isinstance(record, CDR):
                    call_id: Any = record.call_id
                elif isinstance(record, Mapping) and isinstance(record.get("call_id"), str):
                    call_id = record["call_id"]
                else:
                    call_id = None
                row: tuple[Any, ...] = (
                    call_id,
                    "ERROR",
                    None,
                    None,
                    None,
                    None,
                    None,
                    error.error if error is not None else None,
                )
            else:
                row = (
                    charge.call_id,
                    charge.status.value,
                    charge.reason.value if charge.reason is not None else None,
                    charge.cost_micros,
                    charge.currency,
                    charge.billed_seconds,
                    charge.prefix,
                    None,
                )
            for name, value in zip(_BATCH_COLUMNS[1:], row, strict=True):
                columns[name].append(value)
        return columns

    def to_arrow(self) -> Any:
        """A ``pyarrow.Table`` with one row per input record: position, call_id, status
        (ERROR for a bad record), reason, cost_micros, currency, billed_seconds, prefix,
        error. Needs pyarrow (``pip install 'cdrrating[frame]'``)."""
        try:
            import pyarrow as pa  # type: ignore[import-untyped]  # noqa: PLC0415  # lazy; untyped
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError("to_arrow() needs pyarrow: pip install 'cdrrating[frame]'") from error
        columns = self._table_columns()
        types = {"position": pa.int64(), "cost_micros": pa.int64(), "billed_seconds": pa.int64()}
        return pa.table(
            {name: pa.array(v, types.get(name, pa.string())) for name, v in columns.items()}
        )

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame`` with the columns of :meth:`to_arrow`; cost_micros and
        billed_seconds are nullable ``Int64``. Needs pandas."""
        try:
            import pandas as pd  # noqa: PLC0415  # lazy: an optional dependency
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError("to_pandas() needs pandas: pip install 'cdrrating[frame]'") from error
        columns = self._table_columns()
        data: dict[str, Any] = {}
        for name, values in columns.items():
            if name == "position":
                data[name] = pd.array(values, dtype="int64")
            elif name in ("cost_micros", "billed_seconds"):
                data[name] = pd.array(values, dtype="Int64")
            else:
                data[name] = pd.array(values, dtype="string")
        return pd.DataFrame(data)

    def _repr_html_(self) -> str:
        """Summary, counts and the costliest destinations, for notebooks."""
        destinations = sorted(self.by_destination.items(), key=lambda kv: -kv[1].cost_micros)
        parts = [
            _html.table(
                ["status", "calls"], sorted(self.by_status.items()), caption=self.summary()
            ),
            _html.table(
                ["destination", "calls", "answered", "billed min", "cost"],
                (
                    (
                        dest or "(no rate)",
                        t.calls,
                        t.answered,
                        f"{t.billed_seconds / 60:.2f}",
                        format_micros(t.cost_micros, cur or None),
                    )
                    for (cur, dest), t in destinations
                ),
                total=len(destinations),
                caption="costliest destinations",
            ),
        ]
        if self.errors:
            parts.append(
                _html.table(
                    ["position", "field", "error"],
                    ((e.position, e.field or "", e.error) for e in self.errors),
                    total=len(self.errors),
                    caption="rejected records",
                )
            )
        return "".join(parts)
