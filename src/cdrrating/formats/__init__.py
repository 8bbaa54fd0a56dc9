"""Reading and writing the files CDRs and rate decks come in.

Readers stream: iterate one to get :class:`~cdrrating.CDR` or :class:`~cdrrating.Rate`
objects; every row it could not read is in ``reader.rejects`` (line number, reason,
raw text) and, on request, in a reject file; ``reader.summary`` has the counts. A
problem with the input as a whole (wrong header, wrong encoding, not JSON) raises
:class:`FormatError`. Nothing is dropped silently. One page per format: ``docs/formats/``.

>>> from cdrrating.formats import read_cdrs
>>> reader = read_cdrs("Master.csv", "asterisk", reject_file="rejects.csv")  # doctest: +SKIP
>>> charges = [rate(cdr, plan) for cdr in reader]  # doctest: +SKIP
>>> print(reader.summary)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, TypeVar

from cdrrating.cdr import CDR
from cdrrating.errors import ValidationError
from cdrrating.formats._errors import FormatError
from cdrrating.formats._reader import Reader, ReadSummary, Reject
from cdrrating.formats._source import Source
from cdrrating.formats.cdr_readers import (
    AdminApiReader,
    AsteriskCsvReader,
    CallCdrReader,
    CdrCsvReader,
    CdrJsonReader,
    FreeSwitchCsvReader,
    FreeSwitchJsonReader,
    PlatformJsonReader,
)
from cdrrating.formats.parquet import ParquetArchive, ParquetCdrReader, write_charges_parquet
from cdrrating.formats.rate_readers import RateCsvReader, RateNoticeReader, expand_codes
from cdrrating.formats.writers import (
    CDR_COLUMNS,
    CHARGE_COLUMNS,
    OUTPUT_FORMATS,
    cdr_record,
    charge_record,
    write_cdrs,
    write_charges,
    write_records,
    write_rejects,
)
from cdrrating.rates import Rate

__all__ = [
    "CDR_COLUMNS",
    "CDR_FORMATS",
    "CHARGE_COLUMNS",
    "OUTPUT_FORMATS",
    "RATE_FORMATS",
    "AdminApiReader",
    "AsteriskCsvReader",
    "CallCdrReader",
    "CdrCsvReader",
    "CdrJsonReader",
    "FormatError",
    "FreeSwitchCsvReader",
    "FreeSwitchJsonReader",
    "ParquetArchive",
    "ParquetCdrReader",
    "PlatformJsonReader",
    "RateCsvReader",
    "RateNoticeReader",
    "ReadSummary",
    "Reader",
    "Reject",
    "cdr_record",
    "charge_record",
    "expand_codes",
    "read_cdrs",
    "read_rates",
    "write_cdrs",
    "write_charges",
    "write_charges_parquet",
    "write_records",
    "write_rejects",
]

T = TypeVar("T")

CDR_FORMATS: dict[str, type[Reader[CDR]]] = {
    "asterisk": AsteriskCsvReader,
    "freeswitch-csv": FreeSwitchCsvReader,
    "freeswitch-json": FreeSwitchJsonReader,
    "admin-api": AdminApiReader,
    "call-cdr": CallCdrReader,
    "platform-json": PlatformJsonReader,
    "csv": CdrCsvReader,
    "json": CdrJsonReader,
    "parquet": ParquetCdrReader,
}
"""CDR format names (as the CLI's ``--input-format`` takes them) and their readers."""

RATE_FORMATS: dict[str, type[Reader[Rate]]] = {
    "csv": RateCsvReader,
    "notice": RateNoticeReader,
}
"""Rate deck format names and their readers."""


def read_cdrs(source: Source, format: str = "csv", **options: Any) -> Reader[CDR]:
    """A CDR reader for ``source`` (a path, a binary or text stream) in ``format``, one
    of :data:`CDR_FORMATS`; ``options`` go to the reader's class."""
    return _pick(CDR_FORMATS, format)(source, **options)


def read_rates(source: Source, format: str = "csv", **options: Any) -> Reader[Rate]:
    """A rate reader for ``source`` in ``format`` (``csv`` or ``notice``)."""
    return _pick(RATE_FORMATS, format)(source, **options)


def _pick(table: dict[str, type[Reader[T]]], name: str) -> type[Reader[T]]:
    try:
        return table[name]
    except KeyError:
        raise ValidationError("format", name, "one of " + ", ".join(table)) from None
