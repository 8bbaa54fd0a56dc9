"""The benchmark floor (benchmarks/_floor.py) rates as rate() does, on the plans it takes.

bench_frame.py times rate_table against this numpy kernel and checks them against each
other on its own data; here the floor is checked against the object path on the
numbers that make normalisation and longest-prefix lookup hard.
"""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("numpy", reason="the floor needs numpy")
pa = pytest.importorskip("pyarrow", reason="the floor reads Arrow tables")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from cdrrating import CDR, Rate, RatePlan, rate  # noqa: E402

T0 = datetime(2026, 3, 2, 12, tzinfo=UTC)
PREFIXES = ["1", "12", "123", "1234567", "4", "44", "4420", "442079", "44207946", "0044", "9"]
PREFIXES += ["123456789012345678"]  # 18 digits: the whole key


def _load_floor() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "_floor.py"
    spec = importlib.util.spec_from_file_location("_bench_floor", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


floor = _load_floor()


def _plan(catch_all: bool) -> RatePlan:
    shapes = [(60, 60), (1, 1), (30, 6), (0, 7), (45, 1)]
    rates = [
        Rate(
            prefix,
            1_000 + 7_919 * i,
            initial_seconds=shapes[i % len(shapes)][0],
            increment_seconds=shapes[i % len(shapes)][1],
            connection_fee_micros=10_001 if i % 3 == 0 else 0,
        )
        for i, prefix in enumerate(PREFIXES + ([""] if catch_all else []))
    ]
    return RatePlan(rates, currency="EUR")


PLANS = {False: _plan(False), True: _plan(True)}
DECKS = {k: floor.plain_deck(v) for k, v in PLANS.items()}

# Numbers built from deck prefixes, formatting, access prefixes and garbage.
_piece = st.sampled_from([*PREFIXES, "0", "00", "+", " ", "-", ".", "(", ")", "\t", "x", "٣"])
numbers = st.lists(st.one_of(_piece, st.text("0123456789", max_size=20)), max_size=5).map(
    lambda parts: "".join(parts)[:50]  # CDR refuses longer numbers
)
calls = st.tuples(
    numbers,
    st.sampled_from(["ANSWERED", "ANSWERED", "NO ANSWER", "BUSY"]),
    st.integers(0, 4_000),
)


def _via_rate(plan: RatePlan, rows: list[tuple[str, str, int]]) -> list[tuple[Any, ...]]:
    out = []
    for i, (number, disposition, billsec) in enumerate(rows):
        charge = rate(
            CDR(
                call_id=f"c{i}",
                started_at=T0,
                destination_number=number,
                disposition=disposition,
                billsec=billsec,
                duration=billsec,
            ),
            plan,
        )
        reason = None if charge.reason is None else str(charge.reason)
        out.append(
            (charge.cost_micros, charge.billed_seconds, str(charge.status), reason, charge.prefix)
        )
    return out


def _via_floor(catch_all: bool, rows: list[tuple[str, str, int]], how: str) -> list[Any]:
    table = pa.table(
        {
            "destination_number": pa.array([r[0] for r in rows], pa.string()),
            "disposition": pa.array([r[1] for r in rows], pa.string()),
            "billsec": pa.array([r[2] for r in rows], pa.int64()),
        }
    )
    deck = DECKS[catch_all]
    result: list[Any] = floor.rows(deck, floor.rate(deck, table, how))
    return result


WORKED = [
    ("441234", "ANSWERED", 61),
    ("+44 (20) 7946-0000", "ANSWERED", 61),
    ("0044.20.7946", "ANSWERED", 5),
    ("+0044207946", "ANSWERED", 31),
    ("00 0044 1", "ANSWERED", 31),  # the deck prefix 0044, dialled with 00 before it
    ("4", "ANSWERED", 1),  # shorter than 44: only "4" can match
    ("1234", "ANSWERED", 200),
    ("1234567890123456789012345", "ANSWERED", 9),  # longer than the fast path
    ("123456789012345678", "ANSWERED", 9),
    ("12345678901234567", "ANSWERED", 9),  # one digit short of the 18-digit prefix
    ("5551234", "ANSWERED", 10),  # no rate (unless the catch-all)
    ("", "ANSWERED", 10),
    ("+", "ANSWERED", 10),
    ("00", "ANSWERED", 10),
    ("44x1", "ANSWERED", 10),
    ("4+4", "ANSWERED", 10),
    ("٣٣", "ANSWERED", 10),  # digits, but not ASCII
    ("441234", "NO ANSWER", 0),
    ("441234", "ANSWERED", 0),
    ("garbage", "BUSY", 0),
]


@pytest.mark.parametrize("how", ["per-length", "dense", "intervals"])
@pytest.mark.parametrize("catch_all", [False, True])
def test_floor_equals_rate_on_worked_numbers(catch_all: bool, how: str) -> None:
    assert _via_floor(catch_all, WORKED, how) == _via_rate(PLANS[catch_all], WORKED)


def test_floor_refuses_what_it_does_not_price() -> None:
    with pytest.raises(ValueError, match="not a plain rate"):
        floor.plain_deck(RatePlan([Rate("44", 1_000, grace_seconds=5)], currency="EUR"))
    with pytest.raises(ValueError, match="rounds up"):
        floor.plain_deck(RatePlan([Rate("44", 1_000)], currency="EUR", rounding="down"))


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(calls, min_size=1, max_size=40), catch_all=st.booleans())
def test_floor_equals_rate(rows: list[tuple[str, str, int]], catch_all: bool) -> None:
    expected = _via_rate(PLANS[catch_all], rows)
    for how in ("per-length", "dense", "intervals"):
        assert _via_floor(catch_all, rows, how) == expected, how
