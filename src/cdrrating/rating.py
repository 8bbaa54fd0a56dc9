"""Rating: from a CDR and a rate plan to an exact, explained charge."""

from __future__ import annotations

import enum
import itertools
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, timedelta, tzinfo
from fractions import Fraction
from typing import Any

import attrs

from cdrrating import _html
from cdrrating._bands import Band, Run, Scheduled, bands, gap_error, lay
from cdrrating._pricing import price, segments
from cdrrating._progress import Progress, ProgressArg
from cdrrating.cdr import CDR, Disposition
from cdrrating.errors import CdrRatingError, ValidationError
from cdrrating.money import _round_ratio, format_micros
from cdrrating.plan import RatePlan, normalise_number
from cdrrating.rates import Rate, RateStatus
from cdrrating.schedule import BandPolicy, BandSegment

__all__ = [
    "BatchResult",
    "Charge",
    "ChargeStatus",
    "CostChange",
    "DestinationTotal",
    "Rater",
    "Reason",
    "RowError",
    "rate",
]


class ChargeStatus(enum.StrEnum):
    """What rating concluded about a call."""

    RATED = "RATED"  # priced by a rate (cost may be 0 under a grace period)
    UNANSWERED = "UNANSWERED"  # not answered, or billsec 0: costs 0, no connection fee
    UNRATED = "UNRATED"  # no price could be found: cost is None, never 0; rate again later
    DIRECTION_NOT_RATED = "DIRECTION_NOT_RATED"  # the plans price no call of this direction: 0


class Reason(enum.StrEnum):
    """Why a call is UNRATED."""

    NO_RATE = "NO_RATE"
    NO_PLAN = "NO_PLAN"
    INVALID_NUMBER = "INVALID_NUMBER"


@attrs.frozen(repr=False)
class Charge:
    """The outcome of rating one CDR. ``explain()`` says how it was reached."""

    status: ChargeStatus
    reason: Reason | None
    cost_micros: int | None
    currency: str | None
    billed_seconds: int
    rate: Rate | None
    cdr: CDR
    number: str | None = None  # the dialled number as normalised for lookup
    plan: RatePlan | None = attrs.field(default=None, eq=False)  # the plan whose rate won
    plans_tried: tuple[RatePlan, ...] = attrs.field(default=(), eq=False)

    @property
    def call_id(self) -> str:
        return self.cdr.call_id

    @property
    def connection_fee_micros(self) -> int:
        """The connection fee included in the cost: the rate's, for a billed call; else 0.

        Derived rather than stored: a charge is built for every CDR on the hot path,
        and each field of a frozen class costs time there.
        """
        if self.status is ChargeStatus.RATED and self.billed_seconds and self.rate is not None:
            return self.rate.connection_fee_micros
        return 0

    @property
    def prefix(self) -> str | None:
        """The prefix of the rate that won, if any."""
        return self.rate.prefix if self.rate is not None else None

    @property
    def destination(self) -> str:
        """The rate's destination label, else its prefix, else ``""``."""
        if self.rate is None:
            return ""
        return self.rate.destination or self.rate.prefix

    def __repr__(self) -> str:
        cost = (
            "None" if self.cost_micros is None else format_micros(self.cost_micros, self.currency)
        )
        extra = f", reason={self.reason.value}" if self.reason is not None else ""
        prefix = f", prefix={self.rate.prefix!r}" if self.rate is not None else ""
        return (
            f"Charge(call_id={self.call_id!r}, status={self.status.value}{extra}, "
            f"cost={cost}, billed_seconds={self.billed_seconds}{prefix})"
        )

    def explain(self) -> str:
        """Plain text a support engineer can paste into a ticket."""
        return _explain(self)

    def bands(self) -> tuple[BandSegment, ...]:
        """The billed steps grouped by the rate that priced them, in call order.

        One segment for a call that crosses no band (or any call on a plan without
        schedules, or with band policy ``start``); none for a charge with no billed
        seconds. The exact sum is the connection fee plus every segment's ``amount``.
        """
        return _band_segments(self)

    def _repr_html_(self) -> str:
        return _html.pre(self.explain())


def rate(cdr: CDR, plan: RatePlan | None) -> Charge:
    """Rate one CDR against one plan, exactly as rating-rules.md defines a cost."""
    if not isinstance(cdr, CDR):
        raise ValidationError("cdr", cdr, "a cdrrating.CDR (build one with CDR.from_mapping)")
    if plan is None:
        return _rate_chain(cdr, ())
    if not isinstance(plan, RatePlan):
        raise ValidationError("plan", plan, "a RatePlan or None (use Rater for a chain of plans)")
    return _rate_chain(cdr, (plan,))


def _rate_chain(cdr: CDR, plans: tuple[RatePlan, ...]) -> Charge:
    billable = cdr.disposition is Disposition.ANSWERED and cdr.billsec > 0
    direction_priced = False
    number_valid = False
    dialled = cdr.destination_number
    for i, plan in enumerate(plans):
        index = plan._indexes.get(cdr.direction)
        if index is None:
            continue  # this plan prices no call of this direction: try the next one
        direction_priced = True
        if dialled.isdigit() and dialled.isascii() and not dialled.startswith(plan.access_prefixes):
            number = dialled  # already normal: skip the translate
        else:
            maybe = normalise_number(dialled, plan.access_prefixes)
            if maybe is None:
                continue
            number = maybe
        number_valid = True
        found = index.find(number, cdr.started_at)
        if found is not None:
            if index.scheduled and billable:  # only plans with schedules pay for this
                bucket = index.candidates.get(found.prefix)
                if type(bucket) is Scheduled:
                    return _price_banded(cdr, plan, bucket, number, plans[:i])
            return _price_call(cdr, plan, found, number, billable, plans[:i])
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


def _price_call(  # noqa: PLR0917 - private hot-path helper: positional is faster
    cdr: CDR,
    plan: RatePlan,
    found: Rate,
    number: str,
    billable: bool,
    tried: tuple[RatePlan, ...],
) -> Charge:
    if not billable:
        # The rate is kept for reporting (per-destination call counts); the call costs 0.
        return Charge(
            ChargeStatus.UNANSWERED, None, 0, plan.currency, 0, found, cdr, number, plan, tried
        )
    billsec = cdr.billsec
    if billsec <= found.grace_seconds:
        return Charge(
            ChargeStatus.RATED, None, 0, plan.currency, 0, found, cdr, number, plan, tried
        )
    billed, numerator = price(found, billsec)
    quantum = plan.quantum_micros
    cost = _round_ratio(numerator, 60 * quantum, plan.rounding) * quantum
    cost = max(cost, found.minimum_charge_micros)
    if found.maximum_charge_micros is not None and cost > found.maximum_charge_micros:
        cost = found.maximum_charge_micros
    return Charge(
        ChargeStatus.RATED,
        None,
        cost,
        plan.currency,
        billed,
        found,
        cdr,
        number,
        plan,
        tried,
    )


def _price_banded(
    cdr: CDR, plan: RatePlan, bucket: Scheduled, number: str, tried: tuple[RatePlan, ...]
) -> Charge:
    """A billable call to a prefix whose rates have schedules (rating-rules §6).

    The rate in force at the answer time (``answered_at``, else ``started_at``) gives the
    grace period, connection fee, minimum and maximum; under ``split`` each step takes
    its length and price from the rate in force at its start.
    """
    answered = cdr.answered_at or cdr.started_at
    billsec = cdr.billsec
    if plan.band_policy is BandPolicy.START:
        rates, scheds, _key = bucket.candidates(cdr.started_at)
        index = bucket.clock.winner(scheds, answered)
        if index < 0:
            raise gap_error(bucket, Band(None, answered, 0))
        return _price_call(cdr, plan, rates[index], number, True, tried)
    laid = bands(bucket, cdr.started_at, answered, billsec)
    first = laid[0].rate
    if first is None:
        raise gap_error(bucket, laid[0])
    if len(laid) == 1 or billsec <= first.grace_seconds:
        return _price_call(cdr, plan, first, number, True, tried)
    billed, total, _runs = lay(laid, billsec, lambda band: gap_error(bucket, band))
    quantum = plan.quantum_micros
    numerator = first.connection_fee_micros * 60 + total
    cost = _round_ratio(numerator, 60 * quantum, plan.rounding) * quantum
    cost = max(cost, first.minimum_charge_micros)
    if first.maximum_charge_micros is not None and cost > first.maximum_charge_micros:
        cost = first.maximum_charge_micros
    return Charge(
        ChargeStatus.RATED, None, cost, plan.currency, billed, first, cdr, number, plan, tried
    )


def _scheduled_bucket(charge: Charge) -> Scheduled | None:
    plan, rate = charge.plan, charge.rate
    if plan is None or rate is None:
        return None
    index = plan._indexes.get(charge.cdr.direction)
    bucket = index.candidates.get(rate.prefix) if index is not None else None
    return bucket if type(bucket) is Scheduled else None


def _band_segments(charge: Charge) -> tuple[BandSegment, ...]:
    rate, cdr = charge.rate, charge.cdr
    if charge.status is not ChargeStatus.RATED or not charge.billed_seconds or rate is None:
        return ()
    answered = cdr.answered_at or cdr.started_at
    bucket = _scheduled_bucket(charge)
    assert charge.plan is not None  # a RATED charge with a rate names its plan
    if bucket is not None and charge.plan.band_policy is BandPolicy.SPLIT:
        laid = bands(bucket, cdr.started_at, answered, cdr.billsec)
        runs = lay(laid, cdr.billsec, lambda band: gap_error(bucket, band))[2]
    else:
        laid = [Band(rate, answered, 0)]
        runs = [Run(0, *seg) for seg in segments(rate, cdr.billsec)]
    out: list[BandSegment] = []
    for band, group in itertools.groupby(runs, key=lambda run: run.band):
        items = list(group)
        band_rate = laid[band].rate
        assert band_rate is not None  # lay() raised for a step in a gap
        first = items[0].start
        seconds = sum(r.steps * r.length for r in items)
        out.append(
            BandSegment(
                rate=band_rate,
                # In UTC: adding to a ZoneInfo datetime would add wall-clock time.
                starts_at=(answered.astimezone(UTC) + timedelta(seconds=first)).astimezone(
                    answered.tzinfo
                ),
                first_second=first,
                billed_seconds=seconds,
                steps=sum(r.steps for r in items),
                amount=Fraction(sum(r.steps * r.length * r.per_minute_micros for r in items), 60),
                runs=tuple((r.start, r.steps, r.length, r.per_minute_micros) for r in items),
            )
        )
    return tuple(out)


# -- explain -------------------------------------------------------------------------------


def _money(micros: int, currency: str | None) -> str:
    return f"{format_micros(micros, currency)} ({micros:,} micros)"


def _frac(numerator: int, denominator: int) -> str:
    whole, rest = divmod(numerator, denominator)
    if rest == 0:
        return f"{whole:,}"
    f = Fraction(rest, denominator)
    return f"{whole:,} {f.numerator}/{f.denominator} (≈ {numerator / denominator:,.2f})"


def _why_not(candidate: Rate, winner: Rate, cdr: CDR, plan: RatePlan) -> str:
    if candidate.direction is not cdr.direction:
        return f"direction {candidate.direction.value}"
    if candidate.status is not RateStatus.ACTIVE:
        return f"status {candidate.status.value}"
    if not candidate.in_force(cdr.started_at):
        return "not in force at started_at"
    schedule = candidate.schedule
    if schedule is not None:
        clock = plan._clock
        for label, at in (("started_at", cdr.started_at), ("the answer time", cdr.answered_at)):
            if at is None or (label != "started_at" and candidate.prefix != winner.prefix):
                continue
            day, seconds = clock.local(at)
            if not schedule.covers_local(day, seconds, clock.holidays):
                return f"its schedule '{schedule}' does not cover {label} ({plan.timezone})"
    if candidate.prefix == winner.prefix:
        return f"lower priority ({candidate.priority} < {winner.priority})"
    return "shorter prefix"


def _explain(charge: Charge) -> str:
    cdr = charge.cdr
    lines = [
        f"Call {cdr.call_id}: {cdr.direction.value} to {cdr.destination_number!r}"
        + (f" (normalised {charge.number})" if charge.number else "")
        + f", started {cdr.started_at.isoformat()}",
        f"Disposition {cdr.disposition.value}, billsec {cdr.billsec} s, duration {cdr.duration} s",
    ]
    # plans_tried: the plans before the one that rated the call, or the whole chain if none did.
    then = "; fell back to the next plan" if charge.plan is not None else ""
    lines.extend(
        f"Plan {tried.name or '(unnamed)'}: no rate for this call{then}"
        for tried in charge.plans_tried
    )
    status = charge.status
    if status is ChargeStatus.UNRATED:
        text = {
            Reason.NO_PLAN: "no plan for this tenant and no default plan",
            Reason.NO_RATE: "no active rate of this direction in force at started_at matches "
            "the number in any plan of the chain",
            Reason.INVALID_NUMBER: "the number is not digits after normalisation",
        }[charge.reason or Reason.NO_RATE]
        lines.append(f"Result: UNRATED ({charge.reason.value if charge.reason else ''}): {text}.")
        lines.append("Cost: none (unrated calls are kept and can be rated again)")
        return "\n".join(lines)
    if status is ChargeStatus.DIRECTION_NOT_RATED:
        lines.append(
            f"Result: DIRECTION_NOT_RATED: no plan prices {cdr.direction.value} calls; cost 0."
        )
        return "\n".join(lines)
    plan, winner = charge.plan, charge.rate
    if plan is not None:
        lines.append(
            f"Plan {plan.name or '(unnamed)'}: {plan.currency}, rounding {plan.rounding.value} "
            f"to {plan.quantum_micros} micro(s), access prefixes {list(plan.access_prefixes)}"
        )
    if plan is not None and winner is not None:
        lines.append(
            f"Rate: prefix {winner.prefix!r}"
            + (f" ({winner.destination})" if winner.destination else "")
            + f" won, priority {winner.priority}, {winner.increment}, "
            f"{format_micros(winner.per_minute_micros, plan.currency)}/min"
        )
        others = [r for r in plan.matching_rates(cdr.destination_number) if r is not winner]
        if others:
            lines.append("  Also matching, and why each lost:")
            lines.extend(
                f"    prefix {r.prefix!r} priority {r.priority}: {_why_not(r, winner, cdr, plan)}"
                for r in others
            )
        else:
            lines.append("  No other rate matches this number.")
    if status is ChargeStatus.UNANSWERED:
        lines.append(
            "Result: UNANSWERED: only ANSWERED calls with billsec > 0 are billable; "
            "cost 0, no connection fee."
        )
        return "\n".join(lines)
    # A RATED charge always has its plan, rate and cost; the asserts narrow the types.
    assert winner is not None
    assert plan is not None
    assert charge.cost_micros is not None
    currency = charge.currency
    if cdr.billsec <= winner.grace_seconds:
        lines.append(
            f"Grace: billsec {cdr.billsec} <= grace {winner.grace_seconds} s: "
            "cost 0, no connection fee."
        )
        lines.append(f"Cost: {_money(0, currency)}")
        return "\n".join(lines)
    numerator = winner.connection_fee_micros * 60
    bucket = _scheduled_bucket(charge)
    if bucket is None:
        lines.append("Steps:")
        for seg in segments(winner, cdr.billsec):
            amount = seg.steps * seg.length * seg.per_minute_micros
            numerator += amount
            lines.append(
                f"  {seg.start}-{seg.end} s: {seg.steps} × {seg.length} s at "
                f"{format_micros(seg.per_minute_micros, currency)}/min = {_frac(amount, 60)} micros"
            )
    else:
        tz = bucket.clock.tz
        answered = cdr.answered_at or cdr.started_at
        lines.append(
            f"Bands: schedules read in {plan.timezone}, policy {plan.band_policy.value}; steps "
            f"laid from the answer at {answered.astimezone(tz).isoformat()} "
            f"({'answered_at' if cdr.answered_at else 'started_at: no answered_at'})"
        )
        for n, band in enumerate(charge.bands(), 1):
            r = band.rate
            lines.append(
                f"  Band {n} from {band.starts_at.astimezone(tz):%a %Y-%m-%d %H:%M:%S %Z}: "
                + (f"rate {r.id!r}, " if r.id is not None else "")
                + f"prefix {r.prefix!r}, priority {r.priority}, "
                f"schedule '{r.schedule or 'always'}'"
            )
            for start, steps, length, per_minute in band.runs:
                amount = steps * length * per_minute
                lines.append(
                    f"    {start}-{start + steps * length} s: {steps} × {length} s at "
                    f"{format_micros(per_minute, currency)}/min = {_frac(amount, 60)} micros"
                )
            amount60 = band.amount * 60
            numerator += int(amount60)
            lines.append(
                f"    Band {n}: {band.steps} steps, {band.billed_seconds} s = "
                f"{_frac(int(amount60), 60)} micros"
            )
    lines.append(f"Billed seconds: {charge.billed_seconds}")
    lines.append(
        f"Connection fee: {_money(winner.connection_fee_micros, currency)}"
        + (" (rate in force at the answer time; so are minimum and maximum)" if bucket else "")
    )
    lines.append(f"Exact sum: {_frac(numerator, 60)} micros")
    quantum = plan.quantum_micros
    rounded = _round_ratio(numerator, 60 * quantum, plan.rounding) * quantum
    lines.append(f"Rounded once ({plan.rounding.value}, quantum {quantum}): {rounded:,} micros")
    if rounded < winner.minimum_charge_micros:
        lines.append(f"Minimum charge applied: {_money(winner.minimum_charge_micros, currency)}")
    if (
        winner.maximum_charge_micros is not None
        and charge.cost_micros == winner.maximum_charge_micros
        and rounded > winner.maximum_charge_micros
    ):
        lines.append(f"Maximum charge applied: {_money(winner.maximum_charge_micros, currency)}")
    lines.append(f"Cost: {_money(charge.cost_micros, currency)}")
    return "\n".join(lines)


# -- many CDRs, many plans -------------------------------------------------------------------

PlanChain = RatePlan | Sequence[RatePlan]

# Columns of BatchResult.to_pandas() / to_arrow(), in order.
_BATCH_COLUMNS = (
    "position",
    "call_id",
    "status",
    "reason",
    "cost_micros",
    "currency",
    "billed_seconds",
    "prefix",
    "error",
)


def _as_chain(value: PlanChain | None, field: str) -> tuple[RatePlan, ...]:
    if value is None:
        return ()
    if isinstance(value, RatePlan):
        return (value,)
    chain = tuple(value)
    for plan in chain:
        if not isinstance(plan, RatePlan):
            raise ValidationError(field, value, "a RatePlan or a sequence of RatePlans")
    return chain


@attrs.frozen
class RowError:
    """A record that could not be rated: its position in the input and why."""

    position: int
    error: str
    field: str | None = None
    record: Any = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class DestinationTotal:
    calls: int = 0
    answered: int = 0
    billed_seconds: int = 0
    cost_micros: int = 0


@attrs.frozen
class CostChange:
    """One CDR whose charge differs between two ratings (re-rating)."""

    position: int
    call_id: str
    before_micros: int | None
    after_micros: int | None
    before_status: str | None
    after_status: str

    @property
    def delta_micros(self) -> int | None:
        if self.before_micros is None or self.after_micros is None:
            return None
        return self.after_micros - self.before_micros


class BatchResult:
    """Charges of a batch in input order, with counts, totals and every bad record.

    ``charges[i]`` belongs to the i-th input record; it is None exactly when that record
    is in ``errors`` (with its position and reason). Nothing is dropped.
    """

    def __init__(self) -> None:
        self.charges: list[Charge | None] = []
        self.errors: list[RowError] = []
        self.by_status: Counter[str] = Counter()
        self.by_reason: Counter[str] = Counter()
        self.totals: dict[str, int] = {}
        self.by_destination: dict[tuple[str, str], DestinationTotal] = {}

    def _add(self, charge: Charge) -> None:
        self.charges.append(charge)
        self.by_status[charge.status.value] += 1
        if charge.reason is not None:
            self.by_reason[charge.reason.value] += 1
        currency = charge.currency or ""
        if charge.cost_micros is not None and charge.currency is not None:
            self.totals[currency] = self.totals.get(currency, 0) + charge.cost_micros
        key = (currency, charge.destination)
        old = self.by_destination.get(key) or DestinationTotal()
        self.by_destination[key] = DestinationTotal(
            old.calls + 1,
            old.answered + (charge.cdr.is_billable),
            old.billed_seconds + charge.billed_seconds,
            old.cost_micros + (charge.cost_micros or 0),
        )

    def _fail(self, position: int, error: Exception, record: Any) -> None:
        self.charges.append(None)
        self.errors.append(RowError(position, str(error), getattr(error, "field", None), record))

    def __len__(self) -> int:
        return len(self.charges)

    def __iter__(self) -> Iterator[Charge | None]:
        return iter(self.charges)

    @property
    def ok(self) -> bool:
        """True when every record was rated or reported as unanswered/not rated (no errors)."""
        return not self.errors

    def rated_cdrs(self) -> list[CDR]:
        """The input CDRs with ``cost_micros`` and ``currency`` set (bad records left out:
        they are in ``errors``)."""
        return [c.cdr.with_charge(c) for c in self.charges if c is not None]

    def changes(self, previous: BatchResult | None = None) -> list[CostChange]:
        """CDRs whose cost changed: against ``previous`` (the same records rated before),
        or else against the ``cost_micros`` each input CDR already carried."""
        if previous is not None and len(previous) != len(self):
            raise ValidationError(
                "previous", f"{len(previous)} records", f"the same {len(self)} records, in order"
            )
        out: list[CostChange] = []
        for i, charge in enumerate(self.charges):
            if charge is None:
                continue
            if previous is not None:
                before = previous.charges[i]
                before_cost = before.cost_micros if before is not None else None
                before_status = before.status.value if before is not None else None
            else:
                before_cost, before_status = charge.cdr.cost_micros, None
            if before_cost != charge.cost_micros:
                out.append(
                    CostChange(
                        i,
                        charge.call_id,
                        before_cost,
                        charge.cost_micros,
                        before_status,
                        charge.status.value,
                    )
                )
        return out

    def summary(self) -> str:
        parts = [f"{len(self)} records"]
        parts += [f"{k} {v}" for k, v in sorted(self.by_status.items())]
        if self.errors:
            parts.append(f"errors {len(self.errors)}")
        totals = ", ".join(format_micros(v, k) for k, v in sorted(self.totals.items()))
        return "; ".join(parts) + (f"; total {totals}" if totals else "")

    def __repr__(self) -> str:
        return f"<BatchResult {self.summary()}>"

    def _table_columns(self) -> dict[str, list[Any]]:
        """One row per input record, in input order (bad records included)."""
        errors = {e.position: e for e in self.errors}
        columns: dict[str, list[Any]] = {name: [] for name in _BATCH_COLUMNS}
        for position, charge in enumerate(self.charges):
            columns["position"].append(position)
            if charge is None:
                error = errors.get(position)
                record = error.record if error is not None else None
                if isinstance(record, CDR):
                    call_id: Any = record.call_id
                elif isinstance(record, Mapping) and isinstance(record.get("call_id"), str):
                    call_id = record["call_id"]
                else:
                    call_id = None
                row: tuple[Any, ...] = (
                    call_id,
                    "ERROR",
                    None,
                    None,
                    None,
                    None,
                    None,
                    error.error if error is not None else None,
                )
            else:
                row = (
                    charge.call_id,
                    charge.status.value,
                    charge.reason.value if charge.reason is not None else None,
                    charge.cost_micros,
                    charge.currency,
                    charge.billed_seconds,
                    charge.prefix,
                    None,
                )
            for name, value in zip(_BATCH_COLUMNS[1:], row, strict=True):
                columns[name].append(value)
        return columns

    def to_arrow(self) -> Any:
        """A ``pyarrow.Table`` with one row per input record: position, call_id, status
        (ERROR for a bad record), reason, cost_micros, currency, billed_seconds, prefix,
        error. Needs pyarrow (``pip install 'cdrrating[frame]'``)."""
        try:
            import pyarrow as pa  # type: ignore[import-untyped]  # noqa: PLC0415  # lazy; untyped
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError("to_arrow() needs pyarrow: pip install 'cdrrating[frame]'") from error
        columns = self._table_columns()
        types = {"position": pa.int64(), "cost_micros": pa.int64(), "billed_seconds": pa.int64()}
        return pa.table(
            {name: pa.array(v, types.get(name, pa.string())) for name, v in columns.items()}
        )

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame`` with the columns of :meth:`to_arrow`; cost_micros and
        billed_seconds are nullable ``Int64``. Needs pandas."""
        try:
            import pandas as pd  # noqa: PLC0415  # lazy: an optional dependency
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError("to_pandas() needs pandas: pip install 'cdrrating[frame]'") from error
        columns = self._table_columns()
        data: dict[str, Any] = {}
        for name, values in columns.items():
            if name == "position":
                data[name] = pd.array(values, dtype="int64")
            elif name in ("cost_micros", "billed_seconds"):
                data[name] = pd.array(values, dtype="Int64")
            else:
                data[name] = pd.array(values, dtype="string")
        return pd.DataFrame(data)

    def _repr_html_(self) -> str:
        """Summary, counts and the costliest destinations, for notebooks."""
        destinations = sorted(self.by_destination.items(), key=lambda kv: -kv[1].cost_micros)
        parts = [
            _html.table(
                ["status", "calls"], sorted(self.by_status.items()), caption=self.summary()
            ),
            _html.table(
                ["destination", "calls", "answered", "billed min", "cost"],
                (
                    (
                        dest or "(no rate)",
                        t.calls,
                        t.answered,
                        f"{t.billed_seconds / 60:.2f}",
                        format_micros(t.cost_micros, cur or None),
                    )
                    for (cur, dest), t in destinations
                ),
                total=len(destinations),
                caption="costliest destinations",
            ),
        ]
        if self.errors:
            parts.append(
                _html.table(
                    ["position", "field", "error"],
                    ((e.position, e.field or "", e.error) for e in self.errors),
                    total=len(self.errors),
                    caption="rejected records",
                )
            )
        return "".join(parts)


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
            t: c + tuple(p for p in self._default if p not in c) for t, c in self._plans.items()
        }

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
                except (CdrRatingError, ValueError, TypeError) as error:
                    result._fail(position, error, record)
                bar.step()
        finally:
            bar.close()
        return result
