"""cdrrating.plancache and cdrrating.sqlplans: tenants' plan settings stored, plans built
once and never served after a rate write through the cache returned."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdrrating import CDR, Conflict, NotFound, Rate, RatePlan, ValidationError, rate, to_micros
from cdrrating.charge import ChargeStatus, Reason
from cdrrating.memory import MemoryRateRepository
from cdrrating.plancache import (
    MemoryPlanGenerations,
    MemoryPlanSettingsRepository,
    PlanCache,
    PlanSettings,
    PlanSettingsRepository,
    WatchedRateRepository,
)
from cdrrating.repository import Query, RateRepository

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
EUR = PlanSettings(currency="EUR")
WAIT = 30  # seconds: a bound on waiting for another thread, never a pause


def call(tenant: str | None = "a", billsec: int = 60, call_id: str = "c1") -> CDR:
    return CDR(
        call_id=call_id,
        started_at=T0,
        destination_number="442079460000",
        billsec=billsec,
        tenant=tenant,
    )


def per_minute(price: str, tenant: str | None = "a", prefix: str = "44", **kw: Any) -> Rate:
    return Rate(prefix, to_micros(price), tenant=tenant, **kw)


class CountingRates(MemoryRateRepository):
    """A memory repository that counts plan loads and can hold one mid-load."""

    def __init__(self) -> None:
        super().__init__()
        self.loads = 0
        self.hold: Callable[[], None] | None = None

    def load_plan(self, tenant: str | None, at: datetime | None = None, **kw: Any) -> RatePlan:
        plan = super().load_plan(tenant, at, **kw)
        self.loads += 1  # under the cache's per-tenant loading lock
        if self.hold is not None:
            self.hold()
        return plan


def make_cache(**kw: Any) -> tuple[PlanCache, CountingRates]:
    rates = CountingRates()
    return PlanCache(rates, MemoryPlanSettingsRepository(), **kw), rates


# -- PlanSettings ---------------------------------------------------------------------------


def test_settings_round_trip_through_a_mapping() -> None:
    settings = PlanSettings(
        currency="USD",
        rounding="half_even",  # type: ignore[arg-type]
        quantum_micros=10_000,
        access_prefixes=("00", "011"),
        timezone="America/New_York",
        holidays={"US": ["2026-07-04"]},  # type: ignore[dict-item]
        band_policy="start",  # type: ignore[arg-type]
        name="retail",
    )
    mapping = settings.to_mapping()
    assert mapping["holidays"] == {"US": ["2026-07-04"]}
    assert mapping["rounding"] == "half_even"
    assert PlanSettings.from_mapping(mapping) == settings
    plan = settings.plan([per_minute("0.01")], tenant="a")
    assert (plan.currency, plan.quantum_micros, plan.name) == ("USD", 10_000, "retail")


@pytest.mark.parametrize(
    ("mapping", "field"),
    [
        ({"currency": "eur"}, "currency"),
        ({"currency": "EUR", "rounding": "sideways"}, "rounding"),
        ({"currency": "EUR", "quantum_micros": 0}, "quantum"),
        ({"currency": "EUR", "timezone": "Mars/Olympus"}, "timezone"),
        ({"currency": "EUR", "colour": "red"}, "colour"),
        ({"rounding": "up"}, "currency"),
    ],
)
def test_settings_a_plan_would_refuse_are_refused_naming_the_field(
    mapping: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        PlanSettings.from_mapping(mapping)
    assert caught.value.field.startswith(field)


# -- where settings are kept: memory, SQLite, PostgreSQL -------------------------------------


def _sql_settings(url: str) -> Iterator[PlanSettingsRepository]:
    # Imported here: the memory cases run without the [sql] extra.
    pytest.importorskip("sqlalchemy")
    from cdrrating.sql import make_engine  # noqa: PLC0415
    from cdrrating.sqlplans import (  # noqa: PLC0415
        SQLPlanSettingsRepository,
        define_plan_settings_table,
    )

    engine = make_engine(url)
    table = define_plan_settings_table(f"cdrrating_t{uuid.uuid4().hex[:8]}_")
    try:
        repo = SQLPlanSettingsRepository(engine, table=table, create=True)
    except Exception as error:  # an unreachable server
        engine.dispose()
        if os.environ.get("CI") == "true":
            pytest.fail(f"{url} is unreachable: {error}")
        pytest.skip(f"{url} is unreachable: {error}")
    try:
        yield repo
    finally:
        table.drop(engine)
        engine.dispose()


@pytest.fixture(params=["memory", "sqlite", "postgresql", "mysql"])
def settings_repository(
    request: pytest.FixtureRequest, tmp_path: Any
) -> Iterator[PlanSettingsRepository]:
    if request.param == "memory":
        yield MemoryPlanSettingsRepository()
    elif request.param == "sqlite":
        yield from _sql_settings(f"sqlite:///{tmp_path / 'settings.sqlite3'}")
    else:
        env = f"CDRRATING_TEST_{'POSTGRES' if request.param == 'postgresql' else 'MYSQL'}_URL"
        url = os.environ.get(env)
        if not url:
            pytest.skip(f"{env} is not set: no server to test against")
        yield from _sql_settings(url)


def test_settings_repository(settings_repository: PlanSettingsRepository) -> None:
    repo = settings_repository
    assert isinstance(repo, PlanSettingsRepository)
    with pytest.raises(NotFound):
        repo.get("acme")
    usd = PlanSettings(currency="USD", holidays={"US": ["2026-07-04"]})  # type: ignore[dict-item]
    assert repo.put("acme", EUR) == EUR
    assert repo.put("acme", usd) == usd  # a second put replaces
    repo.put("Acme", EUR)  # tenants differ by case, whatever the collation
    repo.put("acme ", EUR)  # and by trailing spaces
    repo.put(None, PlanSettings(currency="GBP"))
    assert repo.get("acme") == usd
    assert repo.get("Acme") == EUR
    assert repo.get(None).currency == "GBP"
    repo.delete("acme")
    with pytest.raises(NotFound):
        repo.get("acme")
    with pytest.raises(NotFound):
        repo.delete("acme")
    assert repo.get("acme ") == EUR
    with pytest.raises(ValidationError):
        repo.put("", EUR)  # "" would be a second spelling of "no tenant"
    with pytest.raises(ValidationError):
        repo.put("x", {"currency": "EUR"})  # type: ignore[arg-type]


# -- the cache: plans follow the writes -----------------------------------------------------


def test_a_tenant_without_settings_has_no_plan_and_its_calls_are_unrated() -> None:
    cache, _ = make_cache()
    cache.rates.add(per_minute("0.01"))
    charge = cache.rate(call())
    assert (charge.status, charge.reason, charge.cost_micros) == (
        ChargeStatus.UNRATED,
        Reason.NO_PLAN,
        None,
    )
    with pytest.raises(NotFound):
        cache.settings("a")


def test_the_default_settings_price_tenants_without_their_own() -> None:
    cache, _ = make_cache(default=EUR)
    cache.rates.add(per_minute("0.01"))
    assert cache.settings("a") == EUR
    assert cache.rate(call()).cost_micros == 10_000
    cache.put_settings("a", PlanSettings(currency="USD", quantum_micros=100_000))
    charge = cache.rate(call(billsec=1))  # 0.01/60 rounded up to a 0.10 quantum
    assert (charge.currency, charge.cost_micros) == ("USD", 100_000)
    cache.delete_settings("a")
    assert cache.rate(call()).currency == "EUR"


def test_a_plan_is_built_once_and_again_after_each_write() -> None:
    cache, rates = make_cache(default=EUR)
    stored = cache.rates.add(per_minute("0.01"))
    for _ in range(3):
        assert cache.rate(call()).cost_micros == 10_000
    assert rates.loads == 1 == cache.loads

    cache.rates.update(stored.id, {"per_minute_micros": to_micros("0.02")}, tenant="a")
    assert cache.rate(call()).cost_micros == 20_000
    cache.rates.replace(per_minute("0.03", id=stored.id), tenant="a")
    assert cache.rate(call()).cost_micros == 30_000
    cache.rates.add_many([{"prefix": "4420", "per_minute_micros": 40_000, "tenant": "a"}])
    assert cache.rate(call()).cost_micros == 40_000
    london = cache.rates.query(Query(tenant="a", search="4420")).items[0]
    cache.rates.delete(london.id, tenant="a")
    assert cache.rate(call()).cost_micros == 30_000
    cache.put_settings("a", PlanSettings(currency="USD"))
    assert cache.rate(call()).currency == "USD"
    assert rates.loads == 6


def test_a_write_to_one_tenant_leaves_the_others_plans_alone() -> None:
    cache, rates = make_cache(default=EUR)
    cache.rates.add_many([per_minute("0.01", tenant="a"), per_minute("0.02", tenant="b")])
    assert cache.rate(call("a")).cost_micros == 10_000
    assert cache.rate(call("b")).cost_micros == 20_000
    cache.rates.add(per_minute("0.05", tenant="a", prefix="4420"))
    assert cache.rate(call("b")).cost_micros == 20_000
    assert rates.loads == 2  # b was not loaded again
    assert cache.rate(call("a")).cost_micros == 50_000
    assert rates.loads == 3


def test_a_failed_write_still_invalidates_and_raises() -> None:
    cache, rates = make_cache(default=EUR)
    first = cache.rates.add(per_minute("0.01"))
    cache.plan("a")
    with pytest.raises(Conflict):
        cache.rates.add(first.rate)
    cache.plan("a")
    assert rates.loads == 2


def test_writes_whose_tenants_cannot_be_told_invalidate_every_plan() -> None:
    cache, rates = make_cache(default=EUR)
    cache.rates.add(per_minute("0.01", tenant="b"))
    cache.plan("b")
    with pytest.raises(ValidationError):
        cache.rates.add_many([object()])  # type: ignore[list-item]
    cache.plan("b")
    assert rates.loads == 2


def test_invalidate_for_changes_made_elsewhere() -> None:
    cache, rates = make_cache(default=EUR)
    cache.rates.add(per_minute("0.01"))
    assert cache.rate(call()).cost_micros == 10_000
    rates.add(per_minute("0.02", prefix="4420"))  # behind the cache's back
    assert cache.rate(call()).cost_micros == 10_000  # not seen: the documented limit
    cache.invalidate("a")
    assert cache.rate(call()).cost_micros == 20_000
    rates.add(per_minute("0.03", prefix="44207"))
    cache.invalidate()
    assert cache.rate(call()).cost_micros == 30_000


def test_at_most_max_plans_are_kept_least_recently_used_first_out() -> None:
    cache, rates = make_cache(default=EUR, max_plans=2)
    for tenant in "abc":
        cache.rates.add(per_minute("0.01", tenant=tenant))
    cache.plan("a")
    cache.plan("b")
    cache.plan("a")  # b is now the least recently used
    cache.plan("c")  # evicts b
    assert rates.loads == 3
    cache.plan("a")
    assert rates.loads == 3
    cache.plan("b")
    assert rates.loads == 4


def test_watched_repository_passes_reads_through() -> None:
    inner = MemoryRateRepository()
    seen: list[Any] = []
    watched = WatchedRateRepository(inner, seen.append)
    assert isinstance(watched, RateRepository)
    stored = watched.add(per_minute("0.01"))
    assert watched.get(stored.id, tenant="a") == stored
    assert watched.count(Query(tenant="a")) == 1
    assert list(watched.query(Query(tenant="a"))) == [stored]
    assert len(watched.load_plan("a", currency="EUR")) == 1
    assert seen == [{"a"}]


@pytest.mark.parametrize(
    ("options", "field"),
    [({"max_plans": 0}, "max_plans"), ({"default": {"currency": "EUR"}}, "settings")],
)
def test_cache_options_are_checked(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        PlanCache(MemoryRateRepository(), MemoryPlanSettingsRepository(), **options)
    assert caught.value.field == field
    cache, _ = make_cache()
    with pytest.raises(ValidationError):
        cache.rate({"call_id": "x"})  # type: ignore[arg-type]


# -- concurrency: threads and barriers, no sleeping ------------------------------------------


def run_threads(count: int, work: Callable[[int], None]) -> None:
    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            work(i)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
        assert not t.is_alive(), "a thread did not finish"
    assert not errors, errors


class CountedLock:
    """A lock that tells ``changed`` when a thread starts waiting for it."""

    def __init__(self, changed: threading.Condition, waiting: list[int]) -> None:
        self._lock = threading.Lock()
        self._changed, self._waiting = changed, waiting

    def __enter__(self) -> None:
        if not self._lock.acquire(blocking=False):
            with self._changed:
                self._waiting[0] += 1
                self._changed.notify_all()
            self._lock.acquire()

    def __exit__(self, *_exc: object) -> None:
        self._lock.release()


def test_concurrent_misses_load_the_plan_once() -> None:
    cache, rates = make_cache(default=EUR)
    cache.rates.add(per_minute("0.01"))
    changed, waiting = threading.Condition(), [0]
    # Tenant a's loading lock, counting who waits on it.
    cache._loading["a"] = CountedLock(changed, waiting)  # type: ignore[assignment]

    def hold() -> None:  # the first load finishes once the 7 others wait for it, or load too
        rates.hold = None
        with changed:
            assert changed.wait_for(lambda: waiting[0] == 7 or rates.loads > 1, WAIT)

    def loaded() -> None:
        with changed:
            changed.notify_all()

    rates.hold = hold
    start = threading.Barrier(8)
    got: list[RatePlan | None] = [None] * 8

    def ask(i: int) -> None:
        start.wait(WAIT)
        got[i] = cache.plan("a")
        loaded()

    run_threads(8, ask)
    assert rates.loads == 1
    assert all(plan is got[0] for plan in got)


def test_a_plan_loaded_while_a_write_lands_is_never_served_after_the_write() -> None:
    cache, rates = make_cache(default=EUR)
    cache.rates.add(per_minute("0.01"))
    read_old_deck, write_done = threading.Event(), threading.Event()

    def hold() -> None:  # the loader has read the old deck; keep it there until the write
        rates.hold = None
        read_old_deck.set()
        assert write_done.wait(WAIT)

    rates.hold = hold
    loader = threading.Thread(target=cache.plan, args=("a",))
    loader.start()
    assert read_old_deck.wait(WAIT)
    cache.rates.add(per_minute("0.02", prefix="4420"))  # returns while the load is held
    write_done.set()
    loader.join(WAIT)
    assert not loader.is_alive()
    # The held load finished after the write and cached the old deck; it is not served.
    assert cache.rate(call()).cost_micros == 20_000
    assert rates.loads == 2


def test_under_concurrent_rating_each_write_is_seen_by_the_next_call() -> None:
    cache, _ = make_cache(default=EUR)
    stored = cache.rates.add(per_minute("0.000001"))
    done = threading.Event()
    ready = threading.Barrier(5)

    def writer(_i: int) -> None:
        ready.wait(WAIT)
        try:
            for micros in range(2, 202):
                cache.rates.update(stored.id, {"per_minute_micros": micros}, tenant="a")
                # Whatever the readers are doing, a call priced now sees this price.
                assert cache.rate(call()).cost_micros == micros
        finally:
            done.set()

    def reader(_i: int) -> None:
        ready.wait(WAIT)
        while not done.is_set():
            cost = cache.rate(call()).cost_micros
            assert cost is not None
            assert 1 <= cost <= 201

    run_threads(5, lambda i: writer(i) if i == 0 else reader(i))


# -- a property: after any sequence of writes, the cache prices as a fresh plan does ---------

TENANTS = ("a", "b")
OPS = st.lists(
    st.tuples(
        st.sampled_from(["add", "update", "delete", "settings", "rate", "invalidate"]),
        st.sampled_from(TENANTS),
        st.sampled_from(["4", "44", "442", "4420"]),
        st.integers(0, 50_000),
    ),
    max_size=40,
)


@given(OPS)
def test_the_cache_always_prices_as_a_plan_built_now(ops: list[tuple[str, str, str, int]]) -> None:
    cache, inner = make_cache(default=EUR)
    for op, tenant, prefix, micros in ops:
        found = inner.query(Query(tenant=tenant, where={"prefix": prefix})).items
        if op == "add" and not found:
            cache.rates.add(Rate(prefix, micros, tenant=tenant))
        elif op == "update" and found:
            cache.rates.update(found[0].id, {"per_minute_micros": micros}, tenant=tenant)
        elif op == "delete" and found:
            cache.rates.delete(found[0].id, tenant=tenant)
        elif op == "settings":
            cache.put_settings(tenant, PlanSettings(currency="EUR", quantum_micros=1 + micros % 7))
        elif op == "invalidate":
            cache.invalidate(tenant)
        for t in TENANTS:
            fresh = inner.load_plan(t, **cache.settings(t).plan_options(t))
            cdr = call(t, billsec=1 + micros % 600)
            assert cache.rate(cdr) == rate(cdr, fresh)


# -- several processes: caches that share their write counters --------------------------------


def test_caches_sharing_generations_see_each_others_writes_in_memory() -> None:
    rates, store, shared = MemoryRateRepository(), MemoryPlanSettingsRepository(), None
    shared = MemoryPlanGenerations()
    one, two = (PlanCache(rates, store, generations=shared) for _ in range(2))
    one.put_settings("a", EUR)
    stored = one.rates.add(per_minute("0.01"))
    assert two.rate(call()).cost_micros == 10_000
    one.rates.update(stored.id, {"per_minute_micros": 20_000}, tenant="a")
    assert two.rate(call()).cost_micros == 20_000
    alone = PlanCache(rates, store)  # without the shared counters: the limit it lifts
    assert alone.rate(call()).cost_micros == 20_000
    one.rates.update(stored.id, {"per_minute_micros": 30_000}, tenant="a")
    assert alone.rate(call()).cost_micros == 20_000
    assert two.rate(call()).cost_micros == 30_000


class Process:
    """One worker process: its own engine, repositories and cache, over a shared
    database (only the database is shared, as between processes)."""

    def __init__(self, url: str, prefix: str, *, hooked: bool = False) -> None:
        from cdrrating.sql import SQLRateRepository, define_tables, make_engine  # noqa: PLC0415
        from cdrrating.sqlplans import (  # noqa: PLC0415
            SQLPlanGenerations,
            SQLPlanSettingsRepository,
            define_plan_generations_table,
            define_plan_settings_table,
        )

        self.engine = make_engine(url)
        self.tables = define_tables(prefix)
        settings_table = define_plan_settings_table(prefix, self.tables.metadata)
        generations_table = define_plan_generations_table(prefix, self.tables.metadata)
        self.tables.metadata.create_all(self.engine)
        outer = self

        class Rates(SQLRateRepository):
            def update(self, *args: Any, **kw: Any) -> Any:
                stored = super().update(*args, **kw)
                outer.after_update()  # committed, not yet counted out
                return stored

            def load_plan(self, *args: Any, **kw: Any) -> RatePlan:
                plan = super().load_plan(*args, **kw)
                outer.loads += 1
                outer.after_load()  # the deck is read, the plan not yet kept
                return plan

        self.loads = 0
        self.after_update: Callable[[], None] = lambda: None
        self.after_load: Callable[[], None] = lambda: None
        self.raw = Rates(self.engine, tables=self.tables)
        self.generations = SQLPlanGenerations(self.engine, table=generations_table)
        settings_repo = SQLPlanSettingsRepository(self.engine, table=settings_table)
        self.cache = PlanCache(self.raw, settings_repo, generations=self.generations)

    def price(self, tenant: str = "a") -> int | None:
        return self.cache.rate(call(tenant)).cost_micros


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def processes(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Callable[[], Process]]:
    pytest.importorskip("sqlalchemy")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    else:
        env = f"CDRRATING_TEST_{'POSTGRES' if request.param == 'postgresql' else 'MYSQL'}_URL"
        found = os.environ.get(env)
        if not found:
            pytest.skip(f"{env} is not set: no server to test against")
        url = found
    prefix = f"cdrrating_g{uuid.uuid4().hex[:8]}_"
    made: list[Process] = []

    def make() -> Process:
        try:
            made.append(Process(url, prefix))
        except Exception as error:  # an unreachable server
            if made or os.environ.get("CI") == "true":
                raise
            pytest.skip(f"{url} is unreachable: {error}")
        return made[-1]

    try:
        yield make
    finally:
        if made:
            made[0].tables.metadata.drop_all(made[0].engine)
        for p in made:
            p.engine.dispose()


def test_a_write_through_one_process_is_seen_by_the_other(
    processes: Callable[[], Process],
) -> None:
    one, two = processes(), processes()
    one.cache.put_settings("a", EUR)
    one.cache.put_settings("b", EUR)
    stored = one.cache.rates.add(per_minute("0.01"))
    two.cache.rates.add(per_minute("0.05", tenant="b"))
    assert (two.price(), two.price("b"), two.loads) == (10_000, 50_000, 2)
    assert (two.price(), two.loads) == (10_000, 2)  # kept while nothing changed
    one.cache.rates.update(stored.id, {"per_minute_micros": 20_000}, tenant="a")
    assert (two.price(), two.price("b"), two.loads) == (20_000, 50_000, 3)  # b kept
    one.cache.put_settings("a", PlanSettings(currency="USD"))
    assert two.cache.rate(call()).currency == "USD"
    one.cache.rates.delete(stored.id, tenant="a")
    assert two.cache.rate(call()).status is not ChargeStatus.RATED  # no rate left
    one.cache.rates.add_many([{"prefix": "44", "per_minute_micros": 7, "tenant": "a"}])
    assert two.price() == 7


def test_a_write_committed_but_not_yet_counted_out_is_seen(
    processes: Callable[[], Process],
) -> None:
    writer, reader = processes(), processes()
    writer.cache.put_settings("a", EUR)
    stored = writer.cache.rates.add(per_minute("0.01"))
    assert reader.price() == 10_000
    seen: list[int | None] = []
    writer.after_update = lambda: seen.extend([reader.price(), reader.price()])
    writer.cache.rates.update(stored.id, {"per_minute_micros": 20_000}, tenant="a")
    # Between the rate's commit and the count out, each call loads the plan afresh.
    assert seen == [20_000, 20_000]
    loads = reader.loads
    assert (reader.price(), reader.price(), reader.loads) == (20_000, 20_000, loads + 1)


def test_a_plan_loaded_before_a_write_elsewhere_is_not_kept_past_it(
    processes: Callable[[], Process],
) -> None:
    writer, reader = processes(), processes()
    writer.cache.put_settings("a", EUR)
    stored = writer.cache.rates.add(per_minute("0.01"))

    def write_once() -> None:
        reader.after_load = lambda: None
        writer.cache.rates.update(stored.id, {"per_minute_micros": 20_000}, tenant="a")

    reader.after_load = write_once  # the reader has read the old deck
    assert reader.price() == 10_000  # asked before the write committed
    assert reader.price() == 20_000


def test_writes_outside_the_caches_are_seen_inside_writing_or_after_invalidate(
    processes: Callable[[], Process],
) -> None:
    one, two = processes(), processes()
    one.cache.put_settings("a", EUR)
    stored = one.cache.rates.add(per_minute("0.01"))
    assert two.price() == 10_000
    with one.cache.writing("a"):
        one.raw.update(stored.id, {"per_minute_micros": 20_000}, tenant="a")
        assert two.price() == 20_000  # committed: seen before the block ends
    assert two.price() == 20_000
    one.raw.update(stored.id, {"per_minute_micros": 30_000}, tenant="a")
    assert two.price() == 20_000  # not counted: the documented limit
    one.cache.invalidate("a")
    assert two.price() == 30_000
    one.raw.update(stored.id, {"per_minute_micros": 40_000}, tenant="a")
    one.cache.invalidate()  # every tenant
    assert two.price() == 40_000


def test_concurrent_processes_each_call_sees_every_write_committed_before_it(
    processes: Callable[[], Process],
) -> None:
    writer, readers = processes(), [processes(), processes()]
    writer.cache.put_settings("a", EUR)
    stored = writer.cache.rates.add(per_minute("0.000060"))  # 1 micro a second
    committed = [1]  # the price of the last write known to have committed
    done = threading.Event()

    def work(i: int) -> None:
        if i == 0:
            for price in range(2, 80):
                changes = {"per_minute_micros": 60 * price}  # `price` micros a second
                writer.cache.rates.update(stored.id, changes, tenant="a")
                committed.append(price)
            done.set()
            return
        reader = readers[i - 1]
        while not done.is_set():
            floor = committed[-1]  # read before the call asks for its plan
            seen = reader.cache.rate(call(billsec=1)).cost_micros
            assert seen is not None
            assert seen >= floor, (seen, floor)

    run_threads(3, work)
    assert [r.price() for r in readers] == [79 * 60, 79 * 60]


def test_a_write_never_counted_out_stops_caching_until_repaired(
    processes: Callable[[], Process],
) -> None:
    crashed, other = processes(), processes()
    crashed.cache.put_settings("a", EUR)
    crashed.cache.rates.add(per_minute("0.01"))
    crashed.generations.begin(["a"])  # ... and the process died
    loads = other.loads
    assert [other.price() for _ in range(3)] == [10_000] * 3
    assert other.loads == loads + 3
    other.generations.repair("a")
    assert [other.price() for _ in range(3)] == [10_000] * 3
    assert other.loads == loads + 4
    assert other.generations.stamp("a") is not None


def test_sql_generations_count_per_tenant_and_for_every_tenant(
    processes: Callable[[], Process],
) -> None:
    g = processes().generations
    assert g.stamp("a") == g.stamp("b") == (0, 0)
    g.begin(["a", "Acme", "acme "])
    assert (g.stamp("a"), g.stamp("Acme"), g.stamp("acme")) == (None, None, (0, 0))
    g.end(["a", "Acme", "acme "])
    assert (g.stamp("a"), g.stamp("acme "), g.stamp("b")) == ((1, 0), (1, 0), (0, 0))
    g.begin([], every=True)
    assert g.stamp("b") is None
    g.end([], every=True)
    assert (g.stamp("a"), g.stamp("b")) == ((1, 1), (0, 1))


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS, writers=st.lists(st.booleans(), min_size=40, max_size=40))
def test_two_processes_always_price_as_a_plan_built_now(
    processes_sqlite: list[Process], ops: list[tuple[str, str, str, int]], writers: list[bool]
) -> None:
    one, two = processes_sqlite
    run = uuid.uuid4().hex[:6]  # fresh tenants for each example
    tenants = {t: f"{t}{run}" for t in TENANTS}
    for t in tenants.values():
        one.cache.put_settings(t, EUR)
    for (op, name, prefix, micros), by_one in zip(ops, writers, strict=False):
        tenant, cache = tenants[name], (one if by_one else two).cache
        found = one.raw.query(Query(tenant=tenant, where={"prefix": prefix})).items
        if op == "add" and not found:
            cache.rates.add(Rate(prefix, micros, tenant=tenant))
        elif op == "update" and found:
            cache.rates.update(found[0].id, {"per_minute_micros": micros}, tenant=tenant)
        elif op == "delete" and found:
            cache.rates.delete(found[0].id, tenant=tenant)
        elif op == "settings":
            cache.put_settings(tenant, PlanSettings(currency="EUR", quantum_micros=1 + micros % 7))
        for t in tenants.values():
            fresh = one.raw.load_plan(t, **one.cache.settings(t).plan_options(t))
            cdr = call(t, billsec=1 + micros % 600)
            assert one.cache.rate(cdr) == rate(cdr, fresh) == two.cache.rate(cdr)


@pytest.fixture
def processes_sqlite(tmp_path: Any) -> Iterator[list[Process]]:
    pytest.importorskip("sqlalchemy")
    url, prefix = f"sqlite:///{tmp_path / 'property.sqlite3'}", "cdrrating_p_"
    made = [Process(url, prefix), Process(url, prefix)]
    try:
        yield made
    finally:
        for p in made:
            p.engine.dispose()
