"""Tenants' rate plans for a service: their settings stored, their plans built once.

A service that rates each call as it completes needs the tenant's :class:`RatePlan`
on every completion. Building it from the stored deck each time costs a database read
and a plan build per call; keeping it forever prices calls with rates that have since
changed. :class:`PlanCache` keeps one plan per tenant and rebuilds it when that
tenant's rates or settings change:

- Rates are written through ``cache.rates``, a :class:`RateRepository` that passes
  every call to the repository it wraps and, once a write has returned (or failed),
  moves the tenant's generation on. A plan is served only while the generation it was
  built at is current, so **no call is priced by a plan older than a rate write that
  returned before the call asked for its plan**.
- Several processes (workers of one service) each hold a cache; give every one the
  same :class:`PlanGenerations` (:class:`cdrrating.sqlplans.SQLPlanGenerations`, a
  small table beside the rates). A write through any process's cache then counts in
  it, before it starts and after it ends, and every cache reads the tenant's counters
  (one indexed query) before it serves a plan: **no call is priced by a plan older than
  a rate write through any of the caches that had committed before the call asked for
  its plan**. Writes made outside every cache (the rate repository used directly, the
  CLI, SQL run by hand) are not counted: make them inside :meth:`PlanCache.writing`,
  or call :meth:`PlanCache.invalidate` once they have committed.
- What a plan needs beyond its rates (currency, rounding, quantum, access prefixes,
  time zone, holidays, band policy) is a :class:`PlanSettings`, stored per tenant in a
  :class:`PlanSettingsRepository` (:class:`MemoryPlanSettingsRepository` here,
  :class:`cdrrating.sqlplans.SQLPlanSettingsRepository` beside the SQL tables) and
  written through :meth:`PlanCache.put_settings`.

The cache is thread-safe: a miss is loaded by one thread while the others asking for
that tenant wait for it, and tenants load independently.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any, Protocol, TypeVar, runtime_checkable

import attrs

from cdrrating._storage.rows import check_tenant
from cdrrating.cdr import CDR
from cdrrating.charge import Charge
from cdrrating.errors import NotFound, ValidationError
from cdrrating.money import Rounding
from cdrrating.plan import RatePlan
from cdrrating.rates import Rate
from cdrrating.rating import rate
from cdrrating.repository import Page, Query, RateRepository, StoredRate
from cdrrating.schedule import BandPolicy

__all__ = [
    "MemoryPlanGenerations",
    "MemoryPlanSettingsRepository",
    "PlanCache",
    "PlanGenerations",
    "PlanSettings",
    "PlanSettingsRepository",
    "WatchedRateRepository",
]

R = TypeVar("R")
_log = logging.getLogger("cdrrating.plancache")


@attrs.frozen(kw_only=True)
class PlanSettings:
    """Everything a tenant's :class:`RatePlan` needs besides its rates.

    The fields are :class:`RatePlan`'s keywords and are checked by building an empty
    plan, so a setting that a plan would refuse is refused here, with the same message.
    ``name`` None names the plan after its tenant.
    """

    currency: str
    rounding: Rounding = Rounding.UP
    quantum_micros: int = 1
    access_prefixes: tuple[str, ...] = ("00",)
    timezone: str = "UTC"
    holidays: Mapping[str, frozenset[date]] = attrs.field(factory=dict)
    band_policy: BandPolicy = BandPolicy.SPLIT
    name: str | None = None

    def __attrs_post_init__(self) -> None:
        # The plan is the one home of these rules; its normalised values are kept, so
        # that settings read back from JSON compare equal to those written.
        plan = RatePlan((), **self._options(""))
        for field in ("rounding", "access_prefixes", "timezone", "holidays", "band_policy"):
            object.__setattr__(self, field, getattr(plan, field))
        if self.name is not None and not isinstance(self.name, str):
            raise ValidationError("name", self.name, "a str or None")

    def _options(self, name: str) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "rounding": self.rounding,
            "quantum_micros": self.quantum_micros,
            "access_prefixes": self.access_prefixes,
            "timezone": self.timezone,
            "holidays": self.holidays,
            "band_policy": self.band_policy,
            "name": name,
        }

    def plan(self, rates: Iterable[Rate], *, tenant: str | None = None) -> RatePlan:
        """A :class:`RatePlan` of ``rates`` with these settings."""
        return RatePlan(rates, **self.plan_options(tenant))

    def plan_options(self, tenant: str | None = None) -> dict[str, Any]:
        """The :class:`RatePlan` keywords (also ``RateRepository.load_plan``'s)."""
        return self._options(self.name if self.name is not None else tenant or "")

    def to_mapping(self) -> dict[str, Any]:
        """A JSON-ready mapping that :meth:`from_mapping` reads back equal."""
        return {
            "currency": self.currency,
            "rounding": self.rounding.value,
            "quantum_micros": self.quantum_micros,
            "access_prefixes": list(self.access_prefixes),
            "timezone": self.timezone,
            "holidays": {k: sorted(d.isoformat() for d in v) for k, v in self.holidays.items()},
            "band_policy": self.band_policy.value,
            "name": self.name,
        }

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> PlanSettings:
        """Settings from a mapping (``to_mapping``'s keys; only ``currency`` is required)."""
        if not isinstance(mapping, Mapping):
            raise ValidationError("settings", mapping, "a mapping of plan settings")
        known = {f.name for f in attrs.fields(cls)}
        unknown = sorted(set(mapping) - known)
        if unknown:
            raise ValidationError(
                unknown[0], mapping[unknown[0]], "one of " + ", ".join(sorted(known))
            )
        if "currency" not in mapping:
            raise ValidationError("currency", None, "an ISO 4217 code, e.g. 'EUR'")
        values = dict(mapping)
        if "access_prefixes" in values and isinstance(values["access_prefixes"], list):
            values["access_prefixes"] = tuple(values["access_prefixes"])
        return cls(**values)


# -- where settings are kept ----------------------------------------------------------------


@runtime_checkable
class PlanSettingsRepository(Protocol):
    """Where each tenant's :class:`PlanSettings` are kept (``None``: the rates stored
    without a tenant)."""

    def get(self, tenant: str | None) -> PlanSettings:
        """The tenant's settings; :class:`~cdrrating.NotFound` if none are stored."""
        ...

    def put(self, tenant: str | None, settings: PlanSettings) -> PlanSettings:
        """Store (insert or replace) the tenant's settings."""
        ...

    def delete(self, tenant: str | None) -> None:
        """Forget the tenant's settings; :class:`~cdrrating.NotFound` if none are stored."""
        ...


def check_settings(settings: Any) -> PlanSettings:
    if not isinstance(settings, PlanSettings):
        raise ValidationError("settings", settings, "a cdrrating.plancache.PlanSettings")
    return settings


def _missing(tenant: str | None) -> NotFound:
    return NotFound(f"no plan settings are stored for tenant {tenant!r}")


class MemoryPlanSettingsRepository:
    """A :class:`PlanSettingsRepository` in a dict (notebooks, tests, one process)."""

    def __init__(self) -> None:
        self._items: dict[str, PlanSettings] = {}
        self._lock = threading.Lock()

    def get(self, tenant: str | None) -> PlanSettings:
        key = check_tenant(tenant)
        with self._lock:
            found = self._items.get(key)
        if found is None:
            raise _missing(tenant)
        return found

    def put(self, tenant: str | None, settings: PlanSettings) -> PlanSettings:
        key, checked = check_tenant(tenant), check_settings(settings)
        with self._lock:
            self._items[key] = checked
        return checked

    def delete(self, tenant: str | None) -> None:
        key = check_tenant(tenant)
        with self._lock:
            if self._items.pop(key, None) is None:
                raise _missing(tenant)


# -- write counters shared by processes ----------------------------------------------------


@runtime_checkable
class PlanGenerations(Protocol):
    """Two counters per tenant, shared by every cache that rates with one store: writes
    begun and writes ended. A cache counts a write in before it starts and out after it
    ends (committed or failed), and serves a plan only while the counters it was built
    at are still current and equal, so a write in flight or finished since forces a
    fresh plan. ``every=True`` counts a write whose tenants cannot be told (it touches
    all of them)."""

    def begin(self, tenants: Sequence[str | None], *, every: bool = False) -> None:
        """Count a write to ``tenants`` in, before it starts."""
        ...

    def end(self, tenants: Sequence[str | None], *, every: bool = False) -> None:
        """Count the write out, after it committed or failed."""
        ...

    def stamp(self, tenant: str | None) -> Hashable | None:
        """A value that changes whenever a write to ``tenant`` (or to every tenant)
        begins; None while such a write is in flight."""
        ...


class MemoryPlanGenerations:
    """:class:`PlanGenerations` in a dict: caches in one process (tests, notebooks)."""

    def __init__(self) -> None:
        self._counts: dict[str | None, list[int]] = {}
        self._lock = threading.Lock()

    def _bump(self, tenants: Sequence[str | None], every: bool, which: int) -> None:
        keys: list[str | None] = [check_tenant(t) for t in tenants]
        with self._lock:
            for key in [*keys, None] if every else keys:  # None: every tenant
                self._counts.setdefault(key, [0, 0])[which] += 1

    def begin(self, tenants: Sequence[str | None], *, every: bool = False) -> None:
        self._bump(tenants, every, 0)

    def end(self, tenants: Sequence[str | None], *, every: bool = False) -> None:
        self._bump(tenants, every, 1)

    def stamp(self, tenant: str | None) -> Hashable | None:
        key = check_tenant(tenant)
        with self._lock:
            mine, every = self._counts.get(key, [0, 0]), self._counts.get(None, [0, 0])
        if mine[0] != mine[1] or every[0] != every[1]:
            return None
        return (mine[0], every[0])


# -- rate writes that move a tenant's generation on -----------------------------------------

_ALL = object()  # "every tenant": a write whose tenants cannot be told


def _tenants_of(rates: Sequence[Any]) -> set[str | None] | object:
    found: set[str | None] = set()
    for r in rates:
        if isinstance(r, Rate):
            found.add(r.tenant)
        elif isinstance(r, Mapping) and isinstance(r.get("tenant"), str | None):
            found.add(r.get("tenant"))
        else:
            return _ALL
    return found


def _valid(tenants: Iterable[Any]) -> list[str | None]:
    """The tenants of a write that can hold rates, each once; the others were refused."""
    found: dict[str, str | None] = {}
    for tenant in tenants:
        try:
            found.setdefault(check_tenant(tenant), tenant)
        except ValidationError:
            continue
    return list(found.values())


class WatchedRateRepository:
    """A :class:`~cdrrating.repository.RateRepository` that tells ``changed`` which
    tenants each write touched, after the write returned or failed (a failed write may
    have been half-seen by a database, so it counts too). Reads pass straight through.
    Made by :class:`PlanCache` as ``cache.rates``; ``inner`` is the wrapped repository.
    """

    def __init__(
        self,
        inner: RateRepository,
        changed: Callable[[Any], None],
        starting: Callable[[Any], None] | None = None,
    ) -> None:
        self.inner = inner
        self._changed = changed
        self._starting = starting

    def __repr__(self) -> str:
        return f"<WatchedRateRepository of {self.inner!r}>"

    def _write(self, tenants: Any, work: Callable[[], R]) -> R:
        if self._starting is not None:
            self._starting(tenants)  # if this fails, nothing is written
        try:
            return work()
        finally:
            self._changed(tenants)

    def add(self, rate: Rate) -> StoredRate:
        return self._write({getattr(rate, "tenant", None)}, lambda: self.inner.add(rate))

    def add_many(self, rates: Iterable[Rate | Mapping[str, Any]]) -> int:
        listed = list(rates)
        return self._write(_tenants_of(listed), lambda: self.inner.add_many(listed))

    def get(self, rate_id: str, *, tenant: str | None = None) -> StoredRate:
        return self.inner.get(rate_id, tenant=tenant)

    def replace(self, rate: Rate, *, tenant: str | None = None) -> StoredRate:
        touched = {tenant, getattr(rate, "tenant", None)}
        return self._write(touched, lambda: self.inner.replace(rate, tenant=tenant))

    def update(
        self, rate_id: str, changes: Mapping[str, Any], *, tenant: str | None = None
    ) -> StoredRate:
        return self._write({tenant}, lambda: self.inner.update(rate_id, changes, tenant=tenant))

    def delete(self, rate_id: str, *, tenant: str | None = None) -> None:
        self._write({tenant}, lambda: self.inner.delete(rate_id, tenant=tenant))

    def query(self, query: Query | None = None) -> Page[StoredRate]:
        return self.inner.query(query)

    def count(self, query: Query | None = None) -> int:
        return self.inner.count(query)

    def load_plan(self, tenant: str | None, at: datetime | None = None, **options: Any) -> RatePlan:
        return self.inner.load_plan(tenant, at, **options)


# -- the cache ------------------------------------------------------------------------------

# (the tenant's generation, the cache's epoch, the shared stamp or None)
_Stamp = tuple[int, int, Hashable]
_IN_FLIGHT = object()  # a shared stamp of None: a write is in flight somewhere


@attrs.define
class _Entry:
    stamp: _Stamp
    plan: RatePlan | None


class PlanCache:
    """One :class:`RatePlan` per tenant, rebuilt when the tenant's rates or settings
    change through this cache.

    ``rates`` is the repository the decks are stored in; write rates through
    :attr:`rates` (the same repository, watched). ``settings`` keeps each tenant's
    :class:`PlanSettings`; a tenant without stored settings uses ``default``, and with
    neither it has no plan (:meth:`plan` returns None, so its calls are rated UNRATED
    with reason NO_PLAN, never with a guessed currency). At most ``max_plans`` plans are
    kept, the least recently used dropped first.

    ``generations`` (the same for every process rating with these rates, e.g.
    :class:`cdrrating.sqlplans.SQLPlanGenerations`) makes writes through any of the
    caches seen by all: each plan lookup first reads the tenant's counters (one indexed
    query). Without it, only writes through this cache are seen.
    """

    def __init__(
        self,
        rates: RateRepository,
        settings: PlanSettingsRepository,
        *,
        default: PlanSettings | None = None,
        max_plans: int = 256,
        generations: PlanGenerations | None = None,
    ) -> None:
        if default is not None:
            check_settings(default)
        if isinstance(max_plans, bool) or not isinstance(max_plans, int) or max_plans < 1:
            raise ValidationError("max_plans", max_plans, "an int >= 1")
        if generations is not None and not isinstance(generations, PlanGenerations):
            raise ValidationError(
                "generations", generations, "a PlanGenerations (begin, end, stamp) or None"
            )
        self.generations = generations
        starting = None if generations is None else self._starting
        self.rates = WatchedRateRepository(rates, self._changed, starting)
        self.settings_repository = settings
        self.default = default
        self._max = max_plans
        self._lock = threading.Lock()
        self._generations: dict[str, int] = {}
        self._epoch = 0
        self._plans: OrderedDict[str, _Entry] = OrderedDict()
        self._loading: dict[str, threading.Lock] = {}
        #: Plans built since the cache was made (a miss or a change): for metrics, tests.
        self.loads = 0

    def __repr__(self) -> str:
        return f"<PlanCache: {len(self._plans)} plans, {self.loads} loads>"

    # -- invalidation ---------------------------------------------------------------------

    def _starting(self, tenants: Any) -> None:
        assert self.generations is not None
        every = tenants is _ALL
        self.generations.begin([] if every else _valid(tenants), every=every)

    def _changed(self, tenants: Any) -> None:
        with self._lock:
            if tenants is _ALL:
                self._epoch += 1
                self._plans.clear()
            else:
                for key in map(check_tenant, _valid(tenants)):
                    self._generations[key] = self._generations.get(key, 0) + 1
                    self._plans.pop(key, None)
        if self.generations is not None:
            every = tenants is _ALL
            try:
                self.generations.end([] if every else _valid(tenants), every=every)
            except Exception:
                # The write itself is done (or failed on its own); the counters stay
                # apart, so every cache keeps loading these tenants' plans afresh
                # (correct, slower) until they are repaired.
                _log.exception("counting a rate write out failed; tenants %r", tenants)

    def invalidate(self, tenant: str | object | None = _ALL) -> None:
        """Forget ``tenant``'s plan (every tenant's, without an argument) after a change
        made outside the caches (the rate repository used directly, the CLI, by hand).
        With ``generations``, every process's cache forgets it too; calls rated between
        that change's commit and this call may still use the old plan (to exclude
        those, make the change inside :meth:`writing`)."""
        with self.writing(tenant):
            pass

    @contextmanager
    def writing(self, tenant: str | object | None = _ALL) -> Iterator[None]:
        """Make rate writes that bypass :attr:`rates` (a bulk import through the rate
        repository, the CLI run from here) inside ``with cache.writing(tenant):``. They
        are counted as this cache's own writes are: no call that asks for the tenant's
        plan after they commit is priced with an older one, in any process sharing
        ``generations``. Without an argument, every tenant."""
        touched = _ALL if tenant is _ALL else {tenant}
        if self.generations is not None:
            self._starting(touched)
        try:
            yield
        finally:
            self._changed(touched)

    # -- settings -------------------------------------------------------------------------

    def settings(self, tenant: str | None) -> PlanSettings:
        """The tenant's stored settings, else the default; NotFound with neither."""
        try:
            return self.settings_repository.get(tenant)
        except NotFound:
            if self.default is None:
                raise
            return self.default

    def put_settings(self, tenant: str | None, settings: PlanSettings) -> PlanSettings:
        """Store the tenant's settings; its next plan is built with them."""
        return self.rates._write({tenant}, lambda: self.settings_repository.put(tenant, settings))

    def delete_settings(self, tenant: str | None) -> None:
        """Forget the tenant's settings (it falls back to the default)."""
        self.rates._write({tenant}, lambda: self.settings_repository.delete(tenant))

    # -- plans ----------------------------------------------------------------------------

    def _shared(self, tenant: str | None) -> Hashable:
        if self.generations is None:
            return ()
        found = self.generations.stamp(tenant)
        return _IN_FLIGHT if found is None else found

    def _current(self, key: str, shared: Hashable) -> tuple[_Stamp, _Entry | None]:
        stamp = (self._generations.get(key, 0), self._epoch, shared)
        entry = self._plans.get(key)
        if entry is not None and entry.stamp == stamp and shared is not _IN_FLIGHT:
            self._plans.move_to_end(key)
            return stamp, entry
        return stamp, None

    def plan(self, tenant: str | None) -> RatePlan | None:
        """The tenant's plan as its rates and settings stand, or None if it has no
        settings and there is no default. Raises what building the plan raises (a
        :class:`~cdrrating.PlanError` for a deck that a holiday calendar makes
        ambiguous)."""
        key = check_tenant(tenant)
        shared = self._shared(tenant)
        with self._lock:
            _stamp, entry = self._current(key, shared)
            if entry is not None:
                return entry.plan
            loading = self._loading.get(key)
            if loading is None:
                loading = self._loading[key] = threading.Lock()
        with loading:  # one loader per tenant; the others wait for its plan
            shared = self._shared(tenant)  # again: another loader may have moved it on
            with self._lock:
                stamp, entry = self._current(key, shared)
                if entry is not None:
                    return entry.plan
            # The stamp was read before the deck: a write that lands while it is read
            # moves the generation on, and the plan built here is never served again.
            # A write in flight elsewhere: this plan is used for this call only.
            plan = self._load(tenant)
            with self._lock:
                self.loads += 1
                if shared is not _IN_FLIGHT:
                    self._plans[key] = _Entry(stamp, plan)
                    self._plans.move_to_end(key)
                    while len(self._plans) > self._max:
                        self._plans.popitem(last=False)
            return plan

    def _load(self, tenant: str | None) -> RatePlan | None:
        try:
            settings = self.settings(tenant)
        except NotFound:
            return None
        return self.rates.inner.load_plan(tenant, **settings.plan_options(tenant))

    def rate(self, cdr: CDR) -> Charge:
        """Rate one CDR with its tenant's current plan (see :meth:`plan`)."""
        if not isinstance(cdr, CDR):
            raise ValidationError("cdr", cdr, "a cdrrating.CDR (build one with CDR.from_mapping)")
        return rate(cdr, self.plan(cdr.tenant))
