"""The rated columns, back into the caller's kind of table (private)."""

from __future__ import annotations

from typing import Any, cast

import attrs
import numpy as np
import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
import pyarrow.compute as pc  # type: ignore[import-untyped]  # (same)

from cdrrating._table_plan import TablePlan
from cdrrating.errors import ValidationError

NDArray = Any

OUTPUT_COLUMNS = (
    "cost_micros",
    "currency",
    "billed_seconds",
    "status",
    "reason",
    "prefix",
    "error",
)

_STATUS = ("RATED", "UNANSWERED", "UNRATED", "DIRECTION_NOT_RATED", "ERROR")
_RATED, _UNANSWERED, _UNRATED, _NOT_RATED, _ERROR = range(5)
_REASON = ("NO_RATE", "NO_PLAN", "INVALID_NUMBER")
_NO_RATE, _NO_PLAN, _INVALID = range(3)


def _from_arrow(kind: str, data: Any, out: pa.Table) -> Any:
    names = set(out.column_names)
    if kind == "pandas":
        frame = cast(pd.DataFrame, data)
        kept = frame.drop(columns=[c for c in frame.columns if c in names])
        mapping = {pa.int64(): pd.Int64Dtype()}
        converted = out.to_pandas(types_mapper=mapping.get)
        return kept.assign(**{name: converted[name].array for name in out.column_names})
    if kind == "polars":
        import polars as pl  # noqa: PLC0415  # optional: imported only for a polars input

        frame = data.drop([c for c in data.columns if c in names])
        return pl.concat([frame, cast(pl.DataFrame, pl.from_arrow(out))], how="horizontal")
    table: pa.Table = data if kind == "arrow" else pa.Table.from_batches([data])
    table = table.drop_columns([c for c in table.column_names if c in names])
    for name in out.column_names:
        table = table.append_column(name, out[name])
    if kind == "arrow":
        return table
    return (
        table.combine_chunks().to_batches(max_chunksize=max(table.num_rows, 1))[0]
        if table.num_rows
        else pa.RecordBatch.from_pylist([], schema=table.schema)
    )


@attrs.define
class _Result:
    n: int
    status: NDArray
    reason: NDArray
    cost: NDArray
    cost_null: NDArray
    billed: NDArray
    currency: NDArray  # int32 into currencies, -1 null
    currencies: list[str]
    row_plan: NDArray  # int32 into plans, -1: no rate
    row_rate: NDArray  # int32 rate id in that plan's table form
    plans: list[TablePlan]
    error_rows: NDArray
    error_details: list[tuple[str, Any, str]]

    def _labels(self, codes_of: str, values_of: str) -> pa.DictionaryArray:
        """The winning rate's prefix (or destination) per row, as a dictionary holding
        only the values used: a plan's whole deck in every output would cost each call
        (and each Spark or Arrow batch) its size."""
        codes = np.full(self.n, -1, np.int64)
        arrays: list[pa.Array] = []
        offset = 0
        for k, table in enumerate(self.plans):
            mine = np.flatnonzero(self.row_plan == k)
            codes[mine] = getattr(table, codes_of)[self.row_rate[mine]] + offset
            values = table.labels(values_of)
            arrays.append(values)
            offset += len(values)
        used = codes >= 0
        if not used.any():
            return _dictionary(codes, pa.array([""], pa.string()))
        if used.sum() * 16 < offset:  # few rows: sort them, do not touch the whole deck
            kept, inverse = np.unique(codes[used], return_inverse=True)
            codes[used] = inverse.reshape(-1)
        else:
            present = np.zeros(offset, bool)
            present[codes[used]] = True
            kept = np.flatnonzero(present)
            codes[used] = (np.cumsum(present) - 1)[codes[used]]
        joined = arrays[0] if len(arrays) == 1 else pa.concat_arrays(arrays)
        dictionary = joined.take(pa.array(kept))
        if len(arrays) > 1 or len(self.plans[0].lookups) > 1:
            # Plans, or a plan's directions, may share a value: one entry each.
            unique = pc.unique(dictionary)
            again = np.asarray(pc.index_in(dictionary, unique).to_numpy(), np.int64)
            codes[used] = again[codes[used]]
            dictionary = unique
        return _dictionary(codes, dictionary)

    def to_arrow(self, *, destination: bool = False) -> pa.Table:
        status = _dictionary(self.status, pa.array(_STATUS, pa.string()))
        reason = _dictionary(self.reason, pa.array(_REASON, pa.string()))
        currency = _dictionary(self.currency, pa.array(self.currencies or [""], pa.string()))
        distinct: dict[str, int] = {}
        error_codes = np.full(self.n, -1, np.int32)
        for row, detail in zip(self.error_rows.tolist(), self.error_details, strict=True):
            error_codes[row] = distinct.setdefault(str(ValidationError(*detail)), len(distinct))
        error = _dictionary(error_codes, pa.array(list(distinct) or [""], pa.string()))
        bad = self.status == _ERROR
        columns = {
            "cost_micros": pa.array(self.cost, pa.int64(), mask=self.cost_null),
            "currency": currency,
            "billed_seconds": pa.array(self.billed, pa.int64(), mask=bad),
            "status": status,
            "reason": reason,
            "prefix": self._labels("prefix_code", "prefix_values"),
        }
        if destination:
            columns["destination"] = self._labels("destination_code", "destination_values")
        columns["error"] = error
        return pa.table(columns)


def _dictionary(codes: NDArray, dictionary: pa.Array) -> pa.DictionaryArray:
    """A dictionary-encoded string column from int codes (-1 is null)."""
    indices = pa.array(codes.astype(np.int32, copy=False), pa.int32(), mask=codes < 0)
    return pa.DictionaryArray.from_arrays(indices, dictionary)
