"""What rating concludes about one call: :class:`Charge`, its status and reason, the
bands it was priced in, and ``explain()``.

A charge reports what the engine computed: the steps and bands it shows are laid by the
same functions that priced the call (``cdrrating._rules``), never by a second copy.
"""

from __future__ import annotations

import enum
import itertools
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import attrs

from cdrrating import _html
from cdrrating._bands import Band, Scheduled, bands, gap_error, lay
from cdrrating._enum import EnumParser
from cdrrating._rules import in_grace, round_once
from cdrrating.cdr import CDR
from cdrrating.money import format_micros
from cdrrating.plan import RatePlan
from cdrrating.rates import Rate, RateStatus
from cdrrating.schedule import BandPolicy

__all__ = ["BandSegment", "Charge", "ChargeStatus", "Reason"]


@attrs.frozen(kw_only=True)
class BandSegment:
    """The steps of one call that one rate priced (``Charge.bands()``).

    A call that crosses no band is one segment. ``amount`` is exact (micros, a
    :class:`~fractions.Fraction`) and excludes the connection fee; the charge's exact
    sum is the fee plus every segment's amount, rounded once.
    """

    rate: Rate
    starts_at: datetime  # the start of the segment's first step
    first_second: int  # its billed position (seconds after the answer)
    billed_seconds: int
    steps: int
    amount: Fraction
    runs: tuple[tuple[int, int, int, int], ...] = attrs.field(repr=False)
    # (start position, steps, step length, per-minute micros) per run of equal steps

    @property
    def end_second(self) -> int:
        return self.first_second + self.billed_seconds


class ChargeStatus(enum.StrEnum):
    """What rating concluded about a call."""

    RATED = "RATED"  # priced by a rate (cost may be 0 under a grace period)
    UNANSWERED = "UNANSWERED"  # not answered, or billsec 0: costs 0, no connection fee
    UNRATED = "UNRATED"  # no price could be found: cost is None, never 0; rate again later
    DIRECTION_NOT_RATED = "DIRECTION_NOT_RATED"  # the plans price no call of this direction: 0

    @classmethod
    def parse(cls, value: ChargeStatus | str, field: str = "status") -> ChargeStatus:
        return _PARSE_STATUS(value, field)


class Reason(enum.StrEnum):
    """Why a call is UNRATED."""

    NO_RATE = "NO_RATE"
    NO_PLAN = "NO_PLAN"
    INVALID_NUMBER = "INVALID_NUMBER"

    @classmethod
    def parse(cls, value: Reason | str, field: str = "reason") -> Reason:
        return _PARSE_REASON(value, field)


_PARSE_STATUS = EnumParser(ChargeStatus)
_PARSE_REASON = EnumParser(Reason)


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


def _scheduled_bucket(charge: Charge) -> Scheduled | None:
    plan, rate = charge.plan, charge.rate
    if plan is None or rate is None:
        return None
    index = plan._compiled.indexes.get(charge.cdr.direction)
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
        runs = lay(laid, cdr.billsec, _no_gap)[2]
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
        clock = plan._compiled.clock
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
    if in_grace(cdr.billsec, winner.grace_seconds):
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
        for start, steps, length, per_minute in charge.bands()[0].runs:
            amount = steps * length * per_minute
            numerator += amount
            lines.append(
                f"  {start}-{start + steps * length} s: {steps} × {length} s at "
                f"{format_micros(per_minute, currency)}/min = {_frac(amount, 60)} micros"
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
    rounded = round_once(numerator, 60 * quantum, plan.rounding) * quantum
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


def _no_gap(band: Band) -> Exception:  # pragma: no cover - a one-band lay has a rate
    raise AssertionError(band)
