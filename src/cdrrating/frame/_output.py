"""The rated columns, back into the caller's kind of table (private)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
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

#: Every column ``rate_table`` can add, in the order it adds them.
ALL_OUTPUT_COLUMNS = (*OUTPUT_COLUMNS[:-1], "destination", OUTPUT_COLUMNS[-1])
#: How the text columns come out: dictionary-encoded, or plain strings.
STRINGS = ("dictionary", "plain")
_TEXT = frozenset({"currency", "status", "reason", "prefix", "destination", "error"})

_STATUS = ("RATED", "UNANSWERED", "UNRATED", "DIRECTION_NOT_RATED", "ERROR")
_RATED, _UNANSWERED, _UNRATED, _NOT_RATED, _ERROR = range(5)
_REASON = ("NO_RATE", "NO_PLAN", "INVALID_NUMBER")
_NO_RATE, _NO_PLAN, _INVALID = range(3)


def output_fields(columns: Sequence[str], strings: str) -> list[pa.Field]:
    """The Arrow fields of the added columns (named in ``ALL_OUTPUT_COLUMNS`` order)."""
    text = pa.dictionary(pa.int32(), pa.string()) if strings == "dictionary" else pa.string()
    return [pa.field(name, text if name in _TEXT else pa.int64()) for name in columns]


def _from_arrow(kind: str, data: Any, out: pa.Table) -> Any:
    if not out.num_columns:
        return data
    names = set(out.column_names)
    if kind == "pandas":
        frame = cast(pd.DataFrame, data)
        kept = frame.drop(columns=[c for c in frame.columns if c in names])
        # The others in one call: Arrow converts a table's text columns to pandas
        # strings without the detour through Python objects a lone column takes.
        other = [
            n for n in out.column_names if not pa.types.is_dictionary(out.schema.field(n).type)
        ]
        converted = out.select(other).to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
        return kept.assign(
            **{
                name: converted[name].array if name in converted else _categorical(out[name])
                for name in out.column_names
            }
        )
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


# Public pandas validates a categorical's categories by hashing every one of them: on
# a large deck ``prefix`` has about as many values as rows, and that check cost more
# than the rating. The dictionaries here are unique as built (each value once, in the
# order rows first use it), so the dtype is made without the check where pandas has
# its fast path.
_CATEGORIES = getattr(pd.CategoricalDtype, "_from_fastpath", pd.CategoricalDtype)


def _categorical(column: pa.ChunkedArray) -> pd.Categorical:
    """A dictionary column as a pandas categorical whose categories are ``str``, also
    when there are none (Arrow makes those ``object``; Dask joins partitions'
    categories only when their dtypes agree)."""
    array = (
        column.chunk(0) if column.num_chunks == 1 else column.unify_dictionaries().combine_chunks()
    )
    categories = pd.Index(array.dictionary.to_pandas(), copy=False)
    codes = pc.fill_null(array.indices, -1).to_numpy(zero_copy_only=False)
    return pd.Categorical.from_codes(codes, dtype=_CATEGORIES(categories, False), validate=False)


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

    @classmethod
    def concat(cls, parts: Sequence[_Result]) -> _Result:
        """The results of consecutive slices of a table as one result of the whole
        (each slice lists its own plans and currencies: their codes are remapped)."""
        plans: list[TablePlan] = []
        currencies: list[str] = []
        row_plan: list[NDArray] = []
        currency: list[NDArray] = []
        error_rows: list[NDArray] = []
        start = 0
        for part in parts:
            slots = [next((k for k, p in enumerate(plans) if p is t), -1) for t in part.plans]
            for k, table in enumerate(part.plans):
                if slots[k] < 0:
                    slots[k] = len(plans)
                    plans.append(table)
            # A trailing -1 maps the code -1 (no plan, no currency) to itself.
            row_plan.append(np.array([*slots, -1], np.int32)[part.row_plan])
            for code in part.currencies:
                if code not in currencies:
                    currencies.append(code)
            codes = [currencies.index(code) for code in part.currencies]
            currency.append(np.array([*codes, -1], np.int32)[part.currency])
            error_rows.append(part.error_rows + start)
            start += part.n

        def joined(name: str) -> NDArray:
            return np.concatenate([getattr(part, name) for part in parts])

        return cls(
            n=start,
            status=joined("status"),
            reason=joined("reason"),
            cost=joined("cost"),
            cost_null=joined("cost_null"),
            billed=joined("billed"),
            currency=np.concatenate(currency),
            currencies=currencies,
            row_plan=np.concatenate(row_plan),
            row_rate=joined("row_rate"),
            plans=plans,
            error_rows=np.concatenate(error_rows),
            error_details=[detail for part in parts for detail in part.error_details],
        )

    def _labels(self, codes_of: str, values_of: str) -> tuple[NDArray, pa.Array, bool]:
        """The winning rate's prefix (or destination) per row: codes (-1 null) into the
        plans' values joined, and whether a value may appear under two codes."""
        if len(self.plans) == 1 and self.n and int(self.row_plan.min()) >= 0:
            # Every row rated by the one plan: one gather, no mask.
            table = self.plans[0]
            if codes_of == "prefix_code" and table.prefix_is_rate:
                codes = self.row_rate  # (read only)
            else:
                codes = getattr(table, codes_of)[self.row_rate.astype(np.intp)]
            return codes, table.labels(values_of), len(table.lookups) > 1
        codes = np.full(self.n, -1, np.int32)
        arrays: list[pa.Array] = []
        offset = 0
        for k, table in enumerate(self.plans):
            mine = np.flatnonzero(self.row_plan == k)
            codes[mine] = getattr(table, codes_of)[self.row_rate[mine]] + offset
            values = table.labels(values_of)
            arrays.append(values)
            offset += len(values)
        if not arrays:
            return codes, pa.array([], pa.string()), False
        joined = arrays[0] if len(arrays) == 1 else pa.concat_arrays(arrays)
        # Plans, or a plan's directions, may share a value.
        return codes, joined, len(arrays) > 1 or len(self.plans[0].lookups) > 1

    def to_arrow(
        self, columns: Sequence[str] = OUTPUT_COLUMNS, strings: str = "dictionary"
    ) -> pa.Table:
        """The added columns named in ``columns`` (in ``ALL_OUTPUT_COLUMNS`` order)."""
        plain = strings == "plain"
        arrays: list[pa.Array] = []
        for name in columns:
            if name == "cost_micros":
                arrays.append(_ints(self.cost, self.cost_null))
            elif name == "billed_seconds":
                arrays.append(_ints(self.billed, self.status == _ERROR))
            elif name == "status":
                arrays.append(_text(self.status, _STATUS_VALUES, plain))
            elif name == "reason":
                arrays.append(_text(self.reason, _REASON_VALUES, plain))
            elif name == "currency":
                arrays.append(_text(self.currency, pa.array(self.currencies, pa.string()), plain))
            elif name == "error":
                distinct: dict[str, int] = {}
                codes = np.full(self.n, -1, np.int32)
                for row, detail in zip(self.error_rows.tolist(), self.error_details, strict=True):
                    codes[row] = distinct.setdefault(str(ValidationError(*detail)), len(distinct))
                arrays.append(_text(codes, pa.array(list(distinct), pa.string()), plain))
            else:
                of = "prefix" if name == "prefix" else "destination"
                codes, values, repeats = self._labels(f"{of}_code", f"{of}_values")
                arrays.append(_text(codes, values, plain, repeats=repeats))
        return pa.Table.from_arrays(arrays, schema=_schema(tuple(columns), strings))


@functools.lru_cache(maxsize=64)
def _schema(columns: tuple[str, ...], strings: str) -> pa.Schema:
    """The schema of the added columns (a cost of every call, or every batch, else)."""
    return pa.schema(output_fields(columns, strings))


def _ints(values: NDArray, null: NDArray) -> pa.Array:
    """An int64 column, null where ``null`` holds (no validity bitmap when none is)."""
    return pa.array(values, pa.int64(), mask=null if null.any() else None)


_STATUS_VALUES = pa.array(_STATUS, pa.string())
_REASON_VALUES = pa.array(_REASON, pa.string())
_FEW = 8  # values a text column may have for _text to find their first uses one by one
_SMALL = 64  # rows a text column may have for _text to encode them in Python


def _text(codes: NDArray, values: pa.Array, plain: bool, *, repeats: bool = False) -> pa.Array:
    """A text column from int codes into ``values`` (-1 is null).

    Dictionary-encoded, the dictionary holds only the values used, in the order rows
    first use them: a plan's whole deck in every output would cost each call (and each
    batch of a stream) its size, and the order makes the column a function of its rows
    alone, so rating slices and concatenating them (``unify_dictionaries``) gives the
    very same column as rating the whole."""
    if codes.size <= _SMALL and not plain:
        # A few rows (a stream's small batch, one call per CDR): a dict in Python costs
        # less than the dozen array calls below.
        seen: dict[int, int] = {}
        cells = [None if c < 0 else seen.setdefault(c, len(seen)) for c in codes.tolist()]
        indices = pa.array(cells, pa.int32())
        # (A compute call's dispatch costs more than reading a few scalars.)
        dictionary = pa.array([values[k].as_py() for k in seen], values.type)
        return _dictionary(indices, dictionary, repeats)
    null = codes < 0
    mask = null if null.any() else None
    if plain:
        return values.take(pa.array(codes, mask=mask))
    if mask is not None and null.all():  # (reason, error: null in most tables)
        return pa.DictionaryArray.from_arrays(pa.nulls(codes.size, pa.int32()), values[:0])
    if len(values) <= _FEW:
        # A handful of values (status, reason, currency): where each is first used.
        firsts = []
        for value in range(len(values) if codes.size else 0):
            equal = codes == value
            where = int(equal.argmax())
            if equal[where]:
                firsts.append((where, value))
        order = np.array([value for _where, value in sorted(firsts)], np.int64)
        if order.size == len(values) and (order == np.arange(order.size)).all():
            positions, dictionary = codes, values
        else:
            remap = np.zeros(len(values) + 1, np.int32)  # the last slot takes the -1 codes
            remap[order] = np.arange(order.size, dtype=np.int32)
            positions = remap.take(codes)
            dictionary = values.take(pa.array(order, pa.int64()))
    elif codes.size * 8 >= len(values):
        # Many rows: each value's first row by one pass over the codes (small
        # integers), no hashing (a tenth of factorize's time on a 300k-row table).
        # int32 throughout: the per-value arrays are read at random, and half the
        # bytes stay in cache.
        live = np.arange(codes.size, dtype=np.int32) if mask is None else np.flatnonzero(~null)
        used = codes if mask is None else codes[live]
        first = np.full(len(values), codes.size, np.int32)
        np.minimum.at(first, used, live)
        first_used = used[first[used] == live]  # in the order rows use them
        remap = np.zeros(len(values), np.int32)
        remap[first_used] = np.arange(first_used.size, dtype=np.int32)
        positions = remap[codes if mask is None else np.maximum(codes, 0)]  # nulls: masked
        dictionary = values.take(pa.array(first_used))
    else:
        # Hashing, in the order of first use (no sort: this is a column of every row).
        positions, first_used = pd.factorize(codes, sort=False)
        if mask is not None:
            at = int(np.flatnonzero(first_used < 0)[0])
            positions = positions - (positions > at)
            first_used = np.delete(first_used, at)
        dictionary = values.take(pa.array(first_used))
    indices = pa.array(positions.astype(np.int32, copy=False), pa.int32(), mask=mask)
    return _dictionary(indices, dictionary, repeats)


def _dictionary(indices: pa.Array, dictionary: pa.Array, repeats: bool) -> pa.Array:
    """The dictionary column; with ``repeats``, a value the dictionary holds twice (two
    plans, or two directions, share it) is kept once, at its first place."""
    if repeats and len(dictionary) > 1:
        unique = pc.unique(dictionary)
        if len(unique) < len(dictionary):
            indices = pc.index_in(dictionary, unique).take(indices)
            dictionary = unique
    return pa.DictionaryArray.from_arrays(indices, dictionary)
