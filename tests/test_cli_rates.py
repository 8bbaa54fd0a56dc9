"""`cdrrating rates list|replace|delete` and `cdrrating explain`."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from cdrrating._storage import rows as storage_rows
from cdrrating.cli import EXIT_BAD_INPUT, EXIT_OK, EXIT_REJECTED_ROWS, EXIT_USAGE, main

pytest.importorskip("sqlalchemy")

from cdrrating.errors import ValidationError
from cdrrating.sql import SQLRateRepository

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
HEAD = "prefix,destination,rate,billing_increment\n"
DECK = HEAD + "44,UK,0.042,60/1\n4420,London,0.02,60/60\n49,Germany,0.05,1/1\n"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'rates.sqlite3'}"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def stored(db: str, tenant: str | None = None) -> dict[str, tuple[str, int, str]]:
    """prefix -> (destination, per-minute micros, id) of the stored deck of ``tenant``."""
    repo = SQLRateRepository(db)
    try:
        plan = repo.load_plan(tenant, currency="EUR")
        return {r.prefix: (r.destination, r.per_minute_micros, r.id or "") for r in plan}
    finally:
        repo.engine.dispose()


def listed(db: str, *extra: str) -> list[dict[str, str]]:
    code, out, err = run("rates", "list", "--db", db, "--format", "csv", *extra)
    assert code == EXIT_OK, err
    return list(csv.DictReader(io.StringIO(out)))


# -- list ----------------------------------------------------------------------------------


def test_list_shows_the_stored_deck_of_one_tenant(tmp_path: Path, db: str) -> None:
    deck = write(tmp_path / "deck.csv", DECK)
    assert run("import-rates", str(deck), "--db", db)[0] == EXIT_OK
    assert run("import-rates", str(deck), "--db", db, "--tenant", "acme")[0] == EXIT_OK
    rows = listed(db)
    assert [(r["prefix"], r["per_minute"], r["tenant"]) for r in rows] == [
        ("44", "0.042", ""),
        ("4420", "0.02", ""),
        ("49", "0.05", ""),
    ]
    assert {r["tenant"] for r in listed(db, "--tenant", "acme")} == {"acme"}
    assert [r["prefix"] for r in listed(db, "--prefix", "44")] == ["44", "4420"]
    code, out, err = run("rates", "list", "--db", db, "--format", "json")
    assert code == EXIT_OK and json.loads(out)["count"] == 3
    assert "3 rates in the system deck" in err


# -- replace -------------------------------------------------------------------------------


def test_replace_adds_changes_and_removes_and_says_so(tmp_path: Path, db: str) -> None:
    assert run("import-rates", str(write(tmp_path / "v1.csv", DECK)), "--db", db)[0] == EXIT_OK
    before = stored(db)
    v2 = write(
        tmp_path / "v2.csv", HEAD + "44,UK,0.045,60/1\n49,Germany,0.05,1/1\n33,France,0.03,1/1\n"
    )
    code, out, err = run("rates", "replace", str(v2), "--db", db, "--format", "jsonl")
    assert code == EXIT_OK, err
    changes = {r["prefix"]: r for r in map(json.loads, out.splitlines())}
    assert {p: c["change"] for p, c in changes.items()} == {
        "33": "added",
        "44": "changed",
        "4420": "removed",
    }
    assert changes["44"]["what"] == "price per minute 0.042 -> 0.045"
    assert "1 added, 1 changed, 1 removed, 1 unchanged" in err
    after = stored(db)
    assert after["44"] == ("UK", 45_000, before["44"][2])  # changed in place: same id
    assert after["49"] == before["49"]
    assert set(after) == {"33", "44", "49"}
    # The same deck again changes nothing.
    code, out, err = run("rates", "replace", str(v2), "--db", db, "--format", "jsonl")
    assert (code, out) == (EXIT_OK, "")
    assert "0 added, 0 changed, 0 removed, 3 unchanged" in err


def test_replace_only_touches_the_tenant_named(tmp_path: Path, db: str) -> None:
    deck = write(tmp_path / "v1.csv", DECK)
    for tenant in ("acme", "globex"):
        assert run("import-rates", str(deck), "--db", db, "--tenant", tenant)[0] == EXIT_OK
    v2 = write(tmp_path / "v2.csv", HEAD + "44,UK,0.01,60/1\n")
    assert run("rates", "replace", str(v2), "--db", db, "--tenant", "acme")[0] == EXIT_OK
    assert set(stored(db, "acme")) == {"44"}
    assert set(stored(db, "globex")) == {"44", "4420", "49"}
    assert stored(db) == {}


def test_replace_matches_by_id_when_the_deck_has_ids(tmp_path: Path, db: str) -> None:
    ids = "id,prefix,destination,rate,billing_increment\n"
    v1 = write(tmp_path / "v1.csv", ids + "uk,44,UK,0.04,60/1\nde,49,Germany,0.05,1/1\n")
    assert run("import-rates", str(v1), "--db", db)[0] == EXIT_OK
    # The UK rate moves to another prefix: by id it is the same rate, changed.
    v2 = write(tmp_path / "v2.csv", ids + "uk,4420,UK,0.04,60/1\nde,49,Germany,0.05,1/1\n")
    code, out, err = run("rates", "replace", str(v2), "--db", db, "--format", "jsonl")
    assert code == EXIT_OK, err
    (change,) = map(json.loads, out.splitlines())
    assert (change["change"], change["id"], change["what"]) == (
        "changed",
        "uk",
        "prefix 44 -> 4420",
    )


def test_replace_dry_run_writes_nothing(tmp_path: Path, db: str) -> None:
    assert run("import-rates", str(write(tmp_path / "v1.csv", DECK)), "--db", db)[0] == EXIT_OK
    before = stored(db)
    v2 = write(tmp_path / "v2.csv", HEAD + "44,UK,0.05,60/1\n")
    code, out, err = run("rates", "replace", str(v2), "--db", db, "--dry-run", "--format", "jsonl")
    assert code == EXIT_OK, err
    assert len(out.splitlines()) == 3 and "would change" in err
    assert stored(db) == before


def test_replace_is_one_transaction(
    tmp_path: Path, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("import-rates", str(write(tmp_path / "v1.csv", DECK)), "--db", db)[0] == EXIT_OK
    before = stored(db)
    v2 = write(tmp_path / "v2.csv", HEAD + "44,UK,0.05,60/1\n33,France,0.03,1/1\n")
    real = storage_rows.rate_row

    def failing(rate, created_us, updated_us, position=None):  # type: ignore[no-untyped-def]
        if rate.prefix == "33":  # the last statement: after the delete and the update
            raise ValidationError("prefix", "33", "a failure in the middle")
        return real(rate, created_us, updated_us, position)

    monkeypatch.setattr(storage_rows, "rate_row", failing)
    code, _, err = run("rates", "replace", str(v2), "--db", db)
    assert code == EXIT_BAD_INPUT and "a failure in the middle" in err
    monkeypatch.undo()
    assert stored(db) == before  # neither the removal of 4420 nor the change of 44


def test_replace_refuses_a_deck_that_is_not_a_valid_plan(tmp_path: Path, db: str) -> None:
    assert run("import-rates", str(write(tmp_path / "v1.csv", DECK)), "--db", db)[0] == EXIT_OK
    before = stored(db)
    bad = write(tmp_path / "bad.csv", HEAD + "44,UK,0.05,60/1\n44,UK,0.06,60/1\n")
    code, out, err = run("rates", "replace", str(bad), "--db", db)
    assert (code, out) == (EXIT_BAD_INPUT, "")
    assert "bad.csv" in err
    assert stored(db) == before


# -- delete --------------------------------------------------------------------------------


def test_delete_by_id_prefix_or_all(tmp_path: Path, db: str) -> None:
    assert run("import-rates", str(write(tmp_path / "v1.csv", DECK)), "--db", db)[0] == EXIT_OK
    uk_id = stored(db)["44"][2]
    code, _, err = run("rates", "delete", "--db", db, "--id", uk_id)
    assert code == EXIT_OK and "deleted 1 rates" in err
    assert set(stored(db)) == {"4420", "49"}
    # A rate that is not stored: nothing is deleted, not even the ones that are.
    code, _, err = run("rates", "delete", "--db", db, "--prefix", "49", "--prefix", "99")
    assert code == EXIT_BAD_INPUT and "'99'" in err
    assert set(stored(db)) == {"4420", "49"}
    assert run("rates", "delete", "--db", db, "--prefix", "49")[0] == EXIT_OK
    assert run("rates", "delete", "--db", db, "--all")[0] == EXIT_OK
    assert stored(db) == {}
    assert run("rates", "delete", "--db", db)[0] == EXIT_USAGE
    assert run("rates", "delete", "--db", db, "--all", "--prefix", "44")[0] == EXIT_USAGE


# -- explain -------------------------------------------------------------------------------


def test_explain_a_stored_call_and_say_when_the_stored_charge_differs(
    tmp_path: Path, db: str
) -> None:
    deck = write(tmp_path / "v1.csv", DECK)
    cdrs = write(
        tmp_path / "cdrs.csv",
        "call_id,started_at,destination_number,billsec\n"
        "uk,2026-10-01T10:00:00Z,00442079460000,61\n"
        "no,2026-10-01T10:00:00Z,00999,61\n",
    )
    assert run("import-rates", str(deck), "--db", db)[0] == EXIT_OK
    code, _, err = run("import-cdrs", str(cdrs), "--db", db, "--rate", "--currency", "EUR")
    assert code == EXIT_OK, err
    code, out, err = run("explain", "uk", "--db", db)
    assert code == EXIT_OK, err
    assert "Rate: prefix '4420' (London) won" in out
    assert out.rstrip().endswith("The stored charge (0.04 EUR) matches.")
    # Unrated then, unrated now; with no cost stored, the currency must be given.
    assert run("explain", "no", "--db", db)[0] == EXIT_USAGE
    assert run("explain", "no", "--db", db, "--currency", "EUR")[0] == EXIT_OK
    # The deck changes: the stored charge is no longer what the stored deck gives.
    v2 = write(tmp_path / "v2.csv", DECK.replace("4420,London,0.02", "4420,London,0.03"))
    assert run("rates", "replace", str(v2), "--db", db)[0] == EXIT_OK
    code, out, err = run("explain", "uk", "--db", db)
    assert code == EXIT_REJECTED_ROWS
    assert "THE STORED CHARGE DIFFERS" in out and "stored 0.04 EUR, now 0.06 EUR" in out
    # With the deck file it was rated with, it matches again.
    code, out, _ = run("explain", "uk", "--db", db, "--rates", str(deck))
    assert code == EXIT_OK and "matches" in out


def test_explain_errors(tmp_path: Path, db: str) -> None:
    cdrs = write(
        tmp_path / "cdrs.csv",
        "call_id,started_at,destination_number,billsec\nraw,2026-10-01T10:00:00Z,4420,61\n",
    )
    assert run("import-cdrs", str(cdrs), "--db", db)[0] == EXIT_OK  # stored unrated
    code, _, err = run("explain", "nope", "--db", db)
    assert code == EXIT_BAD_INPUT and "no call with call_id 'nope'" in err
    code, _, err = run("explain", "raw", "--db", db)
    assert code == EXIT_USAGE and "--currency" in err
    code, out, _ = run(
        "explain",
        "raw",
        "--db",
        db,
        "--rates",
        str(write(tmp_path / "d.csv", DECK)),
        "--currency",
        "EUR",
    )
    assert code == EXIT_OK and "stored unrated" in out


def test_explain_a_call_stored_by_rate_with_its_deck_file(tmp_path: Path) -> None:
    cdrs = write(
        tmp_path / "cdrs.csv",
        "call_id,started_at,destination_number,billsec\nuk,2026-10-01T10:00:00Z,00442079460000,61\n",
    )
    deck = write(tmp_path / "deck.csv", DECK)
    db = str(tmp_path / "x.db")
    argv = ["rate", str(cdrs), "--rates", str(deck), "--currency", "EUR", "--db", db]
    assert run(*argv)[0] == EXIT_OK
    code, out, err = run("explain", "uk", "--db", db, "--rates", str(deck))
    assert code == EXIT_OK, err
    assert "Cost: 0.04 EUR (40,000 micros)" in out


def test_replace_refuses_when_the_stored_deck_changed_since_it_was_read(
    tmp_path: Path, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cdrrating.cli._deck as deck_module  # noqa: PLC0415 - the module under test

    assert run("import-rates", str(write(tmp_path / "v1.csv", DECK)), "--db", db)[0] == EXIT_OK
    before = stored(db)
    real = deck_module._stored_rates

    def read_then_someone_writes(repo, tenant):  # type: ignore[no-untyped-def]
        read = real(repo, tenant)
        other = SQLRateRepository(db)
        try:
            other.delete(before["49"][2])
        finally:
            other.engine.dispose()
        return read

    monkeypatch.setattr(deck_module, "_stored_rates", read_then_someone_writes)
    v2 = write(tmp_path / "v2.csv", HEAD + "44,UK,0.05,60/1\n49,Germany,0.05,1/1\n")
    code, _, err = run("rates", "replace", str(v2), "--db", db)
    assert code == EXIT_BAD_INPUT and "changed while it was being compared" in err
    after = stored(db)
    assert after["44"] == before["44"] and "49" not in after  # only the other writer's change
