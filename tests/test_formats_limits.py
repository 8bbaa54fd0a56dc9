"""Odd input through the readers: bounded work, no record lost, one row never stops a
file, only the library's errors escape, and CSV output a spreadsheet cannot run."""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import IO, Any

import pytest

from cdrrating.errors import ValidationError
from cdrrating.formats import (
    CDR_FORMATS,
    CdrCsvReader,
    CdrJsonReader,
    FormatError,
    FreeSwitchJsonReader,
    RateCsvReader,
    read_cdrs,
    read_rates,
    write_cdrs,
    write_records,
    write_rejects,
)
from cdrrating.formats._source import (
    MAX_COLUMNS,
    MAX_JSON_DEPTH,
    MAX_LINE_CHARS,
    MAX_NUMBER_DIGITS,
)

GOOD = {"call_id": "g1", "destination_number": "44", "started_at": "2026-09-23T10:00:00Z"}
HEADER = "call_id,destination_number,started_at\n"


def _line(**fields: Any) -> str:
    return json.dumps({**GOOD, **fields}) + "\n"


def _nested(depth: int) -> str:
    return '{"a": ' * (depth - 1) + "{}" + "}" * (depth - 1)


def _read(text: str, fmt: str = "json", **options: Any) -> tuple[list[str], Any]:
    reader = read_cdrs(io.StringIO(text), fmt, **options)
    ids = [c.call_id for c in reader]
    return ids, reader


# -- unbounded work ----------------------------------------------------------------------------


def test_a_header_of_sixteen_thousand_columns_is_refused_at_once() -> None:
    header = ",".join(f"c{i}" for i in range(16_000)) + ",destination_number,started_at\n"
    with pytest.raises(FormatError, match="16,002 columns, at most 4,096") as info:
        list(CdrCsvReader(io.StringIO(header)))
    assert info.value.field == "header"
    with pytest.raises(FormatError, match="columns before the header"):
        list(RateCsvReader(io.StringIO(",".join(["x"] * (MAX_COLUMNS + 1)))))


def test_the_widest_header_allowed_reads_and_its_duplicates_are_named() -> None:
    names = [f"c{i}" for i in range(MAX_COLUMNS - 2)]
    text = ",".join([*names, "destination_number", "started_at"]) + "\n"
    row = ",".join(["x"] * (MAX_COLUMNS - 2) + ["44", "2026-09-23T10:00:00Z"]) + "\n"
    (cdr,) = list(CdrCsvReader(io.StringIO(text + row)))
    assert cdr.extra["c4093"] == "x"
    dupes = ",".join([*names[:-2], "c7", "c9", "destination_number", "started_at"]) + "\n"
    with pytest.raises(FormatError, match="duplicate columns: c7, c9"):
        list(CdrCsvReader(io.StringIO(dupes)))


def test_a_field_past_the_csv_field_limit_is_one_rejected_row() -> None:
    big = "x" * (csv.field_size_limit() + 1)
    text = HEADER + f'c1,44,"{big}"\n' + "c2,44,2026-09-23T10:00:00Z\n"
    ids, reader = _read(text, "csv")
    assert ids == ["c2"]
    assert (
        reader.rejects[0].line == 2 and "field larger than field limit" in reader.rejects[0].reason
    )


def test_a_record_of_many_quoted_lines_is_cut_off_after_a_bounded_size() -> None:
    # Each quoted field is under csv's field limit; together they pass MAX_LINE_CHARS.
    field = '"' + ("y" * 99 + "\n") * 1_000 + '"'
    count = MAX_LINE_CHARS // len(field) + 2
    text = HEADER + "c1,44," + ",".join([field] * count) + "\n" + "c2,44,2026-09-23T10:00:00Z\n"
    ids, reader = _read(text, "csv")
    first = reader.rejects[0]
    assert first.line == 2 and "a record longer than" in first.reason
    assert len(first.raw) < 10_000  # the reject keeps the start, not megabytes
    # What follows the cut is read as rows of its own: each read or reported.
    assert reader.complete and reader.summary.rows == len(reader.rejects) + len(ids)


@pytest.mark.parametrize("where", ["jsonl", "array", "envelope", "multiline-object"])
def test_json_numbers_and_nesting_past_the_bounds_are_row_rejections(where: str) -> None:
    bad = [
        json.dumps({**GOOD, "call_id": "b1"})[:-1] + ', "n": ' + "9" * 5_000 + "}\n",
        _line(call_id="b2", extra={"n": 10**MAX_NUMBER_DIGITS}),  # 41 digits
        json.dumps({**GOOD, "call_id": "b3", "x": json.loads(_nested(MAX_JSON_DEPTH))}) + "\n",
        json.dumps({**GOOD, "call_id": "b4"})[:-1] + ', "x": ' + _nested(100_000) + "}\n",
    ]
    ok = [
        _line(call_id="k1", extra={"n": 10**MAX_NUMBER_DIGITS - 1}),
        json.dumps({**GOOD, "call_id": "k2", "x": json.loads(_nested(MAX_JSON_DEPTH - 1))}) + "\n",
    ]
    lines = [ok[0], *bad, ok[1]]
    if where == "jsonl":
        text = "".join(lines)
    elif where == "array":
        text = "[\n" + ",\n".join(line.rstrip("\n") for line in lines) + "\n]\n"
    elif where == "envelope":
        text = '{"ok": true,\n"rows": [\n' + ",\n".join(x.rstrip("\n") for x in lines) + "\n]}\n"
    else:  # one record spread over lines, its field past a bound
        text = '{"call_id": "m1",\n "destination_number": "44",\n "x": ' + _nested(100_000) + "}\n"
        ids, reader = _read(text)
        assert ids == [] and len(reader.rejects) == 1
        assert "nested deeper than" in reader.rejects[0].reason
        return
    ids, reader = _read(text)
    assert ids == ["k1", "k2"]
    reasons = [r.reason for r in reader.rejects]
    assert len(reasons) == 4
    assert [("digits" in r, "nested" in r) for r in reasons] == [
        (True, False),
        (True, False),
        (False, True),
        (False, True),
    ]
    assert all(len(r.raw) < 10_000 for r in reader.rejects)
    assert [r.line for r in reader.rejects] == sorted(r.line for r in reader.rejects)


def test_a_json_document_that_cannot_be_read_names_its_line() -> None:
    with pytest.raises(FormatError, match=r"^line 3: invalid JSON.*truncated"):
        list(CdrJsonReader(io.StringIO("[\n" + json.dumps(GOOD) + ",\n" + "[" * 100_000)))


def test_an_extra_cell_nested_too_deep_is_a_rejected_row() -> None:
    text = "call_id,destination_number,started_at,extra\n"
    text += f'c1,44,2026-09-23T10:00:00Z,"{_nested(10_000).replace(chr(34), chr(34) * 2)}"\n'
    text += "c2,44,2026-09-23T10:00:00Z,\n"
    ids, reader = _read(text, "csv")
    assert ids == ["c2"] and "extra: JSON nested deeper" in reader.rejects[0].reason


# -- records that vanish -----------------------------------------------------------------------


@pytest.mark.parametrize("key", ["data", "items", "rows", "objects", "results", "calls"])
def test_a_json_lines_record_with_an_envelope_like_list_is_a_record(key: str) -> None:
    text = _line(call_id="a") + _line(call_id="b", **{key: [1, 2]}) + _line(call_id="c")
    ids, reader = _read(text)
    assert ids == ["a", "b", "c"] and reader.ok
    # ... also on the first line, and when its list holds objects.
    text = _line(call_id="a", **{key: [{"sku": 1}]}) + _line(call_id="b")
    assert _read(text)[0] == ["a", "b"]


def test_a_whole_input_that_is_one_record_with_a_list_is_a_record() -> None:
    ids, reader = _read(_line(call_id="only", items=[{"sku": 1}]))
    assert ids == ["only"] and reader.ok
    assert _read(json.dumps({"ok": True, "rows": [GOOD]}))[0] == ["g1"]
    assert _read(json.dumps({"ok": True, "rows": []}))[0] == []


def test_envelope_option() -> None:
    response = json.dumps({"next": None, "cdr_list": [GOOD, {**GOOD, "call_id": "g2"}]})
    assert _read(response, envelope="cdr_list")[0] == ["g1", "g2"]
    with pytest.raises(FormatError, match="first record lacks"):
        list(CdrJsonReader(io.StringIO(response)))  # not a known key: one (bad) record
    record = json.dumps({**GOOD, "rows": [{"leg": 1}]})
    assert _read(record, envelope=False)[0] == ["g1"]
    bads: tuple[Any, ...] = (True, "", 3)
    for bad in bads:
        with pytest.raises(ValidationError, match="envelope"):
            CdrJsonReader(io.StringIO(""), envelope=bad)


def test_a_multiline_envelope_whose_own_fields_look_like_a_record_is_reported() -> None:
    text = (
        '{"call_id": "outer", "destination_number": "44",\n'
        ' "started_at": "2026-09-23T10:00:00Z",\n'
        ' "items": [\n' + json.dumps(GOOD) + "\n]}\n"
    )
    ids, reader = _read(text)
    assert ids == ["g1"]
    (reject,) = reader.rejects
    assert "envelope=False" in reject.reason and '"outer"' in reject.raw
    assert _read(text, envelope=False)[0] == ["outer"]


def test_freeswitch_json_lines_with_a_list_field_keep_every_leg() -> None:
    leg: dict[str, Any] = {"variables": {"uuid": "u1", "start_stamp": "2026-09-23 10:00:00"}}
    leg["callflow"] = [{"caller_profile": {"destination_number": "44"}}]
    text = json.dumps({**leg, "data": []}) + "\n" + json.dumps(leg).replace("u1", "u2") + "\n"
    reader = FreeSwitchJsonReader(io.StringIO(text))
    assert [c.call_id for c in reader] == ["u1", "u2"]


def test_a_scalar_json_line_is_a_rejected_row_not_the_end_of_the_file() -> None:
    ids, reader = _read(_line(call_id="a") + "42\n" + '"text"\n' + _line(call_id="b"))
    assert ids == ["a", "b"]
    assert [(r.line, r.reason) for r in reader.rejects] == [
        (2, "expected a JSON object, found int"),
        (3, "expected a JSON object, found str"),
    ]


# -- one row never aborts a file ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "bad"),
    [
        ("json", _line(call_id="x", started_at=10**20)),
        ("json", _line(call_id="x", billsec="Infinity")),
        ("json", _line(call_id="x", billsec="1e999999999")),
        ("json", _line(call_id="x", started_at="9999-12-31T23:59:59-01:00")),
        ("json", _line(call_id="x", started_at=[1])),
        ("csv", "x,44,99999999999999999999\n"),
        ("csv", "x,44,0001-01-01T00:00:00+01:00\n"),
        ("freeswitch-json", json.dumps({"variables": {"start_uepoch": str(10**30)}}) + "\n"),
        ("freeswitch-json", json.dumps({"variables": {"start_uepoch": "-" + "9" * 20}}) + "\n"),
        ("freeswitch-json", json.dumps({"variables": {"start_uepoch": "١٢٣"}}) + "\n"),
    ],
)
def test_a_bad_row_is_rejected_with_its_line_and_the_next_one_read(fmt: str, bad: str) -> None:
    if fmt == "csv":
        text = HEADER + bad + "g2,44,2026-09-23T10:00:00Z\n"
    elif fmt == "json":
        text = _line(call_id="g1") + bad + _line(call_id="g2")
    else:
        leg = {
            "variables": {"uuid": "g2", "start_stamp": "2026-09-23 10:00:00"},
            "callflow": [{"caller_profile": {"destination_number": "44"}}],
        }
        text = bad + json.dumps(leg) + "\n"
    ids, reader = _read(text, fmt)
    assert ids[-1] == "g2"
    (reject,) = reader.rejects
    assert reject.line == (1 if fmt == "freeswitch-json" else 2)
    assert reject.reason


# -- file-level problems: the library's errors, naming the encoding ----------------------------


def test_an_input_that_cannot_be_opened_is_a_format_error(tmp_path: Path) -> None:
    for path in (tmp_path / "missing.csv", tmp_path):
        with pytest.raises(FormatError, match="cannot open") as info:
            list(read_cdrs(path))
        assert isinstance(info.value, ValidationError) and str(path) in str(info.value)


def test_an_unknown_encoding_is_refused_when_the_reader_is_made() -> None:
    for fmt in CDR_FORMATS:
        with pytest.raises(ValidationError, match="encoding: got 'utf-9'"):
            read_cdrs(io.BytesIO(b""), fmt, encoding="utf-9")


@pytest.mark.parametrize("encoding", ["utf-8", "ascii", "utf-16-le"])
def test_a_decoding_error_names_the_encoding_and_the_line(encoding: str) -> None:
    good = (HEADER + "c1,44,2026-09-23T10:00:00Z\n").encode(encoding)
    bad = b"\xff\xdc" if encoding == "utf-16-le" else b"c2,44,\xff\n"
    with pytest.raises(FormatError) as info:
        list(read_cdrs(io.BytesIO(good + bad), "csv", encoding=encoding))
    # Wide encodings are decoded ahead in blocks: the line is where the block starts.
    assert str(info.value).startswith("line 1:" if encoding == "utf-16-le" else "line 3:")
    assert encoding.replace("-", "_") in str(info.value).replace("-", "_")
    assert info.value.field == "encoding"


def test_a_text_stream_names_its_own_encoding() -> None:
    stream = io.TextIOWrapper(io.BytesIO(HEADER.encode() + b"\xff\n"), encoding="utf-8")
    with pytest.raises(FormatError, match=r"not valid utf-8 .* at or after this line"):
        list(read_cdrs(stream, "csv"))


def test_epoch_unit_and_tzinfos_reach_the_row_parser() -> None:
    text = "call_id,destination_number,started_at\nc1,44,1745316000\n"
    ids, reader = _read(text, "csv")
    assert ids == [] and reader.rejects[0].field == "started_at"  # 10 digits: ambiguous
    (cdr,) = list(read_cdrs(io.StringIO(text), "csv", epoch_unit="s"))
    assert cdr.started_at.isoformat() == "2025-04-22T10:00:00+00:00"
    text = "call_id,destination_number,started_at\nc1,44,2024-03-04 10:00 EST\n"
    assert _read(text, "csv")[0] == []
    (cdr,) = list(read_cdrs(io.StringIO(text), "csv", tzinfos={"EST": "America/New_York"}))
    assert cdr.started_at.utcoffset() is not None
    assert cdr.started_at.utcoffset().total_seconds() == -5 * 3600  # type: ignore[union-attr]
    with pytest.raises(ValidationError, match="epoch_unit"):
        read_cdrs(io.StringIO(text), "csv", epoch_unit="minutes")
    with pytest.raises(ValidationError, match="default_tz"):
        read_cdrs(io.StringIO(text), "csv", default_tz="Mars/Olympus")


# -- logging -----------------------------------------------------------------------------------


def test_rejects_are_logged_and_the_logger_is_silent_by_default(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("cdrrating.formats")
    assert logger.handlers == []
    with caplog.at_level(logging.DEBUG, logger="cdrrating.formats"):
        _read(HEADER + "c1,44,never\n" + "c2,44,2026-09-23T10:00:00Z\n", "csv")
    records = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == logger.name]
    assert records[0][0] == logging.DEBUG and "line 2 rejected: started_at" in records[0][1]
    assert records[-1][0] == logging.INFO and "1 rejected" in records[-1][1]


# -- spreadsheet-safe CSV ----------------------------------------------------------------------


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r", "\n"])
def test_spreadsheet_safe_quotes_every_formula_start(start: str) -> None:
    value = start + "cmd|' /C calc'!A0"
    out = io.StringIO(newline="")
    write_records([{start + "h": value, "n": -5, "ok": "44"}], out, spreadsheet_safe=True)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows == [["'" + start + "h", "n", "ok"], ["'" + value, "-5", "44"]]
    raw = io.StringIO(newline="")
    write_records([{"v": value}], raw)  # off by default: exact
    assert list(csv.reader(io.StringIO(raw.getvalue())))[1] == [value]


def test_spreadsheet_safe_cdrs_and_rejects() -> None:
    _, reader = _read(HEADER + "=1+1,+4420,never\n" + "c2,+4420,2026-09-23T10:00:00Z\n", "csv")
    out = io.StringIO(newline="")
    write_cdrs(
        list(read_cdrs(io.StringIO(HEADER + "c2,+4420,2026-09-23T10:00:00Z\n"))),
        out,
        spreadsheet_safe=True,
    )
    assert ",'+4420," in out.getvalue()
    rejects = io.StringIO(newline="")
    write_rejects(reader.rejects, rejects, spreadsheet_safe=True)
    assert "'=1+1" in rejects.getvalue()
    reject_file = io.StringIO(newline="")
    list(
        read_cdrs(
            io.StringIO(HEADER + "=1+1,44,never\n"),
            "csv",
            reject_file=reject_file,
            rejects_spreadsheet_safe=True,
        )
    )
    assert '"\'=1+1,44,never"' in reject_file.getvalue()


@pytest.mark.parametrize("binary", [True, False])
def test_a_rate_deck_line_of_megabytes_is_reported_before_and_after_the_header(
    binary: bool,
) -> None:
    long = "x" * (MAX_LINE_CHARS + 10) + "\n"

    def source(text: str) -> IO[Any]:
        return io.BytesIO(text.encode()) if binary else io.StringIO(text)

    deck = "prefix,rate,destination\n44,0.01,UK\n"
    # Cut out while the separator is being sniffed, it is still reported, not skipped.
    with pytest.raises(FormatError, match="line 1: cannot read the header: line 1 is longer"):
        list(read_rates(source(long + deck), "notice"))
    reader = read_rates(source(deck + long + "49,0.02,DE\n"), "notice")
    assert [r.prefix for r in reader] == ["44", "49"]
    assert [(r.line, "longer than" in r.reason) for r in reader.rejects] == [(3, True)]


def test_an_output_path_that_cannot_be_written_is_a_validation_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"out: got .*a path that can be written"):
        write_records([{"a": 1}], tmp_path / "no" / "such" / "dir.csv")
    with pytest.raises(ValidationError, match="reject_file"):
        list(read_cdrs(io.StringIO(HEADER), "csv", reject_file=tmp_path / "no" / "x.csv"))


@pytest.mark.parametrize(
    ("fmt", "text", "lines"),
    [
        (
            "csv",
            HEADER + 'c1,44,"2026-09-23T10:00:00Z"\n\nc2,"4\n4",2026-09-23T10:00:00Z\n',
            [2, 4],
        ),
        ("json", "[\n" + json.dumps(GOOD) + ",\n\n" + json.dumps(GOOD) + "\n]", [2, 4]),
        ("call-cdr", "call_id,to_num,start_ts\nc1,44,1790157600000\nc2,44,1790157600000\n", [2, 3]),
    ],
)
def test_line_is_where_the_record_last_yielded_starts(
    fmt: str, text: str, lines: list[int]
) -> None:
    reader = read_cdrs(io.StringIO(text), fmt)
    assert reader.line is None
    assert [reader.line for _ in reader] == lines
    rates = read_rates(io.StringIO("prefix,rate\n44,0.01\n\n49,0.02\n"), "csv")
    assert [rates.line for _ in rates] == [2, 4]


def test_a_json_lines_line_past_a_bound_loses_only_what_is_past_it() -> None:
    big = "9" * 60
    array_line = f"[null, {big}, " + json.dumps({**GOOD, "call_id": "in-array"}) + "]\n"
    broken = '{"call_id": "d", "a": ' + "[" * 5_000 + "\n"  # deep and never closed
    ids, reader = _read(_line(call_id="a") + array_line + broken + _line(call_id="z"))
    assert ids == ["a", "in-array", "z"]
    assert [(r.line, r.reason) for r in reader.rejects] == [
        (2, "expected a JSON object, found NoneType"),
        (2, "a JSON number of more than 40 digits"),
        (3, "JSON nested deeper than 64 levels, in a line that is not complete JSON"),
    ]
    response = '{"ok": true, "rows": [' + json.dumps(GOOD) + ', {"x": ' + big + "}]}"
    ids, reader = _read(response)
    assert ids == ["g1"] and [r.reason for r in reader.rejects] == [
        "a JSON number of more than 40 digits"
    ]


@pytest.mark.parametrize("binary", [True, False])
def test_a_json_lines_line_of_megabytes_is_one_rejected_row(binary: bool) -> None:
    long = '{"x": "' + "y" * (3 * MAX_LINE_CHARS) + '"}\n'
    text = _line(call_id="a") + long + _line(call_id="b")
    reader = read_cdrs(io.BytesIO(text.encode()) if binary else io.StringIO(text), "json")
    assert [c.call_id for c in reader] == ["a", "b"]
    (reject,) = reader.rejects
    assert reject.line == 2 and "a line longer than" in reject.reason
    assert len(reject.raw) < 10_000
