"""The table engine: a thin driver of ``cdrrating._rules`` over columns (private).

Every rule is the object engine's: candidates come from the plan's compiled form
(``RatePlan._compiled.table``), and steps, the exact sum, rounding, the clamps, grace
and billability are the functions of ``cdrrating._rules`` applied to int64 arrays.
Calls the arrays cannot carry exactly (sums past 2**61, calls that cross more than one
schedule band edge or a change of UTC offset) are priced by the object engine's own
functions, one by one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from cdrrating import _rules
from cdrrating._table_plan import I64_MAX, SORT_FROM, TablePlan, key_order
from cdrrating.errors import CdrRatingError, ValidationError
from cdrrating.frame._columns import _DIRECTIONS, _Columns, _normalise, _Numbers
from cdrrating.frame._output import (
    _ERROR,
    _INVALID,
    _NO_PLAN,
    _NO_RATE,
    _NOT_RATED,
    _RATED,
    _UNANSWERED,
    _UNRATED,
    _Result,
)
from cdrrating.plan import RatePlan
from cdrrating.rating import Rater, price_banded, price_rate

NDArray = Any

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _instant(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def chains_of(value: Any) -> tuple[list[tuple[RatePlan, ...]], Callable[[str | None], int]]:
    """The distinct plan chains and a function from a tenant to its chain's index."""
    if isinstance(value, Rater):
        chains: list[tuple[RatePlan, ...]] = []
        index: dict[tuple[int, ...], int] = {}
        rater = value

        def tenant_of(tenant: str | None) -> int:
            chain = rater.chain(tenant)
            key = tuple(id(p) for p in chain)
            if key not in index:
                index[key] = len(chains)
                chains.append(chain)
            return index[key]

        return chains, tenant_of
    if value is None:
        single: tuple[RatePlan, ...] = ()
    elif isinstance(value, RatePlan):
        single = (value,)
    elif isinstance(value, Sequence) and all(isinstance(p, RatePlan) for p in value):
        single = tuple(value)
    else:
        raise ValidationError(
            "plan_or_rater", value, "a RatePlan, a sequence of RatePlans, a Rater or None"
        )
    return [single], lambda _tenant: 0


def rate_columns(
    cols: _Columns, chains: list[tuple[RatePlan, ...]], chain_of: Callable[[str | None], int]
) -> _Result:
    n = cols.n
    status = np.full(n, _UNRATED, np.int8)
    reason = np.full(n, -1, np.int8)
    cost = np.zeros(n, np.int64)
    cost_null = np.zeros(n, bool)
    billed = np.zeros(n, np.int64)
    currency = np.full(n, -1, np.int32)
    row_plan = np.full(n, -1, np.int32)  # index into plans
    row_rate = np.full(n, -1, np.int32)  # rate id in that plan's table form
    currencies: list[str] = []
    plans: list[TablePlan] = []
    billable = _rules.billable(cols.answered, cols.billsec)
    numbers_cache: dict[tuple[str, ...], _Numbers] = {}

    def numbers_of(access: tuple[str, ...]) -> _Numbers:
        found = numbers_cache.get(access)
        if found is None:
            found = numbers_cache[access] = _normalise(cols.numbers, access, cols.number_strings)
        return found

    def currency_code(code: str) -> int:
        if code not in currencies:
            currencies.append(code)
        return currencies.index(code)

    def slot(table: TablePlan) -> int:
        for k, known in enumerate(plans):
            if known is table:
                return k
        plans.append(table)
        return len(plans) - 1

    tenant_chain = np.array([chain_of(t) for t in cols.tenants], np.int32)
    good = ~cols.bad
    row_chain = None if len(chains) == 1 else tenant_chain[cols.tenant_codes]
    for chain_index, chain in enumerate(chains):
        mask = good if row_chain is None else good & (row_chain == chain_index)
        rows = np.flatnonzero(mask)
        if not rows.size:
            continue
        m = rows.size
        found_plan = np.full(m, -1, np.int32)
        found_rate = np.full(m, -1, np.int32)
        found_label = np.full(m, -1, np.int32)
        banded = np.zeros(m, bool)
        priced = np.zeros(m, bool)  # some plan prices calls of this direction
        number_ok = np.zeros(m, bool)
        tables = [plan._compiled.table(plan) for plan in chain]
        ordered_for = None
        if m > SORT_FROM and tables:
            # The rows in (nearly) ascending key order from here on: the look-up then
            # reads the plan's bounds in order, and pricing its rate columns.
            ordered_for = tables[0].access
            keys = numbers_of(ordered_for).keys
            rows = key_order(keys) if m == n else rows[key_order(keys[rows])]
        direction = cols.direction[rows]
        for plan_index, table in enumerate(tables):
            numbers = numbers_of(table.access)
            for dir_value, lookup in table.lookups.items():
                code = _DIRECTIONS.index(dir_value)
                sel = np.flatnonzero((found_rate < 0) & (direction == code))
                if not sel.size:
                    continue
                if sel.size == m:
                    at = rows
                    priced.fill(True)
                    ok = np.ones(m, bool) if numbers.all_valid else numbers.valid[at]
                    number_ok |= ok
                else:
                    at = rows[sel]
                    priced[sel] = True
                    ok = numbers.valid[at]
                    number_ok[sel] |= ok
                if not ok.all():
                    sel, at = sel[ok], at[ok]
                found, label = table.find(
                    dir_value,
                    numbers.keys,
                    numbers.lengths,
                    at,
                    cols.started_us,
                    _python_lookup(table, dir_value, cols),
                    ordered=table.access == ordered_for,
                )
                hit = found >= 0
                if sel.size == m and hit.all():  # every row, found here: no scatter
                    found_rate, found_label = found, label
                    found_plan.fill(plan_index)
                    if lookup.any_scheduled:
                        banded = lookup.scheduled[label]
                    continue
                target = sel[hit]
                found_rate[target] = found[hit]
                found_label[target] = label[hit]
                found_plan[target] = plan_index
                if lookup.any_scheduled:
                    banded[target] = lookup.scheduled[label[hit]]
        bill = billable[rows]
        every = rows.size == n  # rows is a permutation of all rows
        for plan_index, table in enumerate(tables):
            if len(tables) == 1 and (found_plan == plan_index).all():
                mine, target, paying = None, rows, bill
                plan_rate = found_rate
            else:
                mine = np.flatnonzero(found_plan == plan_index)
                if not mine.size:
                    continue
                target, paying, plan_rate = rows[mine], bill[mine], found_rate[mine]
            if every and mine is None:
                currency.fill(currency_code(table.currency))
                row_plan.fill(slot(table))
            else:
                currency[target] = currency_code(table.currency)
                row_plan[target] = slot(table)
            row_rate[target] = plan_rate
            # RATED where paying, else UNANSWERED (arithmetic: no branch per row).
            if every and mine is None:  # every row, here: in row order, no scatter
                status = _UNANSWERED + billable.view(np.int8) * np.int8(_RATED - _UNANSWERED)
            else:
                status[target] = _UNANSWERED + paying.view(np.int8) * np.int8(_RATED - _UNANSWERED)
            payers = np.flatnonzero(paying) if mine is None else mine[paying]
            if not payers.size:
                continue
            if banded.any():
                of_payers = banded[payers]
                if of_payers.all():  # every prefix has schedules: no split
                    band_rows, plain_rows = payers, payers[:0]
                else:
                    band_rows, plain_rows = payers[of_payers], payers[~of_payers]
            else:
                band_rows, plain_rows = payers[:0], payers
            if plain_rows.size:
                at = rows[plain_rows]
                c, b, bad = _price(table, found_rate[plain_rows], cols.billsec[at])
                cost[at], billed[at] = c, b
                for k, message in bad:
                    cols.errors[int(at[k])] = message
            if band_rows.size:
                band_rows = _price_single_band(
                    table,
                    band_rows,
                    rows,
                    direction,
                    (found_rate, found_label),
                    cols,
                    cost,
                    billed,
                    row_rate,
                )
            if band_rows.size:
                _price_banded_rows(
                    table, rows[band_rows], direction[band_rows], found_label[band_rows], cols,
                    (row_rate, billed, cost),
                )  # fmt: skip
        # Not found in any plan: as the end of the object engine's chain.
        missing = np.flatnonzero(found_plan < 0)
        if not missing.size:
            continue
        target = rows[missing]
        if chain:
            currency[target] = currency_code(chain[0].currency)
        paying = bill[missing]
        status[target[~paying]] = _UNANSWERED
        target, miss_priced, miss_ok = (
            target[paying],
            priced[missing][paying],
            number_ok[missing][paying],
        )
        if not chain:
            status[target] = _UNRATED
            reason[target] = _NO_PLAN
            cost_null[target] = True
            continue
        status[target[~miss_priced]] = _NOT_RATED
        unrated = target[miss_priced]
        status[unrated] = _UNRATED
        reason[unrated] = np.where(miss_ok[miss_priced], _NO_RATE, _INVALID)
        cost_null[unrated] = True
    error_rows = np.array(sorted(cols.errors), np.int64)
    status[error_rows] = _ERROR
    reason[error_rows] = -1
    cost_null[error_rows] = True
    currency[error_rows] = -1
    row_plan[error_rows] = -1
    billed[error_rows] = 0
    return _Result(
        n,
        status,
        reason,
        cost,
        cost_null,
        billed,
        currency,
        currencies,
        row_plan,
        row_rate,
        plans,
        error_rows,
        [cols.errors[int(i)] for i in error_rows],
    )


def _python_lookup(
    table: TablePlan, direction: Any, cols: _Columns
) -> Callable[[NDArray], tuple[NDArray, NDArray]]:
    """The object engine's look-up, for rows the arrays do not answer."""
    lookup = table.lookups[direction]

    def find(rows: NDArray) -> tuple[NDArray, NDArray]:
        # Read here, not above: a plan loaded from a pickle builds its index on first
        # read, and most batches never need it.
        index = table.compiled.indexes[direction]
        rates = np.full(rows.size, -1, np.int32)
        labels = np.full(rows.size, -1, np.int32)
        for k, row in enumerate(rows.tolist()):
            number = cols.numbers[row].as_py()
            found = index.match(number, _instant(int(cols.started_us[row])))[1]
            if found is not None:
                rates[k] = table.rate_id[id(found)]
                labels[k] = lookup.label_of(found.prefix)
        return rates, labels

    return find


def _price(
    table: TablePlan, rate: NDArray, billsec: NDArray
) -> tuple[NDArray, NDArray, list[tuple[int, tuple[str, Any, str]]]]:
    """Cost and billed seconds of billable calls priced by one rate each (§3–4)."""
    m = rate.size
    # Indexed with below, column by column: numpy converts an int32 index on each use.
    rate = rate.astype(np.intp, copy=False)
    grace = _rules.in_grace(billsec, table.grace[rate]) if table.any_grace else None
    if m and int(billsec.max()) <= table.safe_min:
        slow = np.zeros(m, bool)  # every call fits int64 whatever its rate
        any_slow = False
    else:
        slow = billsec > table.safe[rate]
        any_slow = bool(slow.any())
    if grace is not None:
        slow &= ~grace
    if any_slow or grace is not None:
        fast = ~slow if grace is None else ~slow & ~grace
        idx = np.flatnonzero(fast)
        r, b = rate[idx], billsec[idx]
        cost = np.zeros(m, np.int64)
        billed = np.zeros(m, np.int64)
    else:
        idx = None
        r, b = rate, billsec
    if r.size:
        last = table.tiers
        price = table.per_minute[r]
        if last:
            pieces = [
                (
                    None if k == last else table.piece_end[k][r],
                    table.piece_inc[k][r],
                    table.piece_price[k][r],
                    0,
                )
                for k in range(last + 1)
            ]
        else:
            pieces = [(None, table.increment[r], price, 0)]  # piece 0 is the rate's own
        seconds, total = _rules.lay(b, table.first[r], price, pieces)
        value = _rules.settle(
            total,
            table.fee[r] if table.any_fee else 0,
            table.minimum[r] if table.any_minimum else 0,
            table.maximum[r] if table.any_maximum else None,
            table.quantum,
            table.rounding,
        )
        if idx is None:
            cost, billed = value, seconds
        else:
            cost[idx], billed[idx] = value, seconds
    elif idx is None:
        cost, billed = np.zeros(m, np.int64), np.zeros(m, np.int64)
    bad: list[tuple[int, tuple[str, Any, str]]] = []
    for k in np.flatnonzero(slow).tolist() if any_slow else ():
        seconds_k, value_k = price_rate(
            table.rates[int(rate[k])], int(billsec[k]), table.quantum, table.rounding
        )
        if value_k > I64_MAX or seconds_k > I64_MAX:
            bad.append(
                (
                    k,
                    (
                        "cost_micros",
                        value_k,
                        "a cost that fits in an int64 column (rate this call with rate())",
                    ),
                )
            )
            continue
        cost[k], billed[k] = value_k, seconds_k
    return cost, billed, bad


def _price_single_band(  # noqa: PLR0917 - private: the engine's columns, in order
    table: TablePlan,
    band_rows: NDArray,
    rows: NDArray,
    direction: NDArray,
    found: tuple[NDArray, NDArray],
    cols: _Columns,
    cost: NDArray,
    billed: NDArray,
    row_rate: NDArray,
) -> NDArray:
    """Price, over arrays, the billable calls to prefixes with schedules whose steps
    start in one band (most calls: bands last hours) or in two; return the rest for
    ``price_banded``.

    The rate of such a call is the one in force at the answer (among the candidates in
    force at the start), as ``rating.price_banded`` prices a call of one band. A call
    is of one band when no band edge comes before the end of its billsec, or when the
    rate in force after the one edge it crosses is the same (a midnight that changes
    nothing); of two when that rate differs, laid by ``_bands.lay_bands`` as
    ``price_banded`` lays it (``TablePlan.price_bands``).
    """
    found_rate, found_label = found
    rest: list[NDArray] = []
    for dir_value, lookup in table.lookups.items():
        if len(table.lookups) == 1:
            mine = band_rows  # rows of other directions found no rate here
        else:
            mine = band_rows[direction[band_rows] == _DIRECTIONS.index(dir_value)]
        if not mine.size:
            continue
        at = rows[mine]
        labels = found_label[mine]
        started = cols.started_us[at]
        # found_rate is the rate in force at the start: where the call was answered
        # then, it is the rate in force at the answer.
        rate = found_rate[mine]
        if cols.answered_us is cols.started_us:  # no answer times given: at the start
            answered, later = started, started[:0]
        else:
            answered = cols.answered_us[at]
            later = np.flatnonzero(answered != started)
        if later.size:
            rate = rate.copy()
            rate[later] = table.in_force(lookup, labels[later], started[later], answered[later])
        ok = np.flatnonzero(rate >= 0)
        whole = ok.size == mine.size  # no row in a gap: no gathers
        at_ok = at if whole else at[ok]
        seconds = cols.billsec[at_ok]
        # Every row is written here; a row left to price_banded below is written again
        # there, or becomes an error row, whose figures are not read.
        c, b, bad = _price(table, rate if whole else rate[ok], seconds)
        cost[at_ok], billed[at_ok], row_rate[at_ok] = c, b, rate if whole else rate[ok]
        # Rows (of ok) price_banded is to price: its errors, and bands not laid here.
        left: list[NDArray] = [np.array([k for k, _message in bad], np.int64)]
        if table.band_split:
            # Rows a change of band may come to before the end of their billsec seconds
            # from the answer (price_banded's bands end there), and the µs to it (-1:
            # not known here); the others are of one band, priced above.
            near, room = table.band_changes(
                lookup,
                labels if whole else labels[ok],
                answered if whole else answered[ok],
                seconds,
            )
            known = room >= 0
            left.append(near[~known])
            cross, room = near[known], room[known]
            if cross.size:
                # One edge crossed, and no other before the call ends: one band if the
                # same rate is in force after it, else two, laid over arrays.
                at_cross = ok[cross]
                edge = answered[at_cross] + room
                after = table.in_force(lookup, labels[at_cross], started[at_cross], edge)
                more = table.band_room(lookup, labels[at_cross], edge)
                before = rate[at_cross]
                one_edge = (more >= 0) & (seconds[cross] * 1_000_000 <= room + more)
                one_edge &= after >= 0  # a gap after the edge: price_banded says why
                left.append(cross[~one_edge])
                two = np.flatnonzero(one_edge & (after != before))
                if two.size:
                    k = cross[two]
                    c2, b2, fits = table.price_bands(
                        [before[two], after[two]], [-(-room[two] // 1_000_000)], seconds[k]
                    )
                    put = at_ok[k[fits]]
                    cost[put], billed[put] = c2[fits], b2[fits]
                    left.append(k[~fits])
        todo = np.unique(np.concatenate(left))
        if todo.size:
            rest.append(mine[todo if whole else ok[todo]])
        if not whole:
            gap = np.ones(mine.size, bool)
            gap[ok] = False
            rest.append(mine[gap])
    return np.concatenate(rest) if rest else band_rows[:0]


def _price_banded_rows(  # noqa: PLR0917 - private: the engine's columns, in order
    table: TablePlan,
    rows: NDArray,
    direction: NDArray,
    labels: NDArray,
    cols: _Columns,
    out: tuple[NDArray, NDArray, NDArray],
) -> None:
    """Billable calls to prefixes with schedules, one by one, by the object engine's
    function (``rating.price_banded``); a call it refuses is a bad row."""
    done: list[int] = []
    results: list[tuple[int, int, int]] = []
    buckets: dict[tuple[int, int], Any] = {}
    rate_id = table.rate_id
    for row, code, label, started_us, answered_us, billsec in zip(
        rows.tolist(),
        direction.tolist(),
        labels.tolist(),
        cols.started_us[rows].tolist(),
        cols.answered_us[rows].tolist(),
        cols.billsec[rows].tolist(),
        strict=True,
    ):
        bucket = buckets.get((code, label))
        if bucket is None:
            bucket = buckets[code, label] = table.bucket(_DIRECTIONS[code], label)
        started = _instant(started_us)
        answered = started if answered_us == started_us else _instant(answered_us)
        try:
            rate, b, c = price_banded(table.plan, bucket, started, answered, billsec)
            if c > I64_MAX:
                raise ValidationError(
                    "cost_micros",
                    c,
                    "a cost that fits in an int64 column (rate this call with rate())",
                )
        except CdrRatingError as error:
            cols.errors[row] = (
                getattr(error, "field", "plan"),
                getattr(error, "value", None),
                getattr(error, "expected", str(error)),
            )
            continue
        done.append(row)
        results.append((rate_id[id(rate)], b, c))
    if done:
        at = np.array(done, np.int64)
        row_rate, billed, cost = out
        row_rate[at], billed[at], cost[at] = np.array(results, np.int64).T
