"""Bad input: a clear error or correct streaming, never a silent partial result."""

from __future__ import annotations

import functools
import io
import json
import tracemalloc
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from cdrrating import CDR
from cdrrating.formats import (
    AsteriskCsvReader,
    CdrCsvReader,
    CdrJsonReader,
    FormatError,
    RateCsvReader,
    read_cdrs,
)
from cdrrating.formats._source import MAX_LINE_CHARS, LineSource, csv_records

FIXTURES = Path(__file__).parent / "fixtures" / "formats"
HEADER = "call_id,destination_number,started_at,billsec,caller_number\n"


def _row(i: int) -> str:
    return f"c{i},4420794{i % 100000:05d},2026-09-23T10:00:00+00:00,{i % 600},+4930{i % 997}\n"


def test_wrong_header_names_the_expected_columns() -> None:
    text = "id,number,when\nc1,44,2026-09-23\n"
    with pytest.raises(FormatError) as info:
        list(CdrCsvReader(io.StringIO(text)))
    message = str(info.value)
    assert message.startswith("line 1: the header lacks destination_number, started_at")
    assert "found id, number, when" in message
    assert info.value.field == "header"


def test_semicolon_file_read_as_comma_hints_at_the_delimiter() -> None:
    with pytest.raises(FormatError, match="pass delimiter="):
        list(CdrCsvReader(io.StringIO("call_id;destination_number;started_at\n")))
    cdrs = list(
        CdrCsvReader(
            io.StringIO("call_id;destination_number;started_at\nc;44;2026-09-23\n"), delimiter=";"
        )
    )
    assert cdrs[0].destination_number == "44"


def test_empty_file_is_an_error_not_zero_records() -> None:
    with pytest.raises(FormatError, match="empty"):
        list(CdrCsvReader(io.BytesIO(b"")))


def test_wrong_encoding_names_the_line_and_the_option(tmp_path: Path) -> None:
    path = tmp_path / "cp1252.csv"
    path.write_bytes(
        (HEADER + _row(1) + "c2,44,2026-09-23T10:00:00+00:00,5,Caf\u00e9\n").encode("cp1252")
    )
    reader = CdrCsvReader(path)
    with pytest.raises(FormatError) as info:
        list(reader)
    assert str(info.value).startswith("line 3: byte 0xe9")
    assert "encoding='cp1252'" in str(info.value)
    assert not reader.complete and reader.records == 1  # what was read is counted, and incomplete
    cdrs = list(CdrCsvReader(path, encoding="cp1252"))
    assert cdrs[1].caller_number == "Caf\u00e9"


def test_utf16_without_bom_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "utf16.csv"
    path.write_bytes((HEADER + _row(1)).encode("utf-16-le"))
    with pytest.raises(FormatError, match="utf-16-le"):
        list(CdrCsvReader(path))
    assert len(list(CdrCsvReader(path, encoding="utf-16-le"))) == 1


@pytest.mark.parametrize(("bom", "codec"), [(b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le")])
def test_byte_order_mark(tmp_path: Path, bom: bytes, codec: str) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(bom + (HEADER + _row(1) + _row(2)).encode(codec))
    reader = CdrCsvReader(path)
    cdrs = list(reader)
    assert [c.call_id for c in cdrs] == ["c1", "c2"]  # the BOM did not stick to "call_id"
    assert reader.ok


def test_bom_in_the_middle_of_concatenated_exports() -> None:
    data = ("\ufeff" + HEADER + _row(1) + "\ufeff" + _row(2)).encode()
    assert len(list(CdrCsvReader(io.BytesIO(data)))) == 2


def test_mixed_line_endings() -> None:
    rows = [_row(i).rstrip("\n") for i in range(4)]
    data = (
        HEADER.rstrip("\n")
        + "\r\n"
        + rows[0]
        + "\n"
        + rows[1]
        + "\r"
        + rows[2]
        + "\r\n"
        + "bad\r"
        + rows[3]
    ).encode()
    reader = CdrCsvReader(io.BytesIO(data))
    assert [c.call_id for c in reader] == ["c0", "c1", "c2", "c3"]
    assert [(r.line, r.raw) for r in reader.rejects] == [(5, "bad")]


def test_quoted_line_breaks_keep_line_numbers_right() -> None:
    text = HEADER + 'c1,44,2026-09-23T10:00:00Z,5,"two\nlines"\n' + "c2,44,nope,5,1\n"
    reader = CdrCsvReader(io.StringIO(text))
    assert [c.caller_number for c in reader] == ["two\nlines"]
    assert reader.rejects[0].line == 4


def test_truncated_last_line_of_a_switch_file_is_rejected() -> None:
    text = (FIXTURES / "asterisk_master.csv").read_text()
    cut = text[: text.rindex('"ANSWERED"') + 4]  # the switch was still writing
    reader = AsteriskCsvReader(io.StringIO(cut))
    assert len(list(reader)) == 3
    (reject,) = reader.rejects
    assert reject.line == 4
    assert "ends inside a quoted field" in reject.reason


def test_unterminated_last_line_of_a_switch_file_is_rejected_unless_allowed() -> None:
    text = (FIXTURES / "asterisk_master.csv").read_text().rstrip("\n")
    reader = AsteriskCsvReader(io.StringIO(text))
    assert len(list(reader)) == 3
    assert "no line ending" in reader.rejects[0].reason
    assert len(list(AsteriskCsvReader(io.StringIO(text), require_final_newline=False))) == 4


def test_truncated_last_line_with_missing_fields_is_rejected() -> None:
    reader = CdrCsvReader(io.StringIO(HEADER + _row(1) + "c2,4420,2026-09-23T10:0"))
    assert len(list(reader)) == 1
    assert reader.rejects[0].line == 3
    assert "truncated" in reader.rejects[0].reason


def test_truncated_json_lines_last_line_is_rejected() -> None:
    good = json.dumps(
        {"call_id": "j1", "destination_number": "44", "started_at": "2026-09-23T10:00:00Z"}
    )
    reader = CdrJsonReader(io.StringIO(good + "\n" + good.replace("j1", "j2") + "\n" + good[:30]))
    assert len(list(reader)) == 2
    assert reader.rejects[0].line == 3
    assert "truncated" in reader.rejects[0].reason


def test_truncated_json_array_is_an_error_not_a_short_list() -> None:
    good = json.dumps(
        {"call_id": "j1", "destination_number": "44", "started_at": "2026-09-23T10:00:00Z"}
    )
    text = "[\n" + good + ",\n" + good[:25]
    reader = CdrJsonReader(io.StringIO(text))
    got: list[CDR] = []
    with pytest.raises(FormatError, match=r"line 3: invalid JSON.*truncated"):
        got.extend(reader)
    assert len(got) == 1 and not reader.complete


@pytest.mark.parametrize("binary", [True, False])
def test_a_line_of_megabytes_is_one_rejected_row(binary: bool) -> None:
    # It used to stop the whole file; it is one bad row, skipped in bounded memory.
    text = HEADER + _row(1) + "x" * (MAX_LINE_CHARS + 10) + "\n" + _row(2)
    reader = CdrCsvReader(io.BytesIO(text.encode()) if binary else io.StringIO(text))
    assert [c.call_id for c in reader] == ["c1", "c2"]
    (reject,) = reader.rejects
    assert reject.line == 3 and "longer than" in reject.reason
    assert len(reject.raw) < 10_000 and reject.raw.endswith("characters in all)")


def test_a_header_line_of_megabytes_is_refused() -> None:
    data = b"x" * (MAX_LINE_CHARS + 10)
    with pytest.raises(FormatError, match="line 1: cannot read the header: line 1 is longer"):
        list(CdrCsvReader(io.BytesIO(data)))


def test_reject_file_strict_and_max_rejects(tmp_path: Path) -> None:
    text = HEADER + _row(1) + "c2,44,never,5,1\n" + "c3,44\n"
    out = tmp_path / "rejects.csv"
    reader = CdrCsvReader(io.StringIO(text), reject_file=out)
    assert len(list(reader)) == 1
    written = out.read_bytes().decode()
    assert written.startswith("source,line,field,reason,raw\r\n")
    assert ",3,started_at," in written and ",4,," in written
    assert written.count("\r\n") == 3
    assert str(reader.summary).endswith("1 records from 3 rows, 2 rejected, 1 skipped")
    with pytest.raises(FormatError, match="line 3: started_at"):
        list(CdrCsvReader(io.StringIO(text), strict=True))
    with pytest.raises(FormatError, match="more than 1 rows rejected"):
        list(CdrCsvReader(io.StringIO(text), max_rejects=1))


def test_summary_says_when_reading_stopped_early() -> None:
    reader = CdrCsvReader(io.StringIO(HEADER + _row(1) + _row(2)))
    next(iter(reader))
    assert not reader.summary.complete and "NOT read to the end" in str(reader.summary)
    with pytest.raises(RuntimeError, match="once"):
        iter(reader)


def _big_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write(HEADER)
        for i in range(rows):
            f.write(_row(i))


def _consume(it: Iterator[object]) -> int:
    n = 0
    for _ in it:
        n += 1
    return n


def _consume_reader(reader: Iterable[object]) -> int:
    return _consume(iter(reader))


def _peak(fn: Callable[[], int]) -> tuple[int, int]:
    tracemalloc.start()
    try:
        count = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return count, peak


def test_large_file_streams_in_constant_memory(tmp_path: Path) -> None:
    """A 100k-row file (~6 MB) is cut into records with a peak of well under 1 MB of
    Python allocations, and a full CDR read of 10k rows peaks no higher than one of 1k:
    memory does not grow with the file. benchmarks/bench_readers.py runs the same at any
    size (e.g. 2 GB) outside the test suite."""
    path = tmp_path / "big.csv"
    rows = 100_000
    _big_csv(path, rows)
    assert path.stat().st_size > 5_000_000

    def records() -> int:
        src = LineSource(path)
        try:
            return _consume(csv_records(src))
        finally:
            src.close()

    count, peak = _peak(records)
    assert count == rows + 1
    assert peak < 256_000, f"peak {peak:,} bytes"

    small, large = tmp_path / "small.csv", tmp_path / "large.csv"
    _big_csv(small, 1_000)
    _big_csv(large, 10_000)
    readers = [read_cdrs(small, "csv"), read_cdrs(large, "csv")]
    (n_small, peak_small), (n_large, peak_large) = (
        _peak(functools.partial(_consume_reader, r)) for r in readers
    )
    assert (n_small, n_large) == (1_000, 10_000)
    assert all(r.ok for r in readers)
    assert peak_large < 256_000, f"peak {peak_large:,} bytes"
    assert peak_large < peak_small * 1.5 + 50_000, (peak_small, peak_large)


def test_large_json_array_streams_in_constant_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    with path.open("w") as f:
        f.write('{"ok": true, "rows": [\n')
        for i in range(5_000):
            sep = ",\n" if i else ""
            f.write(
                sep
                + json.dumps(
                    {
                        "call_id": f"c{i}",
                        "destination_number": "44",
                        "started_at": 1790157600000 + i,
                    }
                )
            )
        f.write("\n]}\n")
    tracemalloc.start()
    try:
        count = _consume(iter(CdrJsonReader(path)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 5_000
    assert peak < 1_000_000, f"peak {peak:,} bytes"  # one 64 KiB read-ahead, copied


def test_rate_deck_rows_shifted_by_an_unquoted_comma_are_rejected() -> None:
    text = "prefix,destination,rate\n44,United Kingdom,0.01\n1,Korea, Republic of,0.02\n"
    reader = RateCsvReader(io.StringIO(text))
    assert [r.prefix for r in reader] == ["44"]
    assert "4 fields, the header has 3" in reader.rejects[0].reason
