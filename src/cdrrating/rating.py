"""Rating: from a CDR and a rate plan to an exact, explained charge (the object engine).

This module is a thin driver of the rules in ``cdrrating._rules`` over the plan's
compiled index; the table engine (``cdrrating.frame``) drives the same rules over
arrays, and calls :func:`price_rate` and :func:`price_banded` here for the calls it
does not vectorise.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

from cdrrating import _rules, _wire
from cdrrating._bands import Band, Scheduled, bands, gap_error, lay, tiers_of
from cdrrating._progress import Progress, ProgressArg
from cdrrating.batch import BatchResult, CostChange, DestinationTotal, RowError
from cdrrating.cdr import CDR, Disposition
from cdrrating.charge import Charge, ChargeStatus, Reason
from cdrrating.errors import CdrRatingError, ValidationError
from cdrrating.plan import RatePlan
from cdrrating.rates import Rate
from cdrrating.schedule import BandPolicy

__all__ = [
    "BatchResult",
    "Charge",
    "ChargeStatus",
    "CostChange",
    "DestinationTotal",
    "Rater",
    "Reason",
    "RowError",
    "price_banded",
    "price_rate",
    "rate",
]

PlanChain = RatePlan | Sequence[RatePlan]

_log = logging.getLogger("cdrrating.rating")


def rate(cdr: CDR, plan: RatePlan | None) -> Charge:
    """Rate one CDR against one plan, exactly as the rating rules define a cost."""
    if not isinstance(cdr, CDR):
        raise ValidationError("cdr", cdr, "a cdrrating.CDR (build one with CDR.from_mapping)")
    if plan is None:
        return _rate_chain(cdr, ())
    if not isinstance(plan, RatePlan):
        raise ValidationError("plan", plan, "a RatePlan or None (use Rater for a chain of plans)")
    return _rate_chain(cdr, (plan,))


def price_rate(found: Rate, billsec: int, quantum: int, mode: str) -> tuple[int, int]:
    """(billed seconds, cost) of a billable call of ``billsec`` seconds priced by one
    rate: grace, steps and tiers, the exact sum, one rounding, minimum and maximum."""
    if _rules.in_grace(billsec, found.grace_seconds):
        return 0, 0
    billed, total = _rules.lay(billsec, *_steps(found))
    cost = _rules.settle(
        total,
        found.connection_fee_micros,
        found.minimum_charge_micros,
        found.maximum_charge_micros,
        quantum,
        mode,
    )
    return billed, cost


def _steps(found: Rate) -> tuple[int, int, list[_rules.Piece]]:
    """A rate's first step, its price, and its pieces (rating-rules §3), for ``lay``."""
    tiers = tiers_of(found) if found.tiers else ()
    return (
        _rules.first_step(found.initial_seconds, found.increment_seconds),
        found.per_minute_micros,
        _rules.rate_pieces(found.increment_seconds, found.per_minute_micros, tiers),
    )


def price_banded(
    plan: RatePlan, bucket: Scheduled, started_at: datetime, answered_at: datetime, billsec: int
) -> tuple[Rate, int, int]:
    """A billable call to a prefix whose rates have schedules (rating-rules §6): the rate
    in force at the answer time, billed seconds and cost.

    The rate in force at the answer time gives the grace period, connection fee,
    minimum and maximum; under ``split`` each step takes its length and price from the
    rate in force at its start. A step in a schedule gap raises :class:`PlanError`.
    """
    quantum, mode = plan.quantum_micros, plan.rounding
    if plan.band_policy is BandPolicy.START:
        rates, scheds, _key = bucket.candidates(started_at)
        index = bucket.clock.winner(scheds, answered_at)
        if index < 0:
            raise gap_error(bucket, Band(None, answered_at, 0))
        return rates[index], *price_rate(rates[index], billsec, quantum, mode)
    laid = bands(bucket, started_at, answered_at, billsec)
    first = laid[0].rate
    if first is None:
        raise gap_error(bucket, laid[0])
    if len(laid) == 1 or _rules.in_grace(billsec, first.grace_seconds):
        return first, *price_rate(first, billsec, quantum, mode)
    billed, total, _runs = lay(laid, billsec, lambda band: gap_error(bucket, band))
    cost = _rules.settle(
        total,
        first.connection_fee_micros,
        first.minimum_charge_micros,
        first.maximum_charge_micros,
        quantum,
        mode,
    )
    return first, billed, cost


def _rate_chain(cdr: CDR, plans: tuple[RatePlan, ...]) -> Charge:
    billable = _rules.billable(cdr.disposition is Disposition.ANSWERED, cdr.billsec)
    direction_priced = False
    number_valid = False
    for i, plan in enumerate(plans):
        index = plan._compiled.indexes.get(cdr.direction)
        if index is None:
            continue  # this plan prices no call of this direction: try the next one
        direction_priced = True
        number, found = index.match(cdr.destination_number, cdr.started_at)
        if number is None:
            continue
        number_valid = True
        if found is None:
            continue
        tried = plans[:i]
        if not billable:
            # The rate is kept for reporting (per-destination call counts); cost 0.
            return Charge(
                ChargeStatus.UNANSWERED, None, 0, plan.currency, 0, found, cdr, number, plan, tried
            )
        if index.scheduled:  # only plans with schedules pay for this look-up
            bucket = index.candidates.get(found.prefix)
            if type(bucket) is Scheduled:
                found, billed, cost = price_banded(
                    plan, bucket, cdr.started_at, cdr.answered_at or cdr.started_at, cdr.billsec
                )
                return Charge(
                    ChargeStatus.RATED, None, cost, plan.currency, billed, found, cdr, number, plan,
                    tried,
                )  # fmt: skip
        billed, cost = price_rate(found, cdr.billsec, plan.quantum_micros, plan.rounding)
        return Charge(
            ChargeStatus.RATED, None, cost, plan.currency, billed, found, cdr, number, plan, tried
        )
    currency = plans[0].currency if plans else None
    if not billable:
        return Charge(ChargeStatus.UNANSWERED, None, 0, currency, 0, None, cdr, plans_tried=plans)
    if not plans:
        return Charge(ChargeStatus.UNRATED, Reason.NO_PLAN, None, None, 0, None, cdr)
    if not direction_priced:
        return Charge(
            ChargeStatus.DIRECTION_NOT_RATED, None, 0, currency, 0, None, cdr, plans_tried=plans
        )
    reason = Reason.NO_RATE if number_valid else Reason.INVALID_NUMBER
    return Charge(ChargeStatus.UNRATED, reason, None, currency, 0, None, cdr, plans_tried=plans)


def _as_chain(value: PlanChain | None, field: str) -> tuple[RatePlan, ...]:
    if value is None:
        return ()
    if isinstance(value, RatePlan):
        return (value,)
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ValidationError(field, value, "a RatePlan or a sequence of RatePlans")
    chain = tuple(value)
    for plan in chain:
        if not isinstance(plan, RatePlan):
            raise ValidationError(field, value, "a RatePlan or a sequence of RatePlans")
    return chain


class Rater:
    """Rates CDRs of many tenants: tenant → plan chain, with a default chain after it.

    A plan may be given as a single RatePlan or as a chain (account → reseller → system).
    The ``default`` chain is tried when the tenant has no plan, or when no plan of the
    tenant's chain has a rate for the number; the charge names the plan that rated it.
    """

    def __init__(
        self,
        plans: Mapping[str | None, PlanChain] | None = None,
        *,
        default: PlanChain | None = None,
    ) -> None:
        self._plans = {t: _as_chain(c, f"plans[{t!r}]") for t, c in (plans or {}).items()}
        self._default = _as_chain(default, "default")
        self._chains: dict[str | None, tuple[RatePlan, ...]] = {
            # By identity: comparing plans rate by rate would cost more than rating.
            t: c + tuple(p for p in self._default if all(p is not q for q in c))
            for t, c in self._plans.items()
        }
        self._hash: str | None = None

    @property
    def content_hash(self) -> str:
        """A hex sha256 of what decides a charge: the content hash of each plan of the
        default chain and of each tenant's chain, in order (plan names take no part).
        Computed once; the same in every process."""
        if self._hash is None:
            self._hash = _wire.rater_hash(
                [p.content_hash for p in self._default],
                {t: [p.content_hash for p in c] for t, c in self._chains.items()},
            )
        return self._hash

    def __dask_tokenize__(self) -> tuple[str, str, tuple[tuple[str, ...], ...]]:
        """Dask's token: the content hash, and the names of the plans it charges with."""
        names = [tuple(p.name for p in self._default)]
        names += [tuple(p.name for p in self._chains[t]) for t in _wire.tenant_order(self._chains)]
        return ("cdrrating.Rater", self.content_hash, tuple(names))

    def chain(self, tenant: str | None) -> tuple[RatePlan, ...]:
        """The plans tried, in order, for a CDR of ``tenant``."""
        return self._chains.get(tenant, self._default)

    def rate(self, cdr: CDR) -> Charge:
        if not isinstance(cdr, CDR):
            raise ValidationError("cdr", cdr, "a cdrrating.CDR (build one with CDR.from_mapping)")
        return _rate_chain(cdr, self._chains.get(cdr.tenant, self._default))

    def rate_many(
        self,
        cdrs: Iterable[CDR | Mapping[str, Any]],
        progress: ProgressArg = None,
        *,
        default_tz: tzinfo = UTC,
    ) -> BatchResult:
        """Rate a batch. Mappings are parsed with ``CDR.from_mapping`` (naive timestamps
        take ``default_tz``); a record that cannot be parsed or rated is reported in
        ``errors`` with its position, never dropped.

        ``progress``: None shows a bar on a terminal when tqdm is installed, False is
        silent, a callable is called as ``progress(done, total)``.
        """
        total = len(cdrs) if isinstance(cdrs, Sequence) else None
        result = BatchResult()
        bar = Progress(progress, total)
        chains, default = self._chains, self._default
        try:
            for position, record in enumerate(cdrs):
                try:
                    cdr = (
                        record
                        if isinstance(record, CDR)
                        else CDR.from_mapping(record, default_tz=default_tz)
                    )
                    result._add(_rate_chain(cdr, chains.get(cdr.tenant, default)))
                except CdrRatingError as error:
                    result._fail(position, error, record)
                except Exception as error:  # a batch reports every bad row, whatever went wrong
                    # Not one of the library's errors: a value no parser foresaw. The row
                    # is still reported, with the error's type, and the batch goes on.
                    result._fail(position, ValidationError("record", record, repr(error)), record)
                    _log.debug("row %d: unexpected %r", position, error)
                bar.step()
        finally:
            bar.close()
        if result.errors:
            _log.info("rate_many: %d of %d records rejected", len(result.errors), len(result))
        return result
