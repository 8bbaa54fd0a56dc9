"""Parquet: CDRs in, charges out, and an archive of pruned CDRs as a dataset by day.

Everything here streams. :class:`ParquetCdrReader` reads a file one batch of rows at a
time and turns each row into a :class:`~cdrrating.CDR` exactly as the CSV and JSON
readers of named columns do (the same column names and aliases, ``mapping``, ``extra``);
a row it cannot read is a reject with its row number, never dropped.
:class:`ParquetChargeWriter` writes rated calls in row groups, to a temporary name that is
renamed when the file is complete. :class:`ParquetArchive` is an ``archive=`` for
``repository.prune``: a Hive-style dataset, ``day=YYYY-MM-DD/`` by the UTC day each call
started, in which a call is kept once however often it is archived.

Columns have plain types that DuckDB, Polars, pyarrow and Spark read as they are: text
as ``string``, counts and micro-units as ``int64``, instants as ``timestamp[us, UTC]``,
flags as ``bool``, ``extra`` as JSON text.

Needs pyarrow, the ``[frame]`` extra: ``pip install 'cdrrating[frame]'``. The module
itself imports without it; using a class without pyarrow raises :class:`ImportError`
naming that command.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from cdrrating._storage.entities import CDR_ENTITY, Kind, fold
from cdrrating._storage.records import StoredCDR
from cdrrating._storage.rows import CDR_COLUMNS as _STORED_COLUMNS
from cdrrating._storage.rows import cdr_values, stored_cdr, tenant_key, to_micros_epoch
from cdrrating.charge import Charge
from cdrrating.errors import ValidationError
from cdrrating.formats._errors import FormatError
from cdrrating.formats._reader import ROW_ERRORS, Reject, Row, reject_from
from cdrrating.formats._source import JsonLimit, LineSource, Source, loads_bounded, short_raw
from cdrrating.formats.cdr_readers import CdrJsonReader
from cdrrating.formats.writers import CHARGE_COLUMNS, charge_record

if TYPE_CHECKING:
    import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information

__all__ = [
    "ARCHIVE_COLUMNS",
    "DEFAULT_ROW_GROUP_SIZE",
    "PARQUET_SUFFIXES",
    "ParquetArchive",
    "ParquetCdrReader",
    "ParquetChargeWriter",
    "archive_schema",
    "charge_schema",
    "is_parquet_path",
    "require_pyarrow",
    "write_charges_parquet",
]

#: File name endings taken for Parquet when no format is given.
PARQUET_SUFFIXES = (".parquet", ".pq")

#: Rows per row group written (and per batch read) unless told otherwise. A batch read
#: and a row group to write are held as Python objects, so this bounds memory (rating
#: with 65,536 peaked about 95 MB higher than with 16,384); row groups of 16,384 rows
#: are still scanned fast by columnar readers.
DEFAULT_ROW_GROUP_SIZE = 16_384

#: The columns of an archived CDR, in file order: every field of a stored CDR.
ARCHIVE_COLUMNS: tuple[str, ...] = tuple(CDR_ENTITY.fields)

_INSTALL = "pip install 'cdrrating[frame]'"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_US = 86_400_000_000
_PER_UNIT_US = {"s": 1_000_000, "ms": 1_000, "us": 1}

#: The charge columns that hold instants and whole numbers; every other one is text.
_CHARGE_TIMES = frozenset({"started_at", "answered_at", "ended_at"})
_CHARGE_INTS = frozenset(
    {"billsec", "duration", "cost_micros", "billed_seconds", "connection_fee_micros"}
)


def require_pyarrow() -> tuple[ModuleType, ModuleType]:
    """``(pyarrow, pyarrow.parquet)``, or an :class:`ImportError` that names the extra."""
    try:
        # pyarrow ships no type information; the optional [frame] extra.
        import pyarrow as pa  # noqa: PLC0415
        import pyarrow.parquet as pq  # type: ignore[import-untyped]  # noqa: PLC0415
    except ImportError as error:
        raise ImportError(
            f"reading and writing Parquet needs pyarrow ({error}): {_INSTALL}"
        ) from None
    return pa, pq


def is_parquet_path(path: str | os.PathLike[str]) -> bool:
    """Whether a file name ends in one of :data:`PARQUET_SUFFIXES` (any case)."""
    return os.fspath(path).lower().endswith(PARQUET_SUFFIXES)


# -- reading CDRs --------------------------------------------------------------------------


# Built on the JSON reader of named columns: a Parquet row is a record of named values,
# and its handling of them (aliases, mapping, a missing call id) is the one to share.
class ParquetCdrReader(CdrJsonReader):
    """CDRs from a Parquet file, one batch of rows at a time (``batch_size`` rows).

    Columns are matched by name as in :class:`~cdrrating.formats.CdrCsvReader`: the CDR
    fields or their common aliases, ``mapping`` renaming others, unknown columns kept in
    ``extra``; a text column ``extra`` is read as the JSON text the writers produce.
    A file without a dialled-number or a start-time column raises
    :class:`~cdrrating.formats.FormatError` before any row is read.

    Timestamps with a zone are instants; timestamps without one are wall-clock times in
    ``default_tz``. A nanosecond timestamp that is not a whole microsecond rejects its
    row (a Python datetime cannot hold it, and dropping the rest would move the call).
    ``line`` and each reject's ``line`` are the 1-based row number in the file. Parquet
    keeps its index at the end of the file, so the source must be a path or a seekable
    binary stream, not a pipe.
    """

    format = "parquet"

    def __init__(
        self, source: Source, *, batch_size: int = DEFAULT_ROW_GROUP_SIZE, **options: Any
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValidationError("batch_size", batch_size, "a whole number of rows, 1 or more")
        super().__init__(source, **options)
        self.batch_size = batch_size

    def _rows(self, src: LineSource) -> Iterator[Row[Any]]:
        pa, pq = require_pyarrow()
        try:
            file = pq.ParquetFile(self.source)
        except (pa.ArrowException, OSError, ValueError, TypeError) as error:
            seekable = getattr(self.source, "seekable", None)
            if callable(seekable) and not seekable():
                raise FormatError(
                    0,
                    f"{self.name}: Parquet is read from a file, not a pipe (its index is at "
                    "the end of the file)",
                ) from None
            raise FormatError(0, f"{self.name} is not a Parquet file: {error}") from None
        names = list(file.schema_arrow.names)
        renamed = [self._rename(n) for n in names]
        missing = self._missing(set(renamed))
        if missing:
            raise FormatError(
                0,
                f"the file lacks the columns {', '.join(missing)}: expected columns "
                f"{self._expected()}; found {', '.join(names)}",
                field="header",
            )
        dupes = sorted({n for n in renamed if renamed.count(n) > 1})
        if dupes:
            raise FormatError(0, f"duplicate columns: {', '.join(dupes)}", field="header")
        row_number = 0
        for batch in file.iter_batches(batch_size=self.batch_size):
            columns, units = _python_columns(pa, batch)
            for i in range(batch.num_rows):
                row_number += 1
                yield self._row(row_number, names, renamed, [c[i] for c in columns], units)

    def _row(
        self,
        row_number: int,
        names: list[str],
        renamed: list[str],
        values: list[Any],
        units: list[tuple[str, bool] | None],
    ) -> Row[Any]:
        bad: str | None = None
        for j, unit in enumerate(units):
            if unit is not None and values[j] is not None:
                try:
                    values[j] = _instant(values[j], *unit)
                except ROW_ERRORS as error:
                    bad = f"{names[j]}: {error}"
                    values[j] = str(values[j])
        raw = short_raw(
            json.dumps(dict(zip(names, values, strict=True)), default=str, ensure_ascii=False)
        )
        if bad is not None:
            return Reject(row_number, bad, raw, bad.split(":", 1)[0])
        row = dict(zip(renamed, values, strict=True))
        extra = row.get("extra")
        if isinstance(extra, str):
            # The writers keep extra as JSON text: read it back as a mapping.
            try:
                row["extra"] = loads_bounded(extra) if extra.strip() else None
            except JsonLimit as error:
                return Reject(row_number, f"extra: {error.reason}", raw, "extra")
            except ValueError:
                return Reject(row_number, "extra: not a JSON object", raw, "extra")
        try:
            row = self._prepare(row, raw)
        except ROW_ERRORS as error:
            return reject_from(row_number, raw, error)
        return self._cdr(row_number, raw, row)


def _python_columns(
    pa: ModuleType, batch: pa.RecordBatch
) -> tuple[list[list[Any]], list[tuple[str, bool] | None]]:
    """A batch's columns as Python lists, timestamps as integers in their unit (the
    unit and whether the column names a zone beside them): pyarrow would hand
    nanoseconds over as pandas objects, and a wall-clock time must stay naive."""
    columns: list[list[Any]] = []
    units: list[tuple[str, bool] | None] = []
    for column, field in zip(batch.columns, batch.schema, strict=True):
        kind = field.type
        if pa.types.is_timestamp(kind):
            columns.append(column.cast(pa.int64()).to_pylist())
            units.append((kind.unit, kind.tz is not None))
        else:
            columns.append(column.to_pylist())
            units.append(None)
    return columns, units


def _instant(value: int, unit: str, zoned: bool) -> datetime:
    if unit == "ns":
        whole, rest = divmod(value, 1_000)
        if rest:
            raise ValidationError(
                "timestamp", value, "a time in whole microseconds (this one has nanoseconds)"
            )
        micros = whole
    else:
        micros = value * _PER_UNIT_US[unit]
    instant = _EPOCH + timedelta(microseconds=micros)
    return instant if zoned else instant.replace(tzinfo=None)


# -- writing charges -----------------------------------------------------------------------


def charge_schema() -> pa.Schema:
    """The schema :class:`ParquetChargeWriter` writes: :data:`~cdrrating.formats.CHARGE_COLUMNS`
    in that order; instants ``timestamp[us, UTC]``, whole numbers and micro-units
    ``int64``, the rest (``cost`` as exact decimal text, ``extra`` as JSON) ``string``."""
    pa, _ = require_pyarrow()
    return pa.schema([pa.field(name, _charge_type(pa, name)) for name in CHARGE_COLUMNS])


def _charge_type(pa: ModuleType, name: str) -> Any:
    if name in _CHARGE_TIMES:
        return pa.timestamp("us", tz="UTC")
    if name in _CHARGE_INTS:
        return pa.int64()
    return pa.string()


class ParquetChargeWriter:
    """Rated calls to a Parquet file, :func:`charge_schema` columns, ``row_group_size``
    rows per row group; memory holds at most one row group.

    Use it as a context manager. Rows go to a hidden temporary file beside ``path``
    that is renamed to ``path`` when the block ends without an error; on an error it is
    removed, so ``path`` is never a half-written file. ``None`` entries (records a
    batch could not rate) are skipped, as :func:`~cdrrating.formats.write_charges`
    does.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, row_group_size: int = DEFAULT_ROW_GROUP_SIZE
    ) -> None:
        if (
            isinstance(row_group_size, bool)
            or not isinstance(row_group_size, int)
            or row_group_size < 1
        ):
            raise ValidationError("row_group_size", row_group_size, "a whole number, 1 or more")
        self._pa, self._pq = require_pyarrow()
        self.path = Path(path)
        self.row_group_size = row_group_size
        self.rows = 0
        self._schema = charge_schema()
        self._pending: list[Charge] = []
        self._temp = self.path.with_name(f".{self.path.name}.tmp")
        self._writer: Any = None

    def __enter__(self) -> ParquetChargeWriter:
        try:
            self._writer = self._pq.ParquetWriter(self._temp, self._schema)
        except OSError as error:
            raise ValidationError(
                "path", os.fspath(self.path), f"a path that can be written ({error})"
            ) from None
        return self

    def write(self, charges: Iterable[Charge | None]) -> int:
        """Add rated calls; returns how many were added."""
        added = 0
        for charge in charges:
            if charge is None:
                continue
            self._pending.append(charge)
            added += 1
            if len(self._pending) >= self.row_group_size:
                self._flush()
        return added

    def _flush(self) -> None:
        if not self._pending:
            return
        self._writer.write_table(
            _charge_table(self._pa, self._schema, self._pending),
            row_group_size=self.row_group_size,
        )
        self.rows += len(self._pending)
        self._pending = []

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        complete = False
        try:
            if kind is None:
                self._flush()
                complete = True
        finally:
            self._writer.close()
            if complete:
                os.replace(self._temp, self.path)
            else:
                with contextlib.suppress(OSError):
                    self._temp.unlink()


def _charge_table(pa: ModuleType, schema: pa.Schema, charges: Sequence[Charge]) -> pa.Table:
    records = [charge_record(c) for c in charges]
    arrays = []
    for field in schema:
        name = field.name
        if name in _CHARGE_TIMES:
            # The instants themselves, not their ISO text: pyarrow converts to UTC.
            values: list[Any] = [getattr(c.cdr, name) for c in charges]
        elif name == "extra":
            values = [_json_text(r["extra"]) for r in records]
        else:
            values = [r[name] for r in records]
        arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _json_text(value: Mapping[str, Any] | None) -> str | None:
    if not value:
        return None
    return json.dumps(dict(value), sort_keys=True, ensure_ascii=False, default=str)


def write_charges_parquet(
    charges: Iterable[Charge | None],
    path: str | os.PathLike[str],
    *,
    row_group_size: int = DEFAULT_ROW_GROUP_SIZE,
) -> int:
    """Write rated calls to a Parquet file (see :class:`ParquetChargeWriter`); returns
    how many were written."""
    with ParquetChargeWriter(path, row_group_size=row_group_size) as writer:
        writer.write(charges)
    return writer.rows


# -- the archive ---------------------------------------------------------------------------


def archive_schema() -> pa.Schema:
    """The schema of an archived CDR: :data:`ARCHIVE_COLUMNS`, every field of a stored
    CDR; instants ``timestamp[us, UTC]``, whole numbers and micro-units ``int64``,
    ``in_progress`` ``bool``, ``extra`` JSON text, the rest ``string``. Fields a stored
    CDR always has are not nullable."""
    pa, _ = require_pyarrow()
    kinds = {
        Kind.STR: pa.string(),
        Kind.ENUM: pa.string(),
        Kind.JSON: pa.string(),
        Kind.INT: pa.int64(),
        Kind.BOOL: pa.bool_(),
        Kind.TIME: pa.timestamp("us", tz="UTC"),
    }
    return pa.schema(
        [pa.field(f.name, kinds[f.kind], nullable=f.nullable) for f in CDR_ENTITY.fields.values()]
    )


#: ``part-<first start>-<last start>-<content digest>.parquet``; the starts are the time
#: of day (HHMMSS and microseconds, UTC) of the earliest and latest call in the file.
_PART = re.compile(r"part-(\d{12})-(\d{12})-([0-9a-f]{32})\.parquet")


@attrs.frozen
class ParquetArchive:
    """An ``archive=`` for :meth:`~cdrrating.repository.CDRRepository.prune`: each batch
    of stored CDRs goes into a Parquet dataset under ``path``, partitioned Hive-style by
    the UTC day each call started (``day=2026-10-01/part-....parquet``).

    >>> repo.prune(timedelta(days=30), archive=ParquetArchive("archive/"))  # doctest: +SKIP

    Every field of a :class:`~cdrrating.repository.StoredCDR` is kept
    (:func:`archive_schema`); :meth:`read` gives them back equal.

    Safe to crash and run again:

    * a file is written under a hidden temporary name, flushed to disk and renamed, so a
      crash leaves no half file, and the repository deletes nothing until every batch is
      archived;
    * a file's name is made from its content, so archiving the same calls again
      replaces the file instead of adding one;
    * a call is kept once: when a batch holds a call (tenant and call_id) that an older
      file of its day holds too, that older file is rewritten without it. A second run
      after a crash between archiving and deleting, whose batches are cut differently,
      therefore does not duplicate rows either.

    Readers: ``pyarrow.dataset.dataset(path, partitioning="hive")``, DuckDB
    ``read_parquet('path/**/*.parquet', hive_partitioning = true)``, Polars
    ``pl.scan_parquet('path/**/*.parquet', hive_partitioning=True)``, Spark
    ``spark.read.parquet(path)``; each adds the partition column ``day``. Hidden
    temporary files (starting with ``.``) are skipped by all of them.
    """

    path: Path = attrs.field(converter=Path)
    #: Flush each file (and its directory) to disk before going on: an archive must
    #: survive a power cut that follows the delete. Turn off only for throwaway data.
    durable: bool = attrs.field(default=True, kw_only=True)

    format: ClassVar[str] = "parquet"

    def __attrs_post_init__(self) -> None:
        require_pyarrow()  # missing pyarrow is said before anything is pruned

    def __call__(self, batch: Sequence[StoredCDR]) -> None:
        """Archive one batch (the repository calls this)."""
        by_day: dict[int, list[tuple[Any, ...]]] = {}
        started = _STORED_COLUMNS.index("started_at_us")
        for position, stored in enumerate(batch):
            values = cdr_values(
                stored.cdr,
                (stored.status, stored.reason, stored.prefix, stored.billed_seconds),
                stored.in_progress,
                created_us=to_micros_epoch(stored.created_at),
                updated_us=to_micros_epoch(stored.updated_at),
                position=position,
            )
            by_day.setdefault(values[started] // _DAY_US, []).append(values)
        for day, rows in sorted(by_day.items()):
            self._archive_day(day, rows)

    def _archive_day(self, day: int, rows: list[tuple[Any, ...]]) -> None:
        pa, pq = require_pyarrow()
        folder = self.path / f"day={_day_text(day)}"
        folder.mkdir(parents=True, exist_ok=True)
        name, first, last = self._write_part(pa, folder, day, rows)
        keys = {(v[1], v[0]) for v in rows}  # (tenant_key, call_id): a stored call's identity
        for other in sorted(folder.iterdir()):
            match = _PART.fullmatch(other.name)
            if match is None or other.name == name:
                continue
            lo, hi = _day_us(match.group(1)), _day_us(match.group(2))
            if hi < first or lo > last:
                continue  # no call of this batch can be in it: its starts lie elsewhere
            self._drop_calls(pa, pq, other, day, keys)

    def _write_part(
        self, pa: ModuleType, folder: Path, day: int, rows: list[tuple[Any, ...]]
    ) -> tuple[str, int, int]:
        """Write one file of a day's calls; its name, and the first and last start in it
        (microseconds into the day)."""
        started = _STORED_COLUMNS.index("started_at_us")
        # One order whatever order the batch came in: the same calls, the same bytes.
        rows = sorted(rows, key=lambda v: (v[started], v[0], v[1]))
        digest = hashlib.sha256()
        for values in rows:
            digest.update(repr(values).encode("utf-8", "surrogatepass"))
        first = rows[0][started] - day * _DAY_US
        last = rows[-1][started] - day * _DAY_US
        name = f"part-{_clock(first)}-{_clock(last)}-{digest.hexdigest()[:32]}.parquet"
        self._write(folder / name, _archive_table(pa, rows))
        return name, first, last

    def _drop_calls(
        self,
        pa: ModuleType,
        pq: ModuleType,
        part: Path,
        day: int,
        keys: set[tuple[str, str]],
    ) -> None:
        """Rewrite ``part`` without the calls in ``keys`` (a newer file holds them)."""
        ids = pq.read_table(part, columns=["tenant", "call_id"])
        tenants = ids.column("tenant").to_pylist()
        call_ids = ids.column("call_id").to_pylist()
        keep = [(t or "", c) not in keys for t, c in zip(tenants, call_ids, strict=True)]
        if all(keep):
            return
        if any(keep):
            kept = [r for r, k in zip(_read_rows(pq, part), keep, strict=True) if k]
            # Written before the old file goes: a crash in between leaves a duplicate
            # for the next run to remove, never a lost call.
            self._write_part(pa, part.parent, day, kept)
        part.unlink()
        self._sync(part.parent)

    def _write(self, path: Path, table: pa.Table) -> None:
        _, pq = require_pyarrow()
        temp = path.with_name(f".{path.name}.tmp")
        try:
            with temp.open("wb") as handle:
                pq.write_table(table, handle)
                handle.flush()
                if self.durable:
                    os.fsync(handle.fileno())
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        self._sync(path.parent)

    def _sync(self, folder: Path) -> None:
        if not self.durable or os.name != "posix":
            return
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> Iterator[StoredCDR]:
        """Every archived call as a :class:`~cdrrating.repository.StoredCDR`, one file at a
        time (days in order, each file's calls oldest first)."""
        _, pq = require_pyarrow()
        if not self.path.exists():
            return
        for folder in sorted(self.path.glob("day=*")):
            for part in sorted(folder.iterdir()):
                if _PART.fullmatch(part.name) is not None:
                    for values in _read_rows(pq, part):
                        yield stored_cdr(dict(zip(_STORED_COLUMNS, values, strict=True)))

    def count(self) -> int:
        """The number of archived calls (read from the files' footers). A method, not
        ``len()``: an empty archive is still an archive to pass, never false."""
        _, pq = require_pyarrow()
        if not self.path.exists():
            return 0
        return sum(
            pq.ParquetFile(part).metadata.num_rows
            for part in self.path.glob("day=*/part-*.parquet")
            if _PART.fullmatch(part.name) is not None
        )


def _day_text(day: int) -> str:
    return (date(1970, 1, 1) + timedelta(days=day)).isoformat()


def _clock(us: int) -> str:
    seconds, micros = divmod(us, 1_000_000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{hour:02d}{minute:02d}{second:02d}{micros:06d}"


def _day_us(text: str) -> int:
    hour, minute, second, micros = int(text[:2]), int(text[2:4]), int(text[4:6]), int(text[6:])
    return ((hour * 60 + minute) * 60 + second) * 1_000_000 + micros


def _archive_table(pa: ModuleType, rows: list[tuple[Any, ...]]) -> pa.Table:
    """Storage tuples (``cdrrating._storage.rows`` order) as an :func:`archive_schema`
    table: the instants are the stored microseconds, given their type."""
    schema = archive_schema()
    by_column = dict(zip(_STORED_COLUMNS, zip(*rows, strict=True), strict=True))
    arrays = []
    for field in schema:
        spec = CDR_ENTITY.fields[field.name]
        values = by_column[spec.column]
        if spec.kind is Kind.TIME:
            arrays.append(pa.array(values, type=pa.int64()).cast(field.type))
        else:
            arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _read_rows(pq: ModuleType, part: Path) -> Iterator[tuple[Any, ...]]:
    """The storage tuples of an archive file, one row group at a time."""
    pa, _ = require_pyarrow()
    file = pq.ParquetFile(part)
    for batch in file.iter_batches(columns=list(ARCHIVE_COLUMNS)):
        columns: dict[str, list[Any]] = {}
        for name in ARCHIVE_COLUMNS:
            column = batch.column(name)
            if CDR_ENTITY.fields[name].kind is Kind.TIME:
                column = column.cast(pa.int64())
            columns[CDR_ENTITY.fields[name].column] = column.to_pylist()
        # The columns storage derives from the fields: the tenant key and the folded text.
        columns["tenant_key"] = [tenant_key(t) for t in columns["tenant"]]
        for name in CDR_ENTITY.fold_fields:
            columns[f"{name}_fold"] = [fold(v) for v in columns[name]]
        ordered = [columns[c] for c in _STORED_COLUMNS]
        yield from zip(*ordered, strict=True)
