"""Steps, tiers and the exact sum of rating-rules §3–4 (private).

Everything is integer arithmetic on "micro-seconds-minutes": a step of ``s`` seconds at
``p`` micros per minute adds ``s * p`` to a numerator whose denominator is 60, so the
exact amount is ``numerator / 60`` micros and is rounded once, at the end.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import NamedTuple

from cdrrating.rates import Rate


class Segment(NamedTuple):
    """``steps`` consecutive steps of ``length`` seconds from billed position ``start``,
    each priced at ``per_minute_micros``."""

    start: int
    steps: int
    length: int
    per_minute_micros: int

    @property
    def seconds(self) -> int:
        return self.steps * self.length

    @property
    def end(self) -> int:
        return self.start + self.steps * self.length


def billed_seconds_untiered(rate: Rate, billsec: int) -> int:
    """Billed seconds of a rate without tiers (the formula of rating-rules §3)."""
    initial = rate.initial_seconds
    if billsec <= initial:
        return initial
    inc = rate.increment_seconds
    return initial + -(-(billsec - initial) // inc) * inc


def segments(rate: Rate, billsec: int) -> list[Segment]:
    """The steps laid for ``billsec`` answered seconds, grouped into runs of equal steps.

    Work is proportional to the number of tiers, not of seconds: each run is counted
    with one ceiling division.
    """
    if billsec <= 0:
        return []
    bounds = [t.after_seconds for t in rate.tiers]
    prices = [rate.per_minute_micros] + [t.per_minute_micros for t in rate.tiers]
    increments = [rate.increment_seconds] + [t.increment_seconds for t in rate.tiers]
    out: list[Segment] = []
    first = rate.initial_seconds or rate.increment_seconds
    out.append(Segment(0, 1, first, prices[0]))
    position = first
    while position < billsec:
        tier = bisect_right(bounds, position)  # index into prices: last tier with after <= position
        limit = billsec if tier == len(bounds) else min(billsec, bounds[tier])
        inc = increments[tier]
        # Steps start at position, position+inc, ... while the start is below limit;
        # the last one completes at its own length even past the next tier's start.
        steps = -(-(limit - position) // inc)
        out.append(Segment(position, steps, inc, prices[tier]))
        position += steps * inc
    return out


class Priced(NamedTuple):
    billed_seconds: int
    numerator: int  # exact amount in micros is numerator / 60 (connection fee included)


def price(rate: Rate, billsec: int) -> Priced:
    """Billed seconds and the exact amount (× 60) of a billable call of ``billsec`` seconds."""
    fee60 = rate.connection_fee_micros * 60
    if not rate.tiers:
        billed = billed_seconds_untiered(rate, billsec)
        return Priced(billed, fee60 + billed * rate.per_minute_micros)
    total = fee60
    billed = 0
    for seg in segments(rate, billsec):
        total += seg.steps * seg.length * seg.per_minute_micros
        billed = seg.end
    return Priced(billed, total)
