from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cdrrating.cli import EXIT_BAD_INPUT, EXIT_OK, EXIT_REJECTED_ROWS, main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def rate_args(
    cdrs: Path | str, rates: Path | str = EXAMPLES / "rates.csv", *extra: str
) -> list[str]:
    return ["rate", str(cdrs), "--rates", str(rates), "--currency", "EUR", "--quiet", *extra]


def test_rate_examples_json_summary_adds_up() -> None:
    code, out, err = run(*rate_args(EXAMPLES / "cdrs.csv"), "--format", "json")
    assert code == EXIT_OK, err
    data = json.loads(out)
    assert sum(data["status_counts"].values()) == 3000
    assert set(data["status_counts"]) == {"RATED", "UNANSWERED", "UNRATED", "DIRECTION_NOT_RATED"}
    assert set(data["reason_counts"]) == {"NO_RATE", "INVALID_NUMBER"}
    assert sum(d["cost_micros"] for d in data["destinations"]) == data["totals_micros"]["EUR"]
    assert sum(d["calls"] for d in data["destinations"]) == 3000
    assert data["rejected"] == 0


def test_rate_examples_table() -> None:
    code, out, _ = run(*rate_args(EXAMPLES / "cdrs.csv"))
    assert code == EXIT_OK
    assert out.splitlines()[0].split()[:2] == ["Destination", "Calls"]
    assert "Total:" in out and "3000 records, 0 rejected" in out


def test_rejected_rows_are_reported_with_line_numbers(tmp_path: Path) -> None:
    cdrs = tmp_path / "cdrs.csv"
    cdrs.write_text(
        "call_id,started_at,destination_number,billsec,duration\n"
        "ok,2026-01-01T00:00:00Z,4420,60,60\n"
        "bad1,2026-01-01T00:00:00Z,4420,70,60\n"
        "bad2,not a time,44,1,1\n",
        encoding="utf-8",
    )
    code, out, err = run(*rate_args(cdrs), "--format", "json")
    assert code == EXIT_REJECTED_ROWS
    assert f"{cdrs}:3: rejected: billsec" in err
    assert f"{cdrs}:4: rejected: started_at" in err
    assert json.loads(out)["rejected"] == 2


def test_bad_deck_is_refused_whole(tmp_path: Path) -> None:
    deck = tmp_path / "deck.csv"
    deck.write_text("prefix,rate\n44,0.01\n4A,0.02\n49,0.01.2\n", encoding="utf-8")
    code, out, err = run(*rate_args(EXAMPLES / "cdrs.csv", deck))
    assert code == EXIT_BAD_INPUT
    assert out == ""
    assert "2 invalid row(s)" in err and f"{deck}:3" in err and f"{deck}:4" in err


def test_missing_file_and_bom(tmp_path: Path) -> None:
    code, _, err = run(*rate_args(tmp_path / "nope.csv"))
    assert code == EXIT_BAD_INPUT and ("cannot read" in err or "cannot open" in err)
    bom = tmp_path / "bom.csv"
    bom.write_bytes(
        "\ufeffcall_id,started_at,destination_number,billsec\nx,2026-01-01T00:00:00Z,44,5\n".encode()
    )
    code, out, err = run(*rate_args(bom), "--format", "json")
    assert code == EXIT_OK, err
    assert json.loads(out)["status_counts"] == {"RATED": 1}


def test_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    latin = tmp_path / "latin.csv"
    latin.write_bytes(
        "call_id,started_at,destination_number,billsec\nx\xe9,2026-01-01T00:00:00Z,44,5\n".encode(
            "latin-1"
        )
    )
    code, _, err = run(*rate_args(latin))
    assert code == EXIT_BAD_INPUT and "not valid utf-8" in err and "--cdr-encoding" in err
    assert "encoding=" not in err  # the option, not the Python keyword


def test_usage_error_exit_code() -> None:
    with pytest.raises(SystemExit) as info:
        run("rate", "x.csv")
    assert info.value.code == 2


def test_python_dash_m() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cdrrating", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("cdrrating ")
