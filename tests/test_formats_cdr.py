"""CDR readers: one test group per format, on the sample files under tests/fixtures/formats."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from cdrrating import CDR, ChargeStatus, Direction, Disposition, Rate, RatePlan, rate
from cdrrating.formats import (
    CDR_FORMATS,
    AdminApiReader,
    AsteriskCsvReader,
    CallCdrReader,
    CdrCsvReader,
    CdrJsonReader,
    FormatError,
    FreeSwitchCsvReader,
    FreeSwitchJsonReader,
    PlatformJsonReader,
    read_cdrs,
)

FIXTURES = Path(__file__).parent / "fixtures" / "formats"
PLAN = RatePlan(
    [
        Rate.parse({"prefix": "44", "rate": "0.01", "billing_increment": "60/60"}),
        Rate.parse({"prefix": "49", "rate": "0.02", "billing_increment": "60/60"}),
        Rate.parse({"prefix": "33", "rate": "0.03", "billing_increment": "1/1"}),
    ],
    currency="EUR",
)


def _read(reader_cls: type, name: str, **kw: object) -> tuple[list[CDR], Any]:
    reader = reader_cls(FIXTURES / name, **kw)
    cdrs = list(reader)
    assert reader.complete
    return cdrs, reader


# -- Asterisk --------------------------------------------------------------------------------


def test_asterisk_master_csv_with_uniqueid_and_userfield() -> None:
    cdrs, reader = _read(AsteriskCsvReader, "asterisk_master.csv")
    assert reader.rejects == []
    assert [c.call_id for c in cdrs] == [
        "1758621600.1",
        "1758621900.3",
        "1758625200.5",
        "1758625800.7",
    ]
    first = cdrs[0]
    assert first.caller_number == "100"
    assert first.destination_number == "442079460000"
    assert first.started_at == datetime(2026, 9, 23, 10, 0, tzinfo=UTC)
    assert first.answered_at == datetime(2026, 9, 23, 10, 0, 5, tzinfo=UTC)
    assert (first.duration, first.billsec, first.tenant) == (66, 61, "acme")
    assert first.extra["clid"] == '"Alice" <100>'  # doubled quotes undone
    assert first.extra["lastdata"] == "PJSIP/442079460000@trunk,60"
    assert first.extra["userfield"] == "vip"
    assert [c.disposition for c in cdrs] == [
        Disposition.ANSWERED,
        Disposition.NO_ANSWER,
        Disposition.BUSY,
        Disposition.ANSWERED,
    ]


def test_asterisk_disposition_wins_over_billsec() -> None:
    cdrs, _ = _read(AsteriskCsvReader, "asterisk_master.csv")
    no_answer = cdrs[1]
    assert no_answer.billsec == 60
    charge = rate(no_answer, PLAN)
    assert charge.status is ChargeStatus.UNANSWERED
    assert charge.cost_micros == 0
    assert rate(cdrs[0], PLAN).cost_micros == 20_000  # 61 s at 60/60 = 2 min at 0.01


def test_asterisk_newer_columns() -> None:
    cdrs, reader = _read(AsteriskCsvReader, "asterisk_master_newcols.csv")
    assert reader.rejects == []
    assert cdrs[0].extra["linkedid"] == "1758621600.1"
    assert cdrs[0].extra["sequence"] == "12"
    assert cdrs[1].disposition is Disposition.NO_ANSWER


def test_asterisk_base_columns_get_a_stable_hash_id() -> None:
    a, _ = _read(AsteriskCsvReader, "asterisk_master_base.csv")
    b, _ = _read(AsteriskCsvReader, "asterisk_master_base.csv")
    assert a[0].call_id.startswith("asterisk-")
    assert a[0].call_id == b[0].call_id
    assert a[0].tenant is None  # empty accountcode


def test_asterisk_ambiguous_field_count_needs_the_options() -> None:
    base = (FIXTURES / "asterisk_master_base.csv").read_text().rstrip("\n")
    line = base + ',"1758621600.1"\n'  # 17 fields: uniqueid or userfield?
    reader = AsteriskCsvReader(io.StringIO(line))
    assert list(reader) == []
    assert "loguniqueid" in reader.rejects[0].reason
    cdrs = list(AsteriskCsvReader(io.StringIO(line), loguniqueid=True))
    assert cdrs[0].call_id == "1758621600.1"


def test_asterisk_local_time_and_direction_options() -> None:
    tz = timezone(timedelta(hours=2))
    cdrs, _ = _read(AsteriskCsvReader, "asterisk_master.csv", default_tz=tz, direction="inbound")
    assert cdrs[0].started_at == datetime(2026, 9, 23, 8, 0, tzinfo=UTC)
    assert cdrs[0].direction is Direction.INBOUND


def test_asterisk_header_line_is_rejected_not_read() -> None:
    header = ",".join(
        f'"{c}"'
        for c in (
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
    )
    body = (FIXTURES / "asterisk_master_base.csv").read_text()
    reader = AsteriskCsvReader(io.StringIO(header + "\n" + body))
    assert len(list(reader)) == 1
    assert reader.rejects[0].line == 1
    assert "no header" in reader.rejects[0].reason


# -- FreeSWITCH ------------------------------------------------------------------------------


def test_freeswitch_csv_default_template() -> None:
    cdrs, reader = _read(FreeSwitchCsvReader, "freeswitch_master.csv")
    assert reader.rejects == []
    answered, no_answer, busy = cdrs
    assert answered.call_id == "a5c9f6c0-e752-11e3-8bfb-65b6c3cdac7d"
    assert answered.disposition is Disposition.ANSWERED
    assert (answered.billsec, answered.tenant, answered.hangup_cause) == (
        61,
        "acme",
        "NORMAL_CLEARING",
    )
    assert answered.extra["read_codec"] == "PCMU"
    assert no_answer.disposition is Disposition.NO_ANSWER
    assert busy.disposition is Disposition.BUSY
    assert busy.destination_number == "+34688886392"


def test_freeswitch_csv_custom_template() -> None:
    text = (
        '"1000","442079460000","2026-09-23 10:00:00","2026-09-23 10:00:05",'
        '"2026-09-23 10:01:00","60","55","NORMAL_CLEARING","u-1"\n'
    )
    columns = (
        "caller_id_number",
        "destination_number",
        "start_stamp",
        "answer_stamp",
        "end_stamp",
        "duration",
        "billsec",
        "hangup_cause",
        "uuid",
    )
    cdrs = list(FreeSwitchCsvReader(io.StringIO(text), columns=columns))
    assert cdrs[0].call_id == "u-1"
    assert cdrs[0].billsec == 55


def test_freeswitch_json_cdr() -> None:
    cdrs, reader = _read(FreeSwitchJsonReader, "freeswitch_json_cdr.json")
    assert reader.rejects == []
    (cdr,) = cdrs
    assert cdr.call_id == "0f3c1a2e-8d5b-4c1e-9a0b-7d2e4f6a8b9c"
    assert cdr.destination_number == "+44 20 7946 0000"  # URL-decoded
    assert cdr.started_at == datetime.fromtimestamp(1790157600, UTC)
    assert cdr.answered_at == datetime.fromtimestamp(1790157604, UTC)
    assert (cdr.billsec, cdr.duration, cdr.tenant) == (121, 125, "acme")
    assert cdr.direction is Direction.OUTBOUND  # the FS leg direction "inbound" is not used
    assert cdr.extra["switchname"] == "fs1.example.net"
    assert cdr.extra["variables"]["sip_hangup_disposition"] == "send_bye"
    assert rate(cdr, PLAN).cost_micros == 30_000  # 121 s at 60/60 = 3 min at 0.01


def test_freeswitch_json_lines_and_missing_variables() -> None:
    doc = (FIXTURES / "freeswitch_json_cdr.json").read_text().replace("\n", "")
    text = doc + "\n" + '{"no": "variables"}\n' + doc + "\n"
    reader = FreeSwitchJsonReader(io.StringIO(text))
    assert len(list(reader)) == 2
    assert [(r.line, r.field) for r in reader.rejects] == [(2, "variables")]


# -- tenant admin API, call_cdr, platform ----------------------------------------------------


def test_admin_api_json() -> None:
    cdrs, reader = _read(AdminApiReader, "admin_api_cdrs.json")
    assert reader.rejects == []
    first, second, third = cdrs
    assert first.call_id == "api-1"
    assert first.billsec == 70
    assert first.cost_micros == 11_700  # a JSON number read as an exact decimal
    assert second.disposition is Disposition.NO_ANSWER
    assert second.started_at == datetime(2026, 9, 23, 8, 5, tzinfo=UTC)
    assert third.call_id.startswith("api-")  # no id in the record: a stable hash
    assert third.direction is Direction.INBOUND
    assert third.cost_micros is None
    assert reader.summary.records == 3


def test_call_cdr_csv() -> None:
    cdrs, reader = _read(CallCdrReader, "call_cdr.csv")
    assert reader.rejects == []
    a, b, c = cdrs
    assert a.started_at == datetime.fromtimestamp(1790157600, UTC)
    assert (a.tenant, a.queue_id, a.agent_id, a.caller_number) == (
        "acme",
        "q-sales",
        "a-17",
        "+14155550100",
    )
    assert b.disposition is Disposition.NO_ANSWER
    assert c.disposition is Disposition.ANSWERED  # from answered=true
    assert c.cost_micros == 17_000


def test_call_cdr_json_is_told_from_the_first_character() -> None:
    line = (
        '{"call_id": "c-9", "account_id": "acme", "from_num": "1", "to_num": "4930", '
        '"start_ts": 1790157600000, "end_ts": 1790157660000, "billsec": 60, "answered": true}\n'
    )
    cdrs = list(CallCdrReader(io.StringIO(line)))
    assert cdrs[0].billsec == 60 and cdrs[0].tenant == "acme"


def test_platform_json_single_and_list() -> None:
    (single,), _ = _read(PlatformJsonReader, "plivo_call_get.json")
    assert single.call_id == "4d04c52e-cea3-4458-bbdb-0bfc314ee7cd"
    assert single.disposition is Disposition.NO_ANSWER
    assert single.started_at.utcoffset() == timedelta(hours=5, minutes=30)
    # plivo-python's sample bills 924 s for a call answered 12 s before it ended: each
    # such record is rejected, with its line and the rule, never stored as it stands.
    listed, reader = _read(PlatformJsonReader, "plivo_call_list.json")
    assert listed == [] and reader.summary.rows == reader.summary.rejected == 2
    assert all("bill_duration: got 924" in r.reason for r in reader.rejects)
    # With the end times the bill implies, the same list reads in full.
    text = (FIXTURES / "plivo_call_list.json").read_text()
    text = text.replace("15:45:14+05:30", "16:00:26+05:30").replace(
        "16:45:14+05:30", "17:00:26+05:30"
    )
    reader = PlatformJsonReader(io.StringIO(text))
    listed = list(reader)
    assert len(listed) == reader.summary.records == 2 and reader.ok
    call = listed[0]
    assert (call.billsec, call.duration, call.cost_micros) == (924, 924, 136_000)
    assert call.extra["billed_duration"] == 960
    assert call.extra["total_rate"] == "0.00850"
    assert "resource_uri" in call.extra


def test_platform_status_names_the_disposition() -> None:
    line = (
        '{"call_uuid": "p-1", "to_number": "4930", "initiation_time": "2026-09-23 10:00:00+00:00", '
        '"call_status": "busy", "codec": "opus", "mos": "4.3", "jitter": 3}\n'
    )
    (cdr,) = list(PlatformJsonReader(io.StringIO(line)))
    assert cdr.disposition is Disposition.BUSY
    assert cdr.extra["codec"] == "opus" and cdr.extra["jitter"] == 3


# -- generic ---------------------------------------------------------------------------------


def test_generic_csv_with_mapping_and_extra_columns() -> None:
    text = (
        "Call,Called Number,Start,Talk Time,Site\r\n"
        "x1,442079460000,2026-09-23 10:00:00,61,Berlin\r\n"
    )
    reader = CdrCsvReader(
        io.StringIO(text),
        mapping={"Call": "call_id", "Called Number": "destination_number", "Talk Time": "billsec"},
    )
    (cdr,) = list(reader)
    assert (cdr.call_id, cdr.billsec, cdr.disposition) == ("x1", 61, Disposition.ANSWERED)
    assert cdr.extra == {"site": "Berlin"}


def test_generic_json_reads_the_examples_round_trip() -> None:
    cdrs = list(read_cdrs(FIXTURES / "call_cdr.csv", "call-cdr"))
    text = "".join(__import__("json").dumps(c.to_mapping()) + "\n" for c in cdrs)
    again = list(CdrJsonReader(io.StringIO(text)))
    assert again == cdrs


def test_read_cdrs_knows_every_format_name() -> None:
    assert set(CDR_FORMATS) == {
        "asterisk",
        "freeswitch-csv",
        "freeswitch-json",
        "admin-api",
        "call-cdr",
        "platform-json",
        "csv",
        "json",
        "parquet",
    }
    with pytest.raises(ValueError, match="one of asterisk"):
        read_cdrs("x.csv", "nope")


def test_generic_json_wrong_shape_is_refused() -> None:
    with pytest.raises(FormatError, match="lacks destination_number"):
        list(CdrJsonReader(io.StringIO('{"foo": 1}\n')))
