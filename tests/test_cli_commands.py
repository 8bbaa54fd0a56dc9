"""The commands beyond `rate --format`: every input format, per-call output, check-plan,
import-rates, import-cdrs, export, table output and the progress bar."""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
from pathlib import Path

import pytest

import cdrrating.repository
from cdrrating.cli import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_REJECTED_ROWS,
    EXIT_USAGE,
    build_parser,
    main,
)

pytest.importorskip("sqlalchemy")

from cdrrating.sql import SQLRateRepository

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
FIXTURES = ROOT / "tests" / "fixtures" / "formats"
NOTICE = FIXTURES / "acme_rate_notice.csv"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.sqlite3'}"


def deck(tmp_path: Path, body: str, name: str = "deck.csv") -> Path:
    path = tmp_path / name
    path.write_text("prefix,destination,rate,billing_increment\n" + body, encoding="utf-8")
    return path


# -- rate ----------------------------------------------------------------------------------


def test_rate_charges_as_csv_add_up_to_the_summary() -> None:
    base = ["rate", str(EXAMPLES / "cdrs.csv"), "--rates", str(EXAMPLES / "rates.csv")]
    base += ["--currency", "EUR", "--no-store", "--quiet"]
    code, out, err = run(*base, "--charges", "--format", "csv")
    assert code == EXIT_OK, err
    assert out.count("\r\n") == 3001  # RFC 4180: CRLF after the header and each row
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    assert len(rows) == 3000
    _, summary, _ = run(*base, "--format", "json")
    total = sum(int(r["cost_micros"]) for r in rows if r["cost_micros"])
    assert total == json.loads(summary)["totals_micros"]["EUR"]


def test_rate_summary_as_json_lines() -> None:
    code, out, _ = run(
        "rate", str(EXAMPLES / "cdrs.csv"), "--rates", str(EXAMPLES / "rates.csv"),
        "--currency", "EUR", "--no-store", "--format", "jsonl",
    )  # fmt: skip
    assert code == EXIT_OK
    lines = [json.loads(line) for line in out.splitlines()]
    assert sum(line["calls"] for line in lines) == 3000
    assert lines[0]["cost_micros"] >= lines[-1]["cost_micros"]  # costliest first


def test_rate_an_asterisk_file_where_disposition_beats_billsec(tmp_path: Path) -> None:
    rates = deck(tmp_path, "44,UK,0.01,60/60\n49,Germany,0.02,60/60\n33,France,0.03,1/1\n")
    code, out, err = run(
        "rate", str(FIXTURES / "asterisk_master.csv"), "--cdr-format", "asterisk",
        "--rates", str(rates), "--currency", "EUR", "--no-store", "--charges",
        "--format", "json",
    )  # fmt: skip
    assert code == EXIT_OK, err
    data = json.loads(out)
    by_number = {r["call_id"]: r for r in data["rows"]}
    no_answer = next(r for r in data["rows"] if r["disposition"] == "NO_ANSWER")
    assert no_answer["billsec"] == 60 and no_answer["cost_micros"] == 0
    assert no_answer["status"] == "UNANSWERED"
    assert data["ok"] is True and data["count"] == len(by_number)


def test_rate_with_a_rate_notice_takes_its_currency(tmp_path: Path) -> None:
    cdrs = tmp_path / "cdrs.csv"
    cdrs.write_text(
        "call_id,started_at,destination_number,billsec\n"
        "a,2026-10-02T10:00:00Z,4917312345,61\n"
        "b,2026-09-01T10:00:00Z,4917312345,61\n",
        encoding="utf-8",
    )
    code, out, err = run(
        "rate", str(cdrs), "--rates", str(NOTICE), "--rate-format", "notice", "--no-store",
        "--charges", "--format", "jsonl",
    )  # fmt: skip
    assert code == EXIT_OK, err
    a, b = (json.loads(line) for line in out.splitlines())
    # After 23 Sep the Vodafone range 49172-49174 is in force at 0.0495/min, 60/1;
    # before it the call falls back to the 49 fixed-line rate, 1/1.
    assert (a["currency"], a["prefix"], a["cost_micros"]) == ("USD", "49173", 50_325)
    assert (b["prefix"], b["billed_seconds"]) == ("49", 61)


def test_rate_without_a_currency_anywhere_is_a_usage_error(tmp_path: Path) -> None:
    code, out, err = run(
        "rate", str(EXAMPLES / "cdrs.csv"), "--rates", str(EXAMPLES / "rates.csv"), "--no-store"
    )
    assert (code, out) == (EXIT_USAGE, "")
    assert "give --currency" in err


def test_mapping_renames_columns(tmp_path: Path) -> None:
    cdrs = tmp_path / "cdrs.csv"
    cdrs.write_text("ID,When,Called,Secs\nx,2026-10-02T10:00:00Z,4420,60\n", encoding="utf-8")
    rates = deck(tmp_path, "44,UK,0.01,60/60\n")
    mapping = json.dumps(
        {"ID": "call_id", "When": "started_at", "Called": "destination_number", "Secs": "billsec"}
    )
    code, out, err = run(
        "rate", str(cdrs), "--rates", str(rates), "--currency", "EUR", "--no-store",
        "--mapping", mapping, "--charges", "--format", "jsonl",
    )  # fmt: skip
    assert code == EXIT_OK, err
    assert json.loads(out)["cost_micros"] == 10_000
    code, _, err = run(
        "rate", str(cdrs), "--rates", str(rates), "--currency", "EUR", "--no-store",
        "--cdr-format", "asterisk", "--mapping", mapping,
    )  # fmt: skip
    assert code == EXIT_USAGE and "--mapping applies to the csv and json formats" in err


def test_reject_file_gets_every_rejected_row(tmp_path: Path) -> None:
    cdrs = tmp_path / "cdrs.csv"
    cdrs.write_text(
        "call_id,started_at,destination_number,billsec\n"
        "a,2026-10-02T10:00:00Z,4420,60\n"
        "b,yesterday,4420,60\n"
        "c,2026-10-02T10:00:00Z,4420,-1\n",
        encoding="utf-8",
    )
    rejects = tmp_path / "rejects.csv"
    code, _, err = run(
        "rate", str(cdrs), "--rates", str(deck(tmp_path, "44,UK,0.01,60/60\n")),
        "--currency", "EUR", "--no-store", "--reject-file", str(rejects),
    )  # fmt: skip
    assert code == EXIT_REJECTED_ROWS
    assert f"{cdrs}:3: rejected:" in err and f"{cdrs}:4: rejected:" in err
    rows = list(csv.DictReader(io.StringIO(rejects.read_text(encoding="utf-8"), newline="")))
    assert [(r["line"], r["raw"].split(",")[0]) for r in rows] == [("3", "b"), ("4", "c")]


def test_wrong_header_and_wrong_encoding_are_errors_not_partial_results(tmp_path: Path) -> None:
    rates = deck(tmp_path, "44,UK,0.01,60/60\n")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("a,b\n1,2\n", encoding="utf-8")
    code, out, err = run("rate", str(wrong), "--rates", str(rates), "--currency", "EUR")
    assert (code, out) == (EXIT_BAD_INPUT, "")
    assert "the header lacks destination_number" in err
    latin = tmp_path / "latin.csv"
    latin.write_bytes(
        "call_id,started_at,destination_number,billsec\nJosé,2026-10-02T10:00:00Z,44,1\n".encode(
            "latin-1"
        )
    )
    code, out, err = run("rate", str(latin), "--rates", str(rates), "--currency", "EUR")
    assert (code, out) == (EXIT_BAD_INPUT, "")
    assert "not valid utf-8" in err
    code, out, err = run(
        "rate", str(latin), "--rates", str(rates), "--currency", "EUR", "--no-store",
        "--encoding", "latin-1", "--format", "json",
    )  # fmt: skip
    assert code == EXIT_OK, err
    assert json.loads(out)["status_counts"] == {"RATED": 1}


# -- check-plan ----------------------------------------------------------------------------


def test_check_plan_of_a_clean_deck() -> None:
    code, out, err = run("check-plan", str(EXAMPLES / "rates.csv"), "--format", "json")
    assert code == EXIT_OK, err
    assert json.loads(out) == {"ok": True, "count": 0, "rows": []}
    assert "343 rates" in err and "no findings" in err


def test_check_plan_lists_findings_and_exits_1(tmp_path: Path) -> None:
    rates = deck(
        tmp_path,
        "44,UK,0.01,60/60\n+44 20,London,0.02,60/60\n",
    )
    code, out, _ = run("check-plan", str(rates), "--format", "jsonl")
    assert code == EXIT_REJECTED_ROWS
    (finding,) = (json.loads(line) for line in out.splitlines())
    assert finding["code"] == "non_digit_prefix" and "'+44 20'" in finding["message"]
    # A notice's code lists and ranges are expanded as written: not findings. Its
    # "336 07, 336 08" and "+521" are.
    code, out, _ = run(
        "check-plan", str(NOTICE), "--rate-format", "notice", "--at", "2026-10-01T00:00:00Z",
        "--format", "csv",
    )  # fmt: skip
    assert code == EXIT_REJECTED_ROWS
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    assert sorted(r["rates"] for r in rows) == ["33607@0", "33608@0", "521@0"]


def test_check_plan_refuses_an_ambiguous_or_unreadable_deck(tmp_path: Path) -> None:
    code, _, err = run("check-plan", str(deck(tmp_path, "44,UK,0.01,60/60\n44,UK,0.02,60/60\n")))
    assert code == EXIT_BAD_INPUT and "at most one active rate per prefix" in err
    code, _, err = run("check-plan", str(deck(tmp_path, "44,UK,abc,60/60\n33,FR,0.1,0/0\n")))
    assert code == EXIT_BAD_INPUT
    assert "2 invalid row(s)" in err and "deck.csv:2:" in err and "deck.csv:3:" in err


# -- import-rates, import-cdrs, export -----------------------------------------------------


def test_import_rates_all_or_nothing_and_never_twice(tmp_path: Path, db: str) -> None:
    rates = str(EXAMPLES / "rates.csv")
    code, out, err = run("import-rates", rates, "--db", db, "--format", "json")
    assert code == EXIT_OK, err
    assert json.loads(out)["rows"] == [{"imported": 343, "tenant": None}]
    code, _, err = run("import-rates", rates, "--db", db)
    assert code == EXIT_BAD_INPUT and "imported before" in err
    # A deck that would make the stored plan ambiguous is refused whole.
    clash = deck(tmp_path, "999,New,0.5,60/60\n1,United States,0.9,60/60\n")
    code, _, err = run("import-rates", str(clash), "--db", db)
    assert code == EXIT_BAD_INPUT and "invalid plan" in err
    # The same deck for another tenant is another deck.
    assert run("import-rates", rates, "--db", db, "--tenant", "acme")[0] == EXIT_OK
    repo = SQLRateRepository(db)
    try:
        assert repo.count() == 686
        assert "999" not in {r.prefix for r in repo.load_plan(None, currency="EUR")}
    finally:
        repo.engine.dispose()


def test_import_cdrs_then_rate_with_stored_rates_then_export(tmp_path: Path, db: str) -> None:
    cdrs = str(EXAMPLES / "cdrs.csv")
    assert run("import-rates", str(EXAMPLES / "rates.csv"), "--db", db)[0] == EXIT_OK
    code, _, err = run("import-cdrs", cdrs, "--db", db, "--rate")
    assert code == EXIT_USAGE and "--currency" in err
    code, out, err = run(
        "import-cdrs", cdrs, "--db", db, "--rate", "--currency", "EUR", "--format", "jsonl"
    )
    assert code == EXIT_OK, err
    assert json.loads(out) == {"stored": 3000, "rejected": 0}
    # Re-importing replaces, it does not double.
    assert run("import-cdrs", cdrs, "--db", db, "--rate", "--currency", "EUR")[0] == EXIT_OK
    code, out, err = run("export", "--db", db, "--format", "csv", "--quiet")
    assert code == EXIT_OK, err
    assert "exported 3000 CDRs" in err
    exported = list(csv.DictReader(io.StringIO(out, newline="")))
    _, summary, _ = run(
        "rate", cdrs, "--rates", str(EXAMPLES / "rates.csv"), "--currency", "EUR",
        "--no-store", "--format", "json",
    )  # fmt: skip
    assert len(exported) == 3000
    assert (
        sum(int(r["cost_micros"] or 0) for r in exported)
        == json.loads(summary)["totals_micros"]["EUR"]
    )
    assert [r["started_at"] for r in exported] == sorted(r["started_at"] for r in exported)


def test_import_cdrs_stores_the_good_rows_and_reports_the_bad(tmp_path: Path, db: str) -> None:
    cdrs = tmp_path / "cdrs.csv"
    cdrs.write_text(
        "call_id,started_at,destination_number,billsec\n"
        "a,2026-10-02T10:00:00Z,4420,60\n"
        "b,2026-10-02T10:00:00Z,4420,sixty\n"
        "c,2026-10-02T11:00:00Z,4421,5\n",
        encoding="utf-8",
    )
    code, _, err = run("import-cdrs", str(cdrs), "--db", db, "--tenant", "acme")
    assert code == EXIT_REJECTED_ROWS
    assert f"{cdrs}:3: rejected: billsec" in err and "stored 2 CDRs" in err
    code, out, _ = run("export", "--db", db, "--format", "jsonl", "--fields", "call_id,tenant")
    assert [json.loads(line) for line in out.splitlines()] == [
        {"call_id": "a", "tenant": "acme"},
        {"call_id": "c", "tenant": "acme"},
    ]


def test_export_walks_every_page(tmp_path: Path, db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run("import-cdrs", str(EXAMPLES / "cdrs.csv"), "--db", db)[0] == EXIT_OK
    monkeypatch.setattr(cdrrating.repository, "MAX_LIMIT", 400)
    target = tmp_path / "out.json"
    code, out, err = run(
        "export", "--db", db, "--format", "json", "--order", "desc", "-o", str(target),
        "--where", '{"tenant": "acme"}',
    )  # fmt: skip
    assert (code, out) == (EXIT_OK, ""), err
    data = json.loads(target.read_text(encoding="utf-8"))
    ids = [r["call_id"] for r in data["rows"]]
    assert data["ok"] is True and data["count"] == len(ids) == len(set(ids)) > 400
    assert {r["tenant"] for r in data["rows"]} == {"acme"}
    starts = [r["started_at"] for r in data["rows"]]
    assert starts == sorted(starts, reverse=True)


def test_query_as_a_table(db: str) -> None:
    assert run("import-cdrs", str(EXAMPLES / "cdrs.csv"), "--db", db)[0] == EXIT_OK
    code, out, err = run("query", "--db", db, "--format", "table", "--limit", "3")
    assert code == EXIT_OK, err
    header, rule, *rows = out.splitlines()
    assert header.split()[:3] == ["call_id", "started_at", "destination_number"]
    assert set(rule) <= {"-", " "} and len(rows) == 3
    assert "next cursor:" in err


# -- progress ------------------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("quiet", [False, True])
def test_progress_bar_only_on_a_terminal_and_not_with_quiet(
    monkeypatch: pytest.MonkeyPatch, quiet: bool
) -> None:
    pytest.importorskip("tqdm")
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    argv = ["rate", str(EXAMPLES / "cdrs.csv"), "--rates", str(EXAMPLES / "rates.csv")]
    argv += ["--currency", "EUR", "--no-store", "--format", "json"]
    out = io.StringIO()
    code = main([*argv, "--quiet"] if quiet else argv, stdout=out, stderr=io.StringIO())
    assert code == EXIT_OK
    assert json.loads(out.getvalue())["rejected"] == 0  # stdout is data only
    bar = terminal.getvalue().replace(" ", "")
    # The CSV file's lines give the bar its total, hence a percentage and an ETA.
    assert ("3000/3000" in bar and "100%" in bar) is not quiet


# -- documentation -------------------------------------------------------------------------


def test_every_command_and_option_is_documented() -> None:
    docs = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    docs += (ROOT / "docs" / "storage.md").read_text(encoding="utf-8")
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == {
        "rate", "check-plan", "import-rates", "import-cdrs", "query", "export", "prune",
        "rates", "explain", "sessions",
    }  # fmt: skip
    parsers = dict(sub.choices)
    rates = next(a for a in parsers["rates"]._actions if isinstance(a, argparse._SubParsersAction))
    parsers.update({f"rates {name}": p for name, p in rates.choices.items()})
    for name, parser in parsers.items():
        assert f"cdrrating {name}" in docs, name
        for action in parser._actions:
            if action.help == argparse.SUPPRESS:
                continue
            for option in action.option_strings:
                if option.startswith("--") and option != "--help":
                    # The whole option, not a longer one it starts (--rate in --rates).
                    assert re.search(re.escape(option) + r"(?![\w-])", docs), (name, option)
