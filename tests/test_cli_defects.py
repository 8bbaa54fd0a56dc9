"""The command line against the six classes of input defects: each class has at least one
test that runs ``python -m cdrrating`` as a user would (real files, exit codes, what is
stored afterwards); the rest run ``cdrrating.cli.main`` in-process, which is faster.

1. unbounded work, 2. time read wrong, 3. wrong error types, 4. one row aborts a batch,
5. records that vanish or multiply, 6. CLI traps.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cdrrating.cli import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_OUTPUT_CLOSED,
    EXIT_REJECTED_ROWS,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    main,
)

pytest.importorskip("sqlalchemy")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
RATES = EXAMPLES / "rates.csv"
HEADER = "call_id,started_at,destination_number,billsec\n"
#: A hang is a failure, not a slow test: every subprocess gets this long.
TIMEOUT = 60


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CDRRATING_DB", raising=False)
    monkeypatch.delenv("CDRRATING_CURSOR_KEY", raising=False)
    return tmp_path


def cli(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CDRRATING_DB"}
    return subprocess.run(
        [sys.executable, "-m", "cdrrating", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        check=False,
    )


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def rate_argv(cdrs: Path | str, *extra: str) -> list[str]:
    return ["rate", str(cdrs), "--rates", str(RATES), "--currency", "EUR", "--quiet", *extra]


def stored(db: Path) -> dict[str, tuple[int | None, str | None]]:
    """call_id -> (cost_micros, status) of what the database holds, read without cdrrating."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT call_id, cost_micros, status FROM cdrrating_cdrs").fetchall()
    return {call_id: (cost, status) for call_id, cost, status in rows}


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding, newline="")
    return path


def no_traceback(text: str) -> None:
    assert "Traceback" not in text and "sqlalchemy" not in text.lower(), text


# -- 1. unbounded work ---------------------------------------------------------------------


def test_huge_exponents_are_refused_quickly_not_computed(workdir: Path) -> None:
    deck = write(workdir / "deck.csv", "prefix,rate\n44,0.01\n49,1e999999999\n")
    done = cli(workdir, "check-plan", str(deck))  # a hang fails the test at TIMEOUT
    assert done.returncode == EXIT_BAD_INPUT, done.stderr
    assert "deck.csv:3:" in done.stderr and "1e999999999" in done.stderr
    no_traceback(done.stderr)
    cdrs = write(
        workdir / "cdrs.csv",
        HEADER + "a,2026-01-01T00:00:00Z,4420,60\nb,2026-01-01T00:00:00Z,4420,1e999999999\n",
    )
    code, _, err = run(*rate_argv(cdrs, "--format", "json"))
    assert code == EXIT_REJECTED_ROWS, err
    assert "cdrs.csv:3: rejected: billsec" in err
    assert set(stored(workdir / "cdrrating.sqlite3")) == {"a"}


# -- 2. time read wrong --------------------------------------------------------------------


def test_durations_across_a_clock_change_are_absolute(workdir: Path) -> None:
    # New York springs forward at 02:00 on 8 March 2026: 01:59 -> 03:01 is two minutes.
    cdrs = write(
        workdir / "cdrs.csv",
        "call_id,started_at,answered_at,ended_at,destination_number\n"
        "spring,2026-03-08 01:59:00,2026-03-08 01:59:00,2026-03-08 03:01:00,4420\n",
    )
    done = cli(
        workdir, *rate_argv(cdrs, "--default-tz", "America/New_York", "--no-store"),
        "--charges", "--format", "jsonl",
    )  # fmt: skip
    assert done.returncode == EXIT_OK, done.stderr
    assert json.loads(done.stdout)["billsec"] == 120


def test_a_zone_abbreviation_is_refused_not_read_as_utc(workdir: Path) -> None:
    cdrs = write(
        workdir / "cdrs.csv",
        HEADER + "ok,2026-01-01T00:00:00Z,4420,60\nest,2024-03-04 10:00 EST,4420,60\n",
    )
    code, _, err = run(*rate_argv(cdrs))
    assert code == EXIT_REJECTED_ROWS
    assert "cdrs.csv:3: rejected: started_at" in err
    assert set(stored(workdir / "cdrrating.sqlite3")) == {"ok"}


# -- 3. wrong error types ------------------------------------------------------------------


def test_odd_values_are_row_rejections_with_one_line_each(workdir: Path) -> None:
    cdrs = write(
        workdir / "cdrs.csv",
        HEADER
        + "ok,2026-01-01T00:00:00Z,4420,60\n"
        + "nan,2026-01-01T00:00:00Z,4420,NaN\n"
        + "inf,2026-01-01T00:00:00Z,4420,Infinity\n"
        + "clock,10:00,4420,60\n"
        + "weekday,Monday,4420,60\n",
    )
    done = cli(workdir, *rate_argv(cdrs))
    assert done.returncode == EXIT_REJECTED_ROWS
    no_traceback(done.stderr)
    rejected = [line for line in done.stderr.splitlines() if ": rejected: " in line]
    assert [line.split(":")[1] for line in rejected] == ["3", "4", "5", "6"]
    assert set(stored(workdir / "cdrrating.sqlite3")) == {"ok"}


def test_bad_options_are_usage_errors_not_tracebacks(workdir: Path) -> None:
    cdrs = write(workdir / "cdrs.csv", HEADER + "ok,2026-01-01T00:00:00Z,4420,60\n")
    code, out, err = run(*rate_argv(cdrs, "--no-store", "--timezone", "Mars/Olympus"))
    assert (code, out) == (EXIT_USAGE, "") and "--timezone" in err
    code, out, err = run("check-plan", str(RATES), "--at", "teatime")
    assert (code, out) == (EXIT_USAGE, "") and "--at" in err
    code, out, err = run(*rate_argv(cdrs))
    assert code == EXIT_OK, err
    code, out, err = run("query", "--since", "2026-01-01")  # no offset: which instant?
    assert (code, out) == (EXIT_USAGE, "")
    assert "--since: got '2026-01-01'" in err and "tzinfo" not in err


# -- 4. one row aborts a batch -------------------------------------------------------------


def test_one_row_with_an_impossible_start_is_a_rejection_not_a_refusal(workdir: Path) -> None:
    cdrs = write(
        workdir / "cdrs.csv",
        HEADER
        + "a,2026-01-01T00:00:00Z,4420,60\n"
        + "b,99999999999999999999,4420,60\n"
        + "c,2026-01-01T00:01:00Z,4420,60\n",
    )
    done = cli(workdir, *rate_argv(cdrs, "--format", "json"))
    assert done.returncode == EXIT_REJECTED_ROWS, done.stderr
    assert "cdrs.csv:3: rejected: started_at" in done.stderr
    summary = json.loads(done.stdout)
    assert (summary["records"], summary["rejected"], summary["stored"]) == (2, 1, 2)
    assert set(stored(workdir / "cdrrating.sqlite3")) == {"a", "c"}


def test_import_cdrs_keeps_going_past_a_bad_row_too(workdir: Path) -> None:
    cdrs = write(
        workdir / "cdrs.csv",
        HEADER + "a,2026-01-01T00:00:00Z,4420,60\nb,1e400,4420,60\nc,2026-01-01T00:00:00Z,4420,5\n",
    )
    code, out, err = run("import-cdrs", str(cdrs), "--format", "jsonl")
    assert code == EXIT_REJECTED_ROWS, err
    assert json.loads(out) == {"stored": 2, "rejected": 1}
    assert set(stored(workdir / "cdrrating.sqlite3")) == {"a", "c"}


# -- 5. records that vanish or multiply ----------------------------------------------------


def test_a_repeated_call_id_is_rejected_and_totals_equal_what_is_stored(workdir: Path) -> None:
    cdrs = write(
        workdir / "cdrs.csv",
        HEADER
        + "a,2026-01-01T00:00:00Z,442079460000,60\n"
        + "a,2026-01-01T00:00:00Z,442079460000,600\n"
        + "c,2026-01-01T00:00:00Z,4930123,60\n",
    )
    done = cli(workdir, *rate_argv(cdrs, "--format", "json"))
    assert done.returncode == EXIT_REJECTED_ROWS, done.stderr
    assert "cdrs.csv:3: rejected: call_id 'a' was read before" in done.stderr
    summary = json.loads(done.stdout)
    rows = stored(workdir / "cdrrating.sqlite3")
    assert (summary["records"], summary["rejected"], summary["stored"]) == (2, 1, 2)
    assert sum(summary["status_counts"].values()) == len(rows) == 2
    assert summary["totals_micros"]["EUR"] == sum(cost or 0 for cost, _ in rows.values())
    assert rows["a"][0] == 42_000  # the first record of the call: 60 s, not 600 s
    # The table form says the same.
    code, out, _ = run(*rate_argv(cdrs, "--no-store"))
    assert code == EXIT_REJECTED_ROWS and "; 2 records, 1 rejected" in out


def test_a_closed_stdout_still_stores_everything_and_fails(workdir: Path) -> None:
    argv = [sys.executable, "-m", "cdrrating", *rate_argv(EXAMPLES / "cdrs.csv", "--charges")]
    argv += ["--format", "csv"]
    done = subprocess.run(
        ["bash", "-c", 'set -o pipefail; "$@" | head -3', "rate", *argv],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == EXIT_OUTPUT_CLOSED, done.stderr
    assert len(done.stdout.splitlines()) == 3
    assert "stored 3000 rated CDRs" in done.stderr
    no_traceback(done.stderr)
    assert "BrokenPipe" not in done.stderr
    assert len(stored(workdir / "cdrrating.sqlite3")) == 3000


class _ClosedAfter(io.StringIO):
    """A stdout whose reader goes away after ``lines`` writes."""

    def __init__(self, lines: int) -> None:
        super().__init__()
        self.left = lines

    def write(self, text: str) -> int:
        self.left -= 1
        if self.left < 0:
            raise BrokenPipeError(32, "Broken pipe")
        return super().write(text)


def test_a_closed_stdout_without_storing_is_not_a_success(workdir: Path) -> None:
    err = io.StringIO()
    argv = [*rate_argv(EXAMPLES / "cdrs.csv", "--no-store", "--charges", "--format", "jsonl")]
    assert main(argv, stdout=_ClosedAfter(5), stderr=err) == EXIT_OUTPUT_CLOSED
    assert "Traceback" not in err.getvalue()


def test_a_json_lines_record_with_a_list_field_is_not_dropped(workdir: Path) -> None:
    cdrs = write(
        workdir / "cdrs.jsonl",
        '{"call_id": "a", "started_at": "2026-01-01T00:00:00Z", "destination_number": "4420",'
        ' "billsec": 60, "data": [1, 2]}\n'
        '{"call_id": "b", "started_at": "2026-01-01T00:00:00Z", "destination_number": "4420",'
        ' "billsec": 60}\n',
    )
    _, out, err = run(*rate_argv(cdrs, "--cdr-format", "json", "--format", "json"))
    summary = json.loads(out)
    # Each record is either stored or reported: never silently gone.
    assert summary["records"] + summary["rejected"] == 2, err
    assert len(stored(workdir / "cdrrating.sqlite3")) == summary["records"]


# -- 6. CLI traps --------------------------------------------------------------------------


def test_each_input_has_its_own_encoding(workdir: Path) -> None:
    write(workdir / "deck.csv", "prefix,destination,rate\n225,Côte d'Ivoire,0.10\n")
    write(
        workdir / "cdrs.csv",
        "call_id,started_at,destination_number,billsec,tenant\n"
        "a,2026-01-01T00:00:00Z,22520000000,60,Société\n",
        encoding="cp1252",
    )
    argv = ["rate", "cdrs.csv", "--rates", "deck.csv", "--currency", "EUR", "--quiet"]
    argv += ["--no-store", "--charges", "--format", "jsonl"]
    done = cli(workdir, *argv, "--cdr-encoding", "cp1252")
    assert done.returncode == EXIT_OK, done.stderr
    charge = json.loads(done.stdout)
    assert (charge["tenant"], charge["rate_destination"]) == ("Société", "Côte d'Ivoire")
    # --encoding is the default of both; each input's own option wins over it.
    code, out, err = run(*argv, "--encoding", "cp1252", "--rates-encoding", "utf-8")
    assert code == EXIT_OK, err
    assert json.loads(out)["rate_destination"] == "Côte d'Ivoire"
    code, out, err = run(*argv, "--encoding", "cp1252")  # the deck is not cp1252: garbled
    assert json.loads(out)["rate_destination"] != "Côte d'Ivoire"


@pytest.mark.parametrize(
    "argv",
    [
        ["query"],
        ["export"],
        ["explain", "a", "--currency", "EUR"],
        ["rates", "list"],
        ["rates", "delete", "--all"],
        ["prune", "--older-than", "1d", "--no-archive"],
    ],
)
def test_commands_that_only_read_refuse_a_missing_database(workdir: Path, argv: list[str]) -> None:
    code, out, err = run(*argv, "--db", "typo.sqlite3")
    assert (code, out) == (EXIT_UNAVAILABLE, "")
    assert "no database at typo.sqlite3" in err and len(err.splitlines()) == 1
    assert not (workdir / "typo.sqlite3").exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes anyway")
def test_a_read_only_database_is_one_line_and_exit_4(workdir: Path) -> None:
    cdrs = write(workdir / "cdrs.csv", HEADER + "a,2026-01-01T00:00:00Z,4420,60\n")
    assert run(*rate_argv(cdrs, "--db", "ro.sqlite3"))[0] == EXIT_OK
    for path in workdir.glob("ro.sqlite3*"):
        path.chmod(stat.S_IRUSR)
    workdir.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        done = cli(workdir, *rate_argv(cdrs, "--db", "ro.sqlite3"))
    finally:
        workdir.chmod(stat.S_IRWXU)
    assert done.returncode == EXIT_UNAVAILABLE
    assert len(done.stderr.splitlines()) == 1
    no_traceback(done.stderr)


def test_a_database_that_cannot_be_written_is_one_line_and_exit_4(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whoever runs the tests may be root, whom file modes do not stop: SQLite's own
    # read-only mode says no to everyone.
    cdrs = write(workdir / "cdrs.csv", HEADER + "a,2026-01-01T00:00:00Z,4420,60\n")
    assert run(*rate_argv(cdrs, "--db", "store.sqlite3"))[0] == EXIT_OK
    url = f"sqlite:///file:{workdir / 'store.sqlite3'}?mode=ro&uri=true"
    code, out, err = run(*rate_argv(cdrs, "--db", url))
    assert (code, out) == (EXIT_UNAVAILABLE, "")
    assert "read-only" in err and len(err.splitlines()) == 1
    no_traceback(err)
    assert "4420" not in err  # no row values in the message


def test_a_locked_database_is_one_line_and_exit_4(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cdrrating.sql  # noqa: PLC0415 - needs the [sql] extra, checked above

    cdrs = write(workdir / "cdrs.csv", HEADER + "a,2026-01-01T00:00:00Z,4420,60\n")
    assert run(*rate_argv(cdrs))[0] == EXIT_OK
    make_engine = cdrrating.sql.make_engine
    monkeypatch.setattr(
        cdrrating.sql,
        "make_engine",
        lambda url, **kw: make_engine(url, connect_args={"timeout": 0.01}, **kw),
    )
    holder = sqlite3.connect(workdir / "cdrrating.sqlite3", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        code, out, err = run(*rate_argv(cdrs))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert (code, out) == (EXIT_UNAVAILABLE, "")
    assert "locked" in err and len(err.splitlines()) == 1


def test_a_corrupt_database_is_one_line_and_exit_4(workdir: Path) -> None:
    (workdir / "bad.sqlite3").write_bytes(b"this is not a database, just text " * 200)
    for argv in (
        ["query", "--db", "bad.sqlite3"],
        rate_argv(EXAMPLES / "cdrs.csv", "--db", "bad.sqlite3"),
    ):
        code, out, err = run(*argv)
        assert (code, out) == (EXIT_UNAVAILABLE, ""), err
        assert "not a SQLite database" in err and len(err.splitlines()) == 1


def test_max_rejects_stops_the_flood_and_counts_the_rest(workdir: Path) -> None:
    # The wrong format: Master.csv has no header, so every named-column row is refused.
    rejects = workdir / "rejects.csv"
    code, out, err = run(
        *rate_argv(EXAMPLES / "cdrs.csv", "--cdr-format", "asterisk", "--no-store"),
        "--max-rejects", "3", "--reject-file", str(rejects),
    )  # fmt: skip
    assert code == EXIT_REJECTED_ROWS
    shown = [line for line in err.splitlines() if ": rejected: " in line]
    assert [line.split(":")[1] for line in shown] == ["1", "2", "3"]
    assert "... and 2998 more rejected row(s) not shown (--max-rejects 3)" in err
    assert "; 0 records, 3001 rejected" in out
    written = list(csv.DictReader(io.StringIO(rejects.read_text(encoding="utf-8"))))
    assert len(written) == 3001


def test_max_rejects_in_process(workdir: Path) -> None:
    body = "".join(f"r{i},not a time,4420,60\n" for i in range(50))
    cdrs = write(workdir / "cdrs.csv", HEADER + body + "ok,2026-01-01T00:00:00Z,4420,60\n")
    code, _, err = run(*rate_argv(cdrs, "--no-store", "--max-rejects", "5"))
    assert code == EXIT_REJECTED_ROWS
    assert len([line for line in err.splitlines() if ": rejected: " in line]) == 5
    assert "... and 45 more rejected row(s) not shown (--max-rejects 5)" in err
    code, _, err = run(*rate_argv(cdrs, "--no-store", "--max-rejects", "0"))
    assert ": rejected: " not in err and "... and 50 more" in err


def test_currency_in_any_case_and_a_non_code_is_a_usage_error(workdir: Path) -> None:
    cdrs = write(workdir / "cdrs.csv", HEADER + "a,2026-01-01T00:00:00Z,442079460000,60\n")
    argv = ["rate", str(cdrs), "--rates", str(RATES), "--no-store", "--format", "json"]
    code, out, err = run(*argv, "--currency", "eur")
    assert code == EXIT_OK, err
    assert json.loads(out)["totals_micros"] == {"EUR": 42_000}
    for bad in ("euro", "E1R", ""):
        with pytest.raises(SystemExit) as info:
            run(*argv, "--currency", bad)
        assert info.value.code == EXIT_USAGE


def test_messages_speak_options_and_prices_not_keywords_and_micros(workdir: Path) -> None:
    deck = write(workdir / "deck.csv", 'prefix,rate\n44,"0,01"\n49,-0.01\n')
    code, _, err = run("check-plan", str(deck))
    assert code == EXIT_BAD_INPUT
    assert "--decimal-comma" in err and "decimal_separator" not in err
    # The deck's own column and value, not an internal field in micro-units.
    assert "deck.csv:3: rate: got '-0.01'" in err and "micros" not in err


def test_csv_output_is_spreadsheet_safe_unless_raw(workdir: Path) -> None:
    evil = "=cmd|' /C calc'!A0"
    cdrs = write(
        workdir / "cdrs.csv",
        "call_id,started_at,caller_number,destination_number,billsec\n"
        f'x,2026-01-01T00:00:00Z,"{evil}",442079460000,60\n',
    )
    code, out, err = run(*rate_argv(cdrs, "--charges", "--format", "csv"))
    assert code == EXIT_OK, err
    (row,) = csv.DictReader(io.StringIO(out))
    assert row["caller_number"] == "'" + evil
    code, out, _ = run("export", "--fields", "call_id,caller_number")
    assert code == EXIT_OK
    assert next(iter(csv.DictReader(io.StringIO(out))))["caller_number"] == "'" + evil
    code, out, _ = run("export", "--fields", "call_id,caller_number", "--csv-raw")
    assert next(iter(csv.DictReader(io.StringIO(out))))["caller_number"] == evil


def test_a_password_in_the_database_url_is_never_printed(workdir: Path) -> None:
    pytest.importorskip("psycopg")
    # Nothing listens on port 1: the connection is refused at once.
    code, out, err = run("query", "--db", "postgresql+psycopg://user:s3cret@127.0.0.1:1/db")
    assert (code, out) == (EXIT_UNAVAILABLE, "")
    assert "user:***@127.0.0.1:1/db" in err and "s3cret" not in err
    assert len(err.splitlines()) == 1
