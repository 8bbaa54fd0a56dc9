"""`cdrrating rate` stores what it rates; `cdrrating query` and `cdrrating prune`."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cdrrating.cli import EXIT_BAD_INPUT, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, main

pytest.importorskip("sqlalchemy")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def rate(cdrs: Path, *extra: str) -> tuple[int, str, str]:
    return run(
        "rate", str(cdrs), "--rates", str(EXAMPLES / "rates.csv"), "--currency", "EUR",
        "--quiet", "--format", "json", *extra,
    )  # fmt: skip


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CDRRATING_DB", raising=False)
    monkeypatch.delenv("CDRRATING_CURSOR_KEY", raising=False)
    return tmp_path


def small_cdrs(folder: Path) -> Path:
    path = folder / "cdrs.csv"
    path.write_text(
        "call_id,started_at,destination_number,billsec,disposition,tenant\n"
        "old-1,2001-01-01T00:00:00Z,442079460000,60,ANSWERED,a\n"
        "old-2,2001-01-02T00:00:00Z,4930123,0,NO ANSWER,b\n"
        "new-1,2099-01-01T00:00:00Z,442079460001,61,ANSWERED,a\n"
        "new-2,2099-01-02T00:00:00Z,999,30,ANSWERED,a\n",
        encoding="utf-8",
    )
    return path


def test_rate_stores_rated_cdrs_in_a_sqlite_file_by_default(workdir: Path) -> None:
    code, out, err = rate(EXAMPLES / "cdrs.csv")
    assert code == EXIT_OK, err
    assert "stored 3000 rated CDRs in sqlite:///cdrrating.sqlite3" in err
    assert (workdir / "cdrrating.sqlite3").is_file()
    statuses = json.loads(out)["status_counts"]
    code, out, err = run("query", "--limit", "10000", "--fields", "call_id,status,cost_micros")
    assert code == EXIT_OK, err
    items = json.loads(out)["items"]
    assert len(items) == 3000
    counted: dict[str, int] = {}
    for item in items:
        counted[item["status"]] = counted.get(item["status"], 0) + 1
    assert counted == statuses
    # Rating the same file again re-rates: still one row per call.
    code, _, err = rate(EXAMPLES / "cdrs.csv")
    assert code == EXIT_OK, err
    code, out, _ = run("query", "--limit", "1", "--format", "json")
    assert json.loads(out)["next_cursor"]


def test_rate_keeps_status_reason_and_cost(workdir: Path) -> None:
    code, _, err = rate(small_cdrs(workdir), "--db", "store.db")
    assert code == EXIT_OK, err
    code, out, err = run("query", "--db", "store.db", "--format", "json", "--order", "asc")
    assert code == EXIT_OK, err
    by_id = {i["call_id"]: i for i in json.loads(out)["items"]}
    assert by_id["new-2"]["status"] == "UNRATED"
    assert by_id["new-2"]["reason"] == "NO_RATE"
    assert by_id["new-2"]["cost_micros"] is None
    assert by_id["old-2"]["status"] == "UNANSWERED"
    assert by_id["new-1"]["status"] == "RATED"
    assert by_id["new-1"]["currency"] == "EUR"
    assert by_id["new-1"]["cost_micros"] > 0


def test_no_store_writes_nothing(workdir: Path) -> None:
    code, _, err = rate(small_cdrs(workdir), "--no-store")
    assert code == EXIT_OK
    assert "stored" not in err
    assert not (workdir / "cdrrating.sqlite3").exists()


def test_query_search_time_range_csv_and_cursor(workdir: Path) -> None:
    rate(small_cdrs(workdir))
    code, out, err = run("query", "--search", "44207946", "--format", "csv", "--limit", "1")
    assert code == EXIT_OK, err
    lines = out.splitlines()
    assert lines[0].startswith("call_id,started_at,")
    assert lines[1].startswith("new-1,")
    cursor = err.split("next cursor: ")[1].split()[0]
    code, out, err = run(
        "query", "--search", "44207946", "--format", "csv", "--limit", "1", "--cursor", cursor
    )
    assert code == EXIT_OK, err
    assert out.splitlines()[1].startswith("old-1,")
    assert "next cursor" not in err
    code, out, _ = run(
        "query", "--since", "2099-01-01T00:00:00Z", "--until", "4071081600000", "--format", "jsonl"
    )
    assert [json.loads(line)["call_id"] for line in out.splitlines()] == ["new-2", "new-1"]
    code, out, _ = run(
        "query", "--where", '{"tenant": "b"}', "--fields", "call_id", "--format", "csv"
    )
    assert out.splitlines() == ["call_id", "old-2"]


@pytest.mark.parametrize(
    "bad",
    [
        ["--cursor", "forged.cursor"],
        ["--since", "yesterday-ish"],
        ["--where", "{not json"],
        ["--where", '{"nope": 1}'],
        ["--limit", "0"],
        ["--fields", "call_id,secret"],
    ],
)
def test_query_usage_errors(workdir: Path, bad: list[str]) -> None:
    rate(small_cdrs(workdir))
    code, out, err = run("query", *bad)
    assert code == EXIT_USAGE
    assert out == ""
    assert "error" in err


def test_prune_archives_then_deletes(workdir: Path) -> None:
    rate(small_cdrs(workdir))
    archive = workdir / "archive.jsonl"
    code, _, err = run("prune", "--older-than", "30d", "--archive", str(archive))
    assert code == EXIT_OK, err
    assert "pruned 2 CDRs" in err
    archived = [json.loads(line) for line in archive.read_text(encoding="utf-8").splitlines()]
    assert [a["call_id"] for a in archived] == ["old-1", "old-2"]
    assert archived[0]["status"] == "RATED"
    _, out, _ = run("query", "--fields", "call_id", "--format", "csv")
    assert out.splitlines() == ["call_id", "new-2", "new-1"]


def test_prune_with_an_unwritable_archive_deletes_nothing(workdir: Path) -> None:
    rate(small_cdrs(workdir))
    code, _, err = run("prune", "--older-than", "1d", "--archive", str(workdir / "no" / "x.jsonl"))
    assert code == EXIT_BAD_INPUT
    assert "cannot write" in err
    _, out, _ = run("query", "--fields", "call_id", "--format", "csv")
    assert len(out.splitlines()) == 5


def test_prune_needs_an_archive_or_an_explicit_no(workdir: Path) -> None:
    rate(small_cdrs(workdir))
    code, _, err = run("prune", "--older-than", "30d")
    assert code == EXIT_USAGE
    assert "--no-archive" in err
    code, _, err = run("prune", "--older-than", "30d", "--no-archive", "--tenant", "b")
    assert code == EXIT_OK
    assert "pruned 1 CDRs" in err
    with pytest.raises(SystemExit):
        run("prune", "--older-than", "thirty days", "--no-archive")


def test_storage_commands_degrade_without_sqlalchemy(workdir: Path) -> None:
    cdrs = small_cdrs(workdir)
    code = (
        "import sys; sys.modules['sqlalchemy'] = None\n"
        "from cdrrating.cli import main\n"
        f"args = ['rate', {str(cdrs)!r}, '--rates', {str(EXAMPLES / 'rates.csv')!r}, "
        "'--currency', 'EUR', '--quiet']\n"
        "print('rate', main(args))\n"
        "print('no-store', main(args + ['--no-store']))\n"
        "print('query', main(['query']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert f"rate {EXIT_UNAVAILABLE}" in done.stdout
    assert "no-store 0" in done.stdout
    assert f"query {EXIT_UNAVAILABLE}" in done.stdout
    assert "pip install 'cdrrating[sql]'" in done.stderr
    assert "--no-store" in done.stderr
    assert not (workdir / "cdrrating.sqlite3").exists()


def test_unreachable_database_is_reported(workdir: Path) -> None:
    code, _, err = rate(small_cdrs(workdir), "--db", "sqlite:////nonexistent-dir/x/y.sqlite3")
    assert code == EXIT_UNAVAILABLE
    assert "cannot open" in err and len(err.splitlines()) == 1
