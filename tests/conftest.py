from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import settings

from cdrrating import CDR, Rate, RatePlan

# CI gets more examples; a laptop run stays quick. Derandomised in CI so a red build
# reproduces from its log.
settings.register_profile("ci", max_examples=200, derandomize=True, deadline=None)
settings.register_profile("dev", max_examples=60, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def make_cdr(billsec: int = 60, number: str = "442079460000", **kw: Any) -> CDR:
    kw.setdefault("call_id", "c1")
    kw.setdefault("started_at", T0)
    return CDR(destination_number=number, billsec=billsec, **kw)


def one_rate_plan(rate: Rate, **kw: Any) -> RatePlan:
    kw.setdefault("currency", "EUR")
    return RatePlan([rate], **kw)


@pytest.fixture
def t0() -> datetime:
    return T0


@pytest.fixture(autouse=True, scope="session")
def _cli_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # `cdrrating rate` stores what it rates in ./cdrrating.sqlite3 unless $CDRRATING_DB
    # says otherwise; CLI tests must not leave a database in the checkout.
    patch = pytest.MonkeyPatch()
    patch.setenv("CDRRATING_DB", str(tmp_path_factory.mktemp("cli-db") / "cdrrating.sqlite3"))
    yield
    patch.undo()
