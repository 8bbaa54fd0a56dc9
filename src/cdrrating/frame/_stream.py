"""Rating a stream of Arrow record batches, one batch at a time (private)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information

from cdrrating.errors import ValidationError
from cdrrating.frame._driver import output_schema_of, rate_arrow
from cdrrating.frame._engine import chains_of
from cdrrating.frame._options import Options, options
from cdrrating.frame._output import _from_arrow
from cdrrating.plan import RatePlan
from cdrrating.rating import Rater

_EXPECTED = (
    "a pyarrow RecordBatchReader, Table or RecordBatch, an object with __arrow_c_stream__ "
    "(a polars DataFrame, a DuckDB relation), or an iterable of RecordBatches or Tables"
)


def rate_batches(
    batches: Any,
    plan_or_rater: RatePlan | Sequence[RatePlan] | Rater | None,
    *,
    errors: Literal["report", "raise"] = "report",
    assume_tz: str | None = None,
    destination: bool = False,
    columns: Iterable[str] | None = None,
    strings: Literal["dictionary", "plain"] = "dictionary",
    threads: int = 1,
) -> Iterator[pa.RecordBatch]:
    """Rate a stream of CDR record batches lazily: one rated batch per input batch.

    ``batches`` is a pyarrow ``RecordBatchReader`` (DuckDB's ``fetch_record_batch()``,
    ``pyarrow.dataset``'s ``scanner().to_reader()``, an IPC stream), a pyarrow Table or
    RecordBatch, an object with ``__arrow_c_stream__`` (a polars DataFrame), or any
    iterable of RecordBatches or Tables (or of objects with ``__arrow_c_stream__``,
    such as the polars DataFrames of ``LazyFrame.collect_batches()``), a generator
    included. Each batch is read, rated and handed on before the next is asked for, so
    a stream of any length is rated in the memory of one batch.

    Each output batch is the input batch with the columns :func:`rate_table` adds,
    rated exactly as ``rate_table`` rates that batch, with the same options; every
    batch, an empty one or one of bad rows included, has the schema
    :func:`output_schema` gives for the stream's schema. Every batch must have the
    schema of the first (the reader's schema, for a reader).

    The options are checked at the call; the batches when they are read.
    ``errors="raise"`` raises on reaching a batch with a bad row, naming the row's
    0-based position in the whole stream (the batches before it have been handed on).
    ``threads=n`` rates each batch in n slices at once.
    """
    opts = options(
        errors=errors,
        assume_tz=assume_tz,
        destination=destination,
        columns=columns,
        strings=strings,
        threads=threads,
    )
    chains_of(plan_or_rater)  # a bad plan argument is refused at the call
    source, schema = _source(batches)
    return _rated(source, schema, plan_or_rater, opts)


def rate_reader(
    batches: Any,
    plan_or_rater: RatePlan | Sequence[RatePlan] | Rater | None,
    *,
    schema: pa.Schema | None = None,
    errors: Literal["report", "raise"] = "report",
    assume_tz: str | None = None,
    destination: bool = False,
    columns: Iterable[str] | None = None,
    strings: Literal["dictionary", "plain"] = "dictionary",
    threads: int = 1,
) -> pa.RecordBatchReader:
    """:func:`rate_batches` as a pyarrow ``RecordBatchReader``, for what reads one
    (DuckDB, ``pyarrow.dataset.write_dataset``, ``pyarrow.ipc``, polars ``from_arrow``).

    The reader's schema is :func:`output_schema` of the input's; it is still lazy.
    ``schema`` is the **input** schema: needed only when ``batches`` is a plain
    iterable that may hold no batch at all; otherwise it is taken from the reader or
    the first batch (which is then read at once).
    """
    opts = options(
        errors=errors,
        assume_tz=assume_tz,
        destination=destination,
        columns=columns,
        strings=strings,
        threads=threads,
    )
    chains_of(plan_or_rater)
    if schema is not None and not isinstance(schema, pa.Schema):
        raise ValidationError("schema", schema, "a pyarrow Schema (of the input batches)")
    source, known = _source(batches)
    if known is not None and schema is not None and not known.equals(schema):
        raise ValidationError(
            "schema", _describe(schema), f"the schema of the batches given ({_describe(known)})"
        )
    schema = known if known is not None else schema
    if schema is None:
        first = next(source, None)
        if first is None:
            raise ValidationError(
                "schema", None, "the input schema (schema=...) for a stream with no batch"
            )
        schema = _as_table(first, 0).schema
        source = itertools.chain([first], source)
    out = output_schema_of(schema, opts.columns, opts.strings)
    return pa.RecordBatchReader.from_batches(out, _rated(source, schema, plan_or_rater, opts))


def _source(batches: Any) -> tuple[Iterator[Any], pa.Schema | None]:
    """The items of a stream, and its schema when it is known before the first one."""
    if isinstance(batches, pa.RecordBatchReader):
        return iter(batches), batches.schema
    if isinstance(batches, pa.Table):
        return iter(batches.to_batches()), batches.schema
    if isinstance(batches, pa.RecordBatch):
        return iter([batches]), batches.schema
    if hasattr(batches, "__arrow_c_stream__"):
        reader = pa.RecordBatchReader.from_stream(batches)
        return iter(reader), reader.schema
    if isinstance(batches, Iterable) and not isinstance(batches, str | bytes | Mapping):
        return iter(batches), None
    raise ValidationError("batches", batches, _EXPECTED)


def _as_table(item: Any, position: int) -> pa.Table:
    if isinstance(item, pa.Table):
        return item
    if isinstance(item, pa.RecordBatch):
        return pa.Table.from_batches([item])
    if hasattr(item, "__arrow_c_stream__"):
        return pa.table(item)
    if hasattr(item, "__arrow_c_array__"):
        return pa.Table.from_batches([pa.record_batch(item)])
    raise ValidationError(
        "batches", f"an item of type {type(item).__name__} at row {position}", _EXPECTED
    )


def _describe(schema: pa.Schema) -> str:
    return "(" + ", ".join(f"{field.name}: {field.type}" for field in schema) + ")"


def _rated(
    source: Iterator[Any], schema: pa.Schema | None, plan_or_rater: Any, opts: Options
) -> Iterator[pa.RecordBatch]:
    offset = 0
    pool = ThreadPoolExecutor(opts.threads, "cdrrating") if opts.threads > 1 else None
    try:
        for item in source:
            table = _as_table(item, offset)
            if schema is None:
                schema = table.schema
            elif not table.schema.equals(schema, check_metadata=True):
                if not table.schema.equals(schema, check_metadata=False):
                    raise ValidationError(
                        "batches",
                        f"a batch at row {offset} with columns {_describe(table.schema)}",
                        f"every batch with the stream's columns {_describe(schema)}",
                    )
                table = table.replace_schema_metadata(schema.metadata)
            added = rate_arrow(
                table, plan_or_rater, opts, pool=pool, offset=offset, scope="in this batch"
            )
            yield _one_batch(_from_arrow("arrow", table, added))
            offset += table.num_rows
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def _one_batch(table: pa.Table) -> pa.RecordBatch:
    batches = table.combine_chunks().to_batches()
    if len(batches) == 1:
        return batches[0]
    return pa.RecordBatch.from_arrays(
        [pa.array([], field.type) for field in table.schema], schema=table.schema
    )
