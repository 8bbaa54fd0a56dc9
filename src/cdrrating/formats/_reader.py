"""The streaming reader every format builds on: records out, rejects collected (private)."""

from __future__ import annotations

import csv
import hashlib
import logging
import os
from collections.abc import Iterator
from typing import IO, Any, ClassVar, Generic, TypeVar

import attrs

from cdrrating.errors import CdrRatingError, ValidationError
from cdrrating.formats._errors import FormatError
from cdrrating.formats._source import LineSource, Source, check_encoding, source_name

T = TypeVar("T")

__all__ = ["ROW_ERRORS", "ReadSummary", "Reader", "Reject"]

REJECT_COLUMNS = ("source", "line", "field", "reason", "raw")

# Silent unless the host configures logging: no handler is added here.
log = logging.getLogger("cdrrating.formats")

# What converting one row may raise on bad values: each becomes that row's reject. (The
# value parsers raise ValidationError; the rest is what the standard library raises on
# values past its own limits — a datetime past year 9999, an epoch past time_t, ...)
ROW_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    TypeError,
    ArithmeticError,
    LookupError,
    OSError,
    RecursionError,
)


@attrs.frozen
class Reject:
    """A row that was not read: where it was, why, and its text exactly as in the file."""

    line: int
    reason: str
    raw: str = attrs.field(repr=False)
    field: str | None = None
    source: str | None = None


@attrs.frozen
class ReadSummary:
    """Counts of one read. ``complete`` is False until the input was read to its end."""

    source: str
    format: str
    records: int
    rows: int
    rejected: int
    skipped: int
    complete: bool

    @property
    def ok(self) -> bool:
        """The whole input was read and no row was rejected."""
        return self.complete and self.rejected == 0

    def __str__(self) -> str:
        state = "" if self.complete else " (NOT read to the end)"
        return (
            f"{self.source} ({self.format}): {self.records:,} records from {self.rows:,} rows, "
            f"{self.rejected:,} rejected, {self.skipped:,} skipped{state}"
        )


Row = list[T] | Reject | None
"""What a format yields per input row: its records, a Reject, or None for a skipped row."""


class Reader(Generic[T]):
    """Iterate to get records; every row that could not be read is in ``rejects``.

    A reader reads its input once, lazily: nothing is opened before iteration starts, and
    memory does not grow with the input (only with the number of rejects, which are kept).

    Options common to every reader:

    * ``encoding`` — of a file or binary stream (default UTF-8; a byte-order mark wins).
    * ``reject_file`` — a path or text stream: every reject is also written there as CSV
      (``source,line,field,reason,raw``), as it happens.
    * ``strict`` — raise :class:`FormatError` at the first rejected row instead.
    * ``max_rejects`` — raise once more rows than this were rejected (a wrong format
      usually rejects every row; this stops early with a clear error).
    * ``rejects_spreadsheet_safe`` — write the reject file with formula-like cells
      quoted, as ``write_records(spreadsheet_safe=True)`` does.

    ``line`` is the line where the record last yielded starts, for messages about it.

    Each reject is logged at DEBUG on the ``cdrrating.formats`` logger, and the summary
    of a read with rejects at INFO.
    """

    format: ClassVar[str] = "?"

    def __init__(
        self,
        source: Source,
        *,
        encoding: str = "utf-8",
        reject_file: str | os.PathLike[str] | IO[str] | None = None,
        strict: bool = False,
        max_rejects: int | None = None,
        rejects_spreadsheet_safe: bool = False,
    ) -> None:
        check_encoding(encoding)
        if max_rejects is not None and (
            not isinstance(max_rejects, int) or isinstance(max_rejects, bool) or max_rejects < 0
        ):
            raise ValidationError("max_rejects", max_rejects, "a whole number, 0 or more")
        self.source = source
        self.name = source_name(source)
        self.encoding = encoding
        self.reject_file = reject_file
        self.strict = strict
        self.max_rejects = max_rejects
        self.rejects_spreadsheet_safe = rejects_spreadsheet_safe
        self.rejects: list[Reject] = []
        self.records = 0
        self.rows = 0
        self.skipped = 0
        self.complete = False
        #: The 1-based line where the record last yielded starts (None before the first).
        self.line: int | None = None
        self._row_line: int | None = None  # set by a format just before it yields records
        self._used = False

    # -- what formats implement ----------------------------------------------------------

    def _rows(self, src: LineSource) -> Iterator[Row[T]]:
        raise NotImplementedError

    # -- public ---------------------------------------------------------------------------

    @property
    def summary(self) -> ReadSummary:
        return ReadSummary(
            self.name,
            self.format,
            self.records,
            self.rows,
            len(self.rejects),
            self.skipped,
            self.complete,
        )

    @property
    def ok(self) -> bool:
        return self.summary.ok

    def read_all(self) -> list[T]:
        """All records as a list (for small inputs; iterate for large ones)."""
        return list(self)

    def __iter__(self) -> Iterator[T]:
        if self._used:
            raise RuntimeError("a reader reads its input once; create a new reader to read again")
        self._used = True
        return self._iterate()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.summary}>"

    # -- machinery ------------------------------------------------------------------------

    def _iterate(self) -> Iterator[T]:
        src = LineSource(self.source, encoding=self.encoding)
        out, owned = self._open_rejects()
        try:
            for row in self._rows(src):
                if row is None:
                    self.skipped += 1
                elif isinstance(row, Reject):
                    self.rows += 1
                    self._reject(row, out)
                else:
                    self.rows += 1
                    self.records += len(row)
                    self.line = self._row_line
                    yield from row
            self.complete = True
            if self.rejects:
                log.info("%s", self.summary)
        finally:
            src.close()
            if owned is not None:
                owned.close()

    def _open_rejects(self) -> tuple[Any, IO[str] | None]:
        target = self.reject_file
        if target is None:
            return None, None
        owned: IO[str] | None = None
        stream: IO[str]
        if isinstance(target, str | os.PathLike):
            try:
                owned = stream = open(target, "w", encoding="utf-8", newline="")  # noqa: SIM115
            except OSError as error:
                raise ValidationError(
                    "reject_file", os.fspath(target), f"a writable path ({error.strerror})"
                ) from None
        else:
            stream = target
        writer = csv.writer(stream, lineterminator="\r\n")
        writer.writerow(REJECT_COLUMNS)
        return writer, owned

    def _reject(self, reject: Reject, out: Any) -> None:
        reject = attrs.evolve(reject, source=self.name)
        self.rejects.append(reject)
        log.debug("%s line %d rejected: %s", self.name, reject.line, reject.reason)
        if out is not None:
            cells = (reject.source, reject.line, reject.field or "", reject.reason, reject.raw)
            if self.rejects_spreadsheet_safe:
                cells = tuple(spreadsheet_cell(c) for c in cells)
            out.writerow(cells)
        if self.strict:
            raise FormatError(
                reject.line, reject.reason, field=reject.field or "row", value=reject.raw
            )
        if self.max_rejects is not None and len(self.rejects) > self.max_rejects:
            raise FormatError(
                reject.line,
                f"more than {self.max_rejects} rows rejected (last: {reject.reason}); "
                f"is this really {self.format} input?",
            )


def reject_from(line: int, raw: str, error: Exception) -> Reject:
    """A Reject for a row whose conversion raised ``error`` (one of ``ROW_ERRORS``)."""
    if isinstance(error, CdrRatingError):
        return Reject(line, str(error), raw, getattr(error, "field", None))
    if isinstance(error, ROW_ERRORS):
        # Not the library's own error: name its type, the message alone can be cryptic
        # ("[Errno 75] Value too large for defined data type").
        reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        return Reject(line, reason, raw, getattr(error, "field", None))
    raise error  # pragma: no cover - anything else is a bug, not bad input


FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
"""What a spreadsheet may take for the start of a formula (OWASP "CSV injection", plus
a line feed, which some spreadsheets also skip before a formula)."""


def spreadsheet_cell(value: Any) -> Any:
    """``value`` with a leading ``'`` if it is text a spreadsheet could run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def synthetic_id(prefix: str, raw: str) -> str:
    """A stable call id for formats without one: the same row always gets the same id,
    and an identical duplicate row gets the same id too (so storage can spot it)."""
    return f"{prefix}-{hashlib.sha1(raw.encode(), usedforsecurity=False).hexdigest()[:20]}"
