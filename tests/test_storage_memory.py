"""The repository contract on the in-memory adapters, plus what is specific to them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cdrrating.memory import MemoryCDRRepository, MemoryRateRepository
from cdrrating.repository import (
    CDRRepository,
    Query,
    RateRepository,
)
from cdrrating.testing.contract import (
    CDRRepositoryContract,
    FakeClock,
    RateRepositoryContract,
    cdr,
)


class TestMemoryCDRRepository(CDRRepositoryContract):
    @pytest.fixture
    def make_cdr_repository(self) -> Callable[..., CDRRepository]:
        def make(*, clock: FakeClock, cursor_key: bytes) -> CDRRepository:
            return MemoryCDRRepository(clock=clock, cursor_key=cursor_key)

        return make

    def test_pages_carry_the_count(self, repo: Any) -> None:
        repo.add_many(cdr(i) for i in range(5))
        assert repo.query(Query(limit=2)).count == 5
        assert "5 CDRs" in repr(repo)


class TestMemoryRateRepository(RateRepositoryContract):
    @pytest.fixture
    def make_rate_repository(self) -> Callable[..., RateRepository]:
        def make(*, clock: FakeClock, cursor_key: bytes) -> RateRepository:
            return MemoryRateRepository(clock=clock, cursor_key=cursor_key)

        return make


def test_memory_adapters_satisfy_the_protocols() -> None:
    assert isinstance(MemoryCDRRepository(), CDRRepository)
    assert isinstance(MemoryRateRepository(), RateRepository)
