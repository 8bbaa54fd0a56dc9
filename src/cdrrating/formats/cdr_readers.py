"""Readers that turn switch and platform CDR files into :class:`~cdrrating.CDR` objects.

Every reader streams (constant memory), yields CDRs and keeps each row it could not
read in ``rejects`` with its line number and reason. Fields a format has but a CDR does
not are kept in ``CDR.extra``. See ``docs/formats/`` for one page per format.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import unquote

from cdrrating._validate import EpochUnit, epoch_per_second, to_tzinfo, to_tzinfos
from cdrrating.cdr import CDR, Direction, Disposition
from cdrrating.errors import ValidationError
from cdrrating.formats._errors import FormatError
from cdrrating.formats._reader import ROW_ERRORS, Reader, Reject, Row, reject_from, synthetic_id
from cdrrating.formats._source import (
    MAX_COLUMNS,
    CsvRecord,
    Envelope,
    JsonLimit,
    JsonValue,
    LineSource,
    Source,
    csv_records,
    json_values,
    loads_bounded,
)

__all__ = [
    "ASTERISK_BASE_COLUMNS",
    "CALL_CDR_COLUMNS",
    "FREESWITCH_EXAMPLE_TEMPLATE",
    "AdminApiReader",
    "AsteriskCsvReader",
    "CallCdrReader",
    "CdrCsvReader",
    "CdrJsonReader",
    "FreeSwitchCsvReader",
    "FreeSwitchJsonReader",
    "PlatformJsonReader",
]

# cdr/cdr_csv.c, build_csv_record(): the columns of Master.csv, which has no header.
ASTERISK_BASE_COLUMNS = (
    "accountcode",
    "src",
    "dst",
    "dcontext",
    "clid",
    "channel",
    "dstchannel",
    "lastapp",
    "lastdata",
    "start",
    "answer",
    "end",
    "duration",
    "billsec",
    "disposition",
    "amaflags",
)
# Appended in this order when cdr.conf [csv] sets loguniqueid, loguserfield, newcdrcolumns.
_ASTERISK_OPTIONAL = (("uniqueid",), ("userfield",), ("peeraccount", "linkedid", "sequence"))

# The "example" template of FreeSWITCH's conf/vanilla/autoload_configs/cdr_csv.conf.xml,
# the one Master.csv uses unless the configuration names another.
FREESWITCH_EXAMPLE_TEMPLATE = (
    "caller_id_name",
    "caller_id_number",
    "destination_number",
    "context",
    "start_stamp",
    "answer_stamp",
    "end_stamp",
    "duration",
    "billsec",
    "hangup_cause",
    "uuid",
    "bleg_uuid",
    "accountcode",
    "read_codec",
    "write_codec",
)

CALL_CDR_COLUMNS = (
    "call_id",
    "account_id",
    "from_num",
    "to_num",
    "start_ts",
    "answer_ts",
    "end_ts",
    "duration_sec",
    "billsec",
    "answered",
    "disposition",
    "hangup_cause",
    "queue_id",
    "agent_id",
    "cost_micros",
)

_NOT_ANSWERED = {
    "USER_BUSY": Disposition.BUSY,
    "NO_ANSWER": Disposition.NO_ANSWER,
    "NO_USER_RESPONSE": Disposition.NO_ANSWER,
    "NORMAL_CLEARING": Disposition.NO_ANSWER,
    "ALLOTTED_TIMEOUT": Disposition.NO_ANSWER,
    "ORIGINATOR_CANCEL": Disposition.CANCELLED,
    "LOSE_RACE": Disposition.CANCELLED,
    "NORMAL_CIRCUIT_CONGESTION": Disposition.CONGESTION,
    "SWITCH_CONGESTION": Disposition.CONGESTION,
}


def freeswitch_disposition(answered: bool, hangup_cause: str | None) -> Disposition:
    """FreeSWITCH records no disposition: an answered leg is ANSWERED whatever its hangup
    cause; an unanswered one is named from the cause (USER_BUSY → BUSY, ...), FAILED if
    the cause says nothing more specific."""
    if answered:
        return Disposition.ANSWERED
    return _NOT_ANSWERED.get((hangup_cause or "").strip().upper(), Disposition.FAILED)


class _CdrReader(Reader[CDR]):
    """Options every CDR reader passes on to :meth:`CDR.from_mapping`: ``default_tz``
    (a tzinfo or a zone name), ``decimal_separator``, ``epoch_unit`` (``"s"``, ``"ms"``,
    ``"us"``, ``"ns"``) and ``tzinfos`` (zone abbreviations the file uses, e.g.
    ``{"EST": "America/New_York"}``). They are checked when the reader is made, not
    on every row."""

    #: The epoch unit of the format, when it defines one (``call_cdr``: milliseconds).
    default_epoch_unit: EpochUnit | None = None

    def __init__(
        self,
        source: Source,
        *,
        default_tz: tzinfo | str = UTC,
        direction: Direction | str | None = None,
        decimal_separator: str = ".",
        epoch_unit: EpochUnit | None = None,
        tzinfos: Mapping[str, tzinfo | str] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(source, **options)
        self.default_tz = to_tzinfo("default_tz", default_tz)
        self.direction = Direction.parse(direction) if direction is not None else None
        self.decimal_separator = decimal_separator
        epoch_per_second(epoch_unit)
        self.epoch_unit = epoch_unit if epoch_unit is not None else self.default_epoch_unit
        self.tzinfos = to_tzinfos(tzinfos)

    def _cdr(self, line: int, raw: str, mapping: dict[str, Any]) -> Row[CDR]:
        self._row_line = line
        if self.direction is not None and _blank(mapping.get("direction")):
            mapping["direction"] = self.direction
        try:
            return [
                CDR.from_mapping(
                    mapping,
                    default_tz=self.default_tz,
                    decimal_separator=self.decimal_separator,
                    epoch_unit=self.epoch_unit,
                    tzinfos=self.tzinfos,
                )
            ]
        except ROW_ERRORS as error:
            return reject_from(line, raw, error)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


# -- headerless switch CSV ---------------------------------------------------------------------


class _HeaderlessCsvReader(_CdrReader):
    def __init__(
        self, source: Source, *, require_final_newline: bool = True, **options: Any
    ) -> None:
        super().__init__(source, **options)
        self.require_final_newline = require_final_newline

    def _columns(self, fields: list[str]) -> Sequence[str] | str:
        """The column names for a row of this many fields, or why there are none."""
        raise NotImplementedError

    def _mapping(self, row: dict[str, str], raw: str) -> dict[str, Any]:
        raise NotImplementedError

    def _rows(self, src: LineSource) -> Iterator[Row[CDR]]:
        for record in csv_records(src):
            if not isinstance(record, CsvRecord):
                yield Reject(*record)
                continue
            fields = record.fields
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                yield None
                continue
            if record.unterminated and self.require_final_newline:
                # Switches end every record with a newline: this one was cut short (the
                # switch was still writing, or the copy was truncated). Its last field
                # may be incomplete, so it is not trusted.
                yield Reject(
                    record.line,
                    "last line has no line ending: the record may be truncated "
                    "(pass require_final_newline=False to accept it)",
                    record.raw,
                )
                continue
            columns = self._columns(fields)
            if isinstance(columns, str):
                yield Reject(record.line, columns, record.raw)
                continue
            try:
                mapping = self._mapping(dict(zip(columns, fields, strict=True)), record.raw)
            except ROW_ERRORS as error:
                yield reject_from(record.line, record.raw, error)
                continue
            yield self._cdr(record.line, record.raw, mapping)


class AsteriskCsvReader(_HeaderlessCsvReader):
    """Asterisk ``cdr_csv`` ``Master.csv``: headerless, 16 base columns.

    The optional columns follow ``cdr.conf`` ``[csv]``: ``loguniqueid`` (uniqueid),
    ``loguserfield`` (userfield), ``newcdrcolumns`` (peeraccount, linkedid, sequence).
    Left as None, the layout is told from each row's field count (16, 18, 19 and 21 are
    unambiguous); 17 or 20 fields need the options. ``disposition`` decides
    billability: a ``NO ANSWER`` row costs 0 whatever its billsec. Times are written in
    the switch's local time unless ``usegmtime=yes``: pass ``default_tz``. Without
    ``uniqueid`` the call id is a hash of the row (stable across reads).
    """

    format = "asterisk"

    def __init__(
        self,
        source: Source,
        *,
        loguniqueid: bool | None = None,
        loguserfield: bool | None = None,
        newcdrcolumns: bool | None = None,
        **options: Any,
    ) -> None:
        super().__init__(source, **options)
        flags = (loguniqueid, loguserfield, newcdrcolumns)
        self._fixed: tuple[str, ...] | None = None
        if any(f is not None for f in flags):
            cols = list(ASTERISK_BASE_COLUMNS)
            for flag, extra in zip(flags, _ASTERISK_OPTIONAL, strict=True):
                if flag:
                    cols.extend(extra)
            self._fixed = tuple(cols)

    _BY_COUNT: Mapping[int, tuple[str, ...]] = {
        16: ASTERISK_BASE_COLUMNS,
        18: (*ASTERISK_BASE_COLUMNS, "uniqueid", "userfield"),
        19: ASTERISK_BASE_COLUMNS + _ASTERISK_OPTIONAL[2],
        21: ASTERISK_BASE_COLUMNS + ("uniqueid", "userfield") + _ASTERISK_OPTIONAL[2],
    }

    def _columns(self, fields: list[str]) -> Sequence[str] | str:
        if self._fixed is not None:
            if len(fields) == len(self._fixed):
                return self._fixed
            return (
                f"{len(fields)} fields, expected {len(self._fixed)} for the configured "
                "columns (truncated line?)"
            )
        found = self._BY_COUNT.get(len(fields))
        if found is not None:
            return found
        if len(fields) in (17, 20):
            return (
                f"{len(fields)} fields: ambiguous, pass loguniqueid=/loguserfield= as set "
                "in cdr.conf [csv]"
            )
        return f"{len(fields)} fields, expected 16, 18, 19 or 21 (truncated line?)"

    def _mapping(self, row: dict[str, str], raw: str) -> dict[str, Any]:
        if (
            row["accountcode"].strip().lower() == "accountcode"
            and row["src"].strip().lower() == "src"
        ):
            raise ValidationError("header", raw, "no header line: Master.csv has none")
        call_id = row.get("uniqueid") or synthetic_id("asterisk", raw)
        mapping: dict[str, Any] = {
            "call_id": call_id,
            "caller_number": row["src"],
            "destination_number": row["dst"],
            "started_at": row["start"],
            "answered_at": row["answer"],
            "ended_at": row["end"],
            "duration": row["duration"],
            "billsec": row["billsec"],
            "disposition": row["disposition"],
            "tenant": row["accountcode"],
        }
        extra = {k: v for k, v in row.items() if k not in _ASTERISK_MAPPED and v != ""}
        mapping["extra"] = extra
        return mapping


_ASTERISK_MAPPED = frozenset(
    {
        "uniqueid",
        "src",
        "dst",
        "start",
        "answer",
        "end",
        "duration",
        "billsec",
        "disposition",
        "accountcode",
    }
)


class FreeSwitchCsvReader(_HeaderlessCsvReader):
    """FreeSWITCH ``mod_cdr_csv`` output: headerless, columns from a template.

    ``columns`` defaults to the stock "example" template
    (:data:`FREESWITCH_EXAMPLE_TEMPLATE`); pass the variable names of your own template
    otherwise. The disposition is ANSWERED when ``answer_stamp`` is set, else named from
    ``hangup_cause``. FreeSWITCH's own ``direction`` variable is the leg's direction as
    seen by the switch, not the billing direction, so it is not used: pass
    ``direction=`` (default outbound).
    """

    format = "freeswitch-csv"

    def __init__(
        self,
        source: Source,
        *,
        columns: Sequence[str] = FREESWITCH_EXAMPLE_TEMPLATE,
        **options: Any,
    ) -> None:
        super().__init__(source, **options)
        self.columns = tuple(columns)

    def _columns(self, fields: list[str]) -> Sequence[str] | str:
        if len(fields) == len(self.columns):
            return self.columns
        return (
            f"{len(fields)} fields, expected {len(self.columns)} of the template "
            "(truncated line, or pass columns= for your cdr_csv template)"
        )

    def _mapping(self, row: dict[str, str], raw: str) -> dict[str, Any]:
        return _freeswitch_mapping(row, raw, raw_id_prefix="freeswitch")


_FS_MAPPED = {
    "uuid": "call_id",
    "caller_id_number": "caller_number",
    "destination_number": "destination_number",
    "start_stamp": "started_at",
    "answer_stamp": "answered_at",
    "end_stamp": "ended_at",
    "duration": "duration",
    "billsec": "billsec",
    "hangup_cause": "hangup_cause",
    "accountcode": "tenant",
}


def _freeswitch_mapping(row: Mapping[str, Any], raw: str, raw_id_prefix: str) -> dict[str, Any]:
    mapping: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in row.items():
        name = _FS_MAPPED.get(key)
        if name is None:
            if value not in ("", None):
                extra[key] = value
        else:
            mapping[name] = value
    if _blank(mapping.get("call_id")):
        mapping["call_id"] = synthetic_id(raw_id_prefix, raw)
    cause = mapping.get("hangup_cause")
    mapping["disposition"] = freeswitch_disposition(
        not _blank(mapping.get("answered_at")), cause if isinstance(cause, str) else None
    )
    mapping["extra"] = extra
    return mapping


class FreeSwitchJsonReader(_CdrReader):
    """FreeSWITCH ``mod_json_cdr`` records: one JSON document a leg (``a_<uuid>.cdr.json``),
    or many as JSON Lines or an array.

    Values under ``variables`` are URL-decoded (the module's ``encode-values`` default).
    Times come from ``start_uepoch``/``answer_uepoch``/``end_uepoch`` (absolute, UTC) and
    fall back to the ``*_stamp`` local times with ``default_tz``. The dialled number is
    ``destination_number`` of the first ``callflow`` caller profile, or the variable named
    by ``destination_variable``. Unused variables are kept in ``extra["variables"]``.
    ``envelope`` as for :class:`CdrJsonReader`.
    """

    format = "freeswitch-json"

    def __init__(
        self,
        source: Source,
        *,
        destination_variable: str | None = None,
        envelope: Envelope = None,
        **options: Any,
    ) -> None:
        super().__init__(source, **options)
        self.destination_variable = destination_variable
        self.envelope = _check_envelope(envelope)

    def _rows(self, src: LineSource) -> Iterator[Row[CDR]]:
        for item in json_values(src, envelope=self.envelope, is_record=_is_mod_json_cdr):
            if not isinstance(item, JsonValue):
                yield Reject(*item)
                continue
            try:
                mapping = self._mapping(item.value, item.raw)
            except ROW_ERRORS as error:
                yield reject_from(item.line, item.raw, error)
                continue
            yield self._cdr(item.line, item.raw, mapping)

    def _mapping(self, doc: Any, raw: str) -> dict[str, Any]:
        if not isinstance(doc, dict) or not isinstance(doc.get("variables"), dict):
            raise ValidationError(
                "variables", None, "a mod_json_cdr record with a 'variables' object"
            )
        variables = {
            k: unquote(v) if isinstance(v, str) else v for k, v in doc["variables"].items()
        }
        callflow = doc.get("callflow")
        if isinstance(callflow, list):
            callflow = callflow[0] if callflow else {}
        profile = callflow.get("caller_profile", {}) if isinstance(callflow, dict) else {}
        profile = {k: unquote(v) if isinstance(v, str) else v for k, v in profile.items()}
        row: dict[str, Any] = {}
        for key in (
            "uuid",
            "caller_id_number",
            "duration",
            "billsec",
            "hangup_cause",
            "accountcode",
        ):
            value = variables.pop(key, None)
            row[key] = value if not _blank(value) else profile.get(key)
        number = (
            variables.pop(self.destination_variable, None) if self.destination_variable else None
        )
        row["destination_number"] = (
            number
            if number is not None
            else (profile.get("destination_number") or variables.get("destination_number"))
        )
        for stamp in ("start", "answer", "end"):
            when = _uepoch(variables.pop(f"{stamp}_uepoch", None), f"{stamp}_uepoch")
            text = variables.pop(f"{stamp}_stamp", None)
            row[f"{stamp}_stamp"] = when if when is not None else text
        mapping = _freeswitch_mapping(row, raw, raw_id_prefix="freeswitch")
        extra = mapping["extra"]
        for key in ("core-uuid", "switchname"):
            if key in doc:
                extra[key.replace("-", "_")] = doc[key]
        extra["variables"] = variables
        return mapping


def _is_mod_json_cdr(value: dict[str, Any]) -> bool:
    return isinstance(value.get("variables"), dict)


def _check_envelope(envelope: Any) -> Envelope:
    if envelope is None or envelope is False or (isinstance(envelope, str) and envelope):
        return envelope
    raise ValidationError(
        "envelope",
        envelope,
        "None (a whole input that is one object holding the records in a list under "
        "rows, data, items, ... is an API response), False (every object is a record) "
        "or the name of the key that holds the records",
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# datetime's own range, in microseconds since the epoch: years 1 to 9999.
_UEPOCH_RANGE = (
    (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1),
    (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1),
)


def _uepoch(value: Any, field: str) -> datetime | None:
    if _blank(value) or value in ("0", 0):
        return None
    expected = "microseconds since the epoch (a whole number, years 1 to 9999)"
    if isinstance(value, str) and not (value.strip().isascii() and len(value) <= 24):
        raise ValidationError(field, value, expected)
    try:
        micros = int(value)
    except (TypeError, ValueError):
        raise ValidationError(field, value, expected) from None
    if isinstance(value, bool) or not _UEPOCH_RANGE[0] <= micros <= _UEPOCH_RANGE[1]:
        raise ValidationError(field, value, expected)
    # Arithmetic on absolute time: no local clock, no platform time_t limits.
    return _EPOCH + timedelta(microseconds=micros)


# -- tables with named columns -----------------------------------------------------------------


def _norm(name: str) -> str:
    return "_".join("".join(c if c.isalnum() else " " for c in name.strip().lower()).split())


class _MappedReader(_CdrReader):
    """Shared by the CSV and JSON readers of named columns."""

    #: Column names, after ``mapping``, that must be present: each entry is a tuple of
    #: alternatives.
    required: tuple[tuple[str, ...], ...] = (
        ("destination_number", "dst", "to_num", "to_number", "to", "destination"),
        ("started_at", "start", "start_ts", "start_time", "start_stamp", "initiation_time"),
    )
    id_prefix = "cdr"

    def __init__(
        self, source: Source, *, mapping: Mapping[str, str] | None = None, **options: Any
    ) -> None:
        super().__init__(source, **options)
        self.mapping = {_norm(k): v for k, v in (mapping or {}).items()}

    def _rename(self, name: str) -> str:
        key = _norm(name) if isinstance(name, str) else name
        return self.mapping.get(key, key)

    def _missing(self, names: set[str]) -> list[str]:
        return [alts[0] for alts in self.required if not any(a in names for a in alts)]

    def _is_record(self, value: dict[str, Any]) -> bool:
        return not self._missing({self._rename(k) for k in value})

    def _expected(self) -> str:
        return "; ".join(
            " or ".join(alts[:3]) + (" ..." if len(alts) > 3 else "") for alts in self.required
        )

    def _prepare(self, row: dict[str, Any], raw: str) -> dict[str, Any]:
        if not any(
            _blank(row.get(k)) is False for k in ("call_id", "id", "uuid", "call_uuid", "callid")
        ):
            row["call_id"] = synthetic_id(self.id_prefix, raw)
        return row


class CdrCsvReader(_MappedReader):
    """A CSV of CDRs with a header row: column names as the CDR fields or their common
    aliases (``src``, ``dst``, ``from_num``, ``start_ts``, ...); ``mapping`` renames others
    (``{"Called Number": "destination_number"}``). Unknown columns go to ``extra``.

    A header without a dialled-number or a start-time column raises
    :class:`FormatError` naming the expected columns. Rows with more or fewer fields
    than the header are rejected (a truncated or shifted row is never read as if whole).
    A missing call id is replaced by a hash of the row.
    """

    format = "csv"

    def __init__(self, source: Source, *, delimiter: str = ",", **options: Any) -> None:
        super().__init__(source, **options)
        self.delimiter = delimiter

    def _rows(self, src: LineSource) -> Iterator[Row[CDR]]:
        header: list[str] | None = None
        for record in csv_records(src, delimiter=self.delimiter):
            if not isinstance(record, CsvRecord):
                if header is None:
                    raise FormatError(record[0], f"cannot read the header: {record[1]}")
                yield Reject(*record)
                continue
            fields = record.fields
            if not any(f.strip() for f in fields):
                yield None
                continue
            if header is None:
                if len(fields) > MAX_COLUMNS:
                    raise FormatError(
                        record.line,
                        f"a header of {len(fields):,} columns, at most {MAX_COLUMNS:,}: "
                        "not a CDR file?",
                        field="header",
                    )
                header = [self._rename(f) for f in fields]
                missing = self._missing(set(header))
                if missing:
                    raise FormatError(
                        record.line,
                        f"the header lacks {', '.join(missing)}: expected columns "
                        f"{self._expected()}; found {', '.join(fields)}"
                        + (
                            ""
                            if self.delimiter != "," or len(fields) > 1
                            else " (a ';' or tab separated file? pass delimiter=)"
                        ),
                        field="header",
                    )
                dupes = [h for h, n in Counter(header).items() if n > 1]  # linear
                if dupes:
                    raise FormatError(
                        record.line,
                        f"duplicate columns: {', '.join(sorted(dupes))}",
                        field="header",
                    )
                yield None
                continue
            if len(fields) != len(header):
                if len(fields) > len(header) and not any(f.strip() for f in fields[len(header) :]):
                    fields = fields[: len(header)]  # spreadsheets pad rows with empty cells
                else:
                    yield Reject(
                        record.line,
                        f"{len(fields)} fields, the header has {len(header)}"
                        + (" (truncated line?)" if len(fields) < len(header) else ""),
                        record.raw,
                    )
                    continue
            row = self._prepare(dict(zip(header, fields, strict=True)), record.raw)
            extra = row.get("extra")
            if isinstance(extra, str):
                # Our own CSV writer stores extra as JSON text: read it back as a mapping.
                try:
                    row["extra"] = loads_bounded(extra) if extra.strip() else None
                except JsonLimit as error:
                    yield Reject(record.line, f"extra: {error.reason}", record.raw, "extra")
                    continue
                except ValueError:
                    yield Reject(record.line, "extra: not a JSON object", record.raw, "extra")
                    continue
            yield self._cdr(record.line, record.raw, row)
        if header is None:
            raise FormatError(
                src.line, "the input is empty: expected a header line", field="header"
            )


class CdrJsonReader(_MappedReader):
    """CDRs as JSON: JSON Lines, an array, one object, or an API response — the whole
    input one object holding them in a list under ``rows``/``objects``/``data``/... (all
    streamed). A JSON Lines line is always one record, whatever lists it holds; so is a
    whole input that has the required keys itself. ``envelope=False`` reads every object
    as a record, ``envelope="key"`` names the key of an API response. Keys as for
    :class:`CdrCsvReader`; ``mapping`` renames others. Numbers are read as exact
    decimals; a value nested deeper than 64 levels or a number of more than 40 digits
    rejects its record. If the first record lacks the required keys the input is refused
    (wrong format); later ones are rejected.
    """

    format = "json"

    def __init__(self, source: Source, *, envelope: Envelope = None, **options: Any) -> None:
        super().__init__(source, **options)
        self.envelope = _check_envelope(envelope)

    def _rows(self, src: LineSource) -> Iterator[Row[CDR]]:
        first = True
        for item in json_values(src, envelope=self.envelope, is_record=self._is_record):
            if not isinstance(item, JsonValue):
                yield Reject(*item)
                continue
            value = item.value
            if not isinstance(value, dict):
                yield Reject(
                    item.line, f"expected a JSON object, found {type(value).__name__}", item.raw
                )
                continue
            row = {self._rename(k): v for k, v in value.items()}
            if first:
                first = False
                missing = self._missing(set(row))
                if missing:
                    raise FormatError(
                        item.line,
                        f"the first record lacks {', '.join(missing)}: expected keys "
                        f"{self._expected()}; found {', '.join(map(str, value))}",
                        field="header",
                    )
            try:
                row = self._convert(self._prepare(row, item.raw))
            except ROW_ERRORS as error:
                yield reject_from(item.line, item.raw, error)
                continue
            yield self._cdr(item.line, item.raw, row)

    def _convert(self, row: dict[str, Any]) -> dict[str, Any]:
        return row


class CallCdrReader(_MappedReader):
    """The ``call_cdr`` table shape (:data:`CALL_CDR_COLUMNS`: epoch-millisecond
    ``start_ts``/``answer_ts``/``end_ts``, ``answered``, ``cost_micros``), as CSV with a
    header or as JSON (told from the first character)."""

    format = "call-cdr"
    default_epoch_unit = "ms"
    required = (("call_id",), ("to_num", "destination_number"), ("start_ts", "started_at"))

    def __init__(self, source: Source, *, envelope: Envelope = None, **options: Any) -> None:
        super().__init__(source, **options)
        self.envelope = _check_envelope(envelope)

    def _rows(self, src: LineSource) -> Iterator[Row[CDR]]:
        inner: _MappedReader
        if _looks_json(src):
            inner = CdrJsonReader(io.StringIO(), envelope=self.envelope)
        else:
            inner = CdrCsvReader(io.StringIO())
        inner.required = self.required
        inner.mapping = self.mapping
        inner.default_tz, inner.direction = self.default_tz, self.direction
        inner.decimal_separator = self.decimal_separator
        inner.epoch_unit, inner.tzinfos = self.epoch_unit, self.tzinfos
        for row in inner._rows(src):
            self._row_line = inner._row_line
            yield row


class AdminApiReader(CdrJsonReader):
    """The tenant admin API's JSON CDRs: ``caller_number``, ``destination_number``,
    ``direction``, ``disposition``, ``duration``, ``billable_duration``, ``cost`` (a decimal
    in currency units), ``started_at``, ``ended_at``; a list response (``{"rows": [...]}``,
    ``{"data": [...]}``) or JSON Lines. Without an ``id``/``call_id`` the call id is a hash
    of the record."""

    format = "admin-api"
    id_prefix = "api"
    required = (("destination_number",), ("started_at",))


class PlatformJsonReader(CdrJsonReader):
    """A voice platform's CDR JSON (Plivo-like: ``call_uuid``, ``from_number``,
    ``to_number``, ``initiation_time``, ``answer_time``, ``end_time``, ``bill_duration``,
    ``call_duration``, ``call_direction``, ``total_amount``). ``total_amount`` becomes the
    CDR's cost; a ``call_status``/``call_state`` such as ``busy`` or ``no-answer`` its
    disposition; every other field (``billed_duration``, ``total_rate``, ``hangup_cause_code``,
    ``codec``, ``mos``, ``jitter``, ...) is kept in ``extra``. A single call, a list response
    (``objects``) or JSON Lines."""

    format = "platform-json"
    id_prefix = "platform"
    required = (
        ("to_number", "destination_number", "to"),
        ("initiation_time", "started_at", "start_time"),
    )

    def _convert(self, row: dict[str, Any]) -> dict[str, Any]:
        if "total_amount" in row and "cost" not in row:
            row["cost"] = row.pop("total_amount")
        if "hangup_cause_name" in row and "hangup_cause" not in row:
            row["hangup_cause"] = row.pop("hangup_cause_name")
        if "to" in row and "destination_number" not in row and "to_number" not in row:
            row["destination_number"] = row.pop("to")
        if "from" in row and "from_number" not in row:
            row["from_number"] = row.pop("from")
        for key in ("call_status", "call_state", "status"):
            status = row.get(key)
            if isinstance(status, str):
                found = _PLATFORM_STATUS.get(
                    status.strip().lower().replace("-", "_").replace(" ", "_")
                )
                if found is not None and _blank(row.get("disposition")):
                    row["disposition"] = found
                break
        return row


_PLATFORM_STATUS = {
    "busy": Disposition.BUSY,
    "no_answer": Disposition.NO_ANSWER,
    "noanswer": Disposition.NO_ANSWER,
    "failed": Disposition.FAILED,
    "canceled": Disposition.CANCELLED,
    "cancelled": Disposition.CANCELLED,
    "congestion": Disposition.CONGESTION,
    "rejected": Disposition.FAILED,
}


def _looks_json(src: LineSource) -> bool:
    return src.first_char() in ("{", "[")
