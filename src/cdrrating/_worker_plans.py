"""The plans a worker process keeps loaded, for the scale-out drivers (Spark, Dask).

A plan travels to the workers once and each worker process loads it once, keyed by
its content hash, for every later task: :func:`plan_key` gives that key and
:class:`WorkerPlans` keeps the loaded plans of one process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from cdrrating.errors import ValidationError
from cdrrating.plan import RatePlan
from cdrrating.rating import Rater

__all__ = ["KEPT_PLANS", "PlanArg", "WorkerPlans", "plan_key"]

PlanArg = RatePlan | Sequence[RatePlan] | Rater | None

#: Plans a worker process keeps loaded at once; a further one replaces the oldest.
KEPT_PLANS = 4


def plan_key(plan_or_rater: PlanArg) -> str:
    """The content hash of a plan, a fallback chain of plans, a Rater or None: what
    decides a charge (plan names take no part; rate_table's output has none)."""
    if plan_or_rater is None:
        return "none"
    if isinstance(plan_or_rater, RatePlan | Rater):
        return plan_or_rater.content_hash
    if isinstance(plan_or_rater, Sequence) and all(isinstance(p, RatePlan) for p in plan_or_rater):
        return "chain:" + ",".join(p.content_hash for p in plan_or_rater)
    raise ValidationError(
        "plan_or_rater", plan_or_rater, "a RatePlan, a sequence of RatePlans, a Rater or None"
    )


class WorkerPlans:
    """The plans loaded in this process, by content hash, at most :data:`KEPT_PLANS`
    of them, and how many times one was loaded.

    Not an attrs class: it is mutable process state, never compared, copied or pickled.
    """

    def __init__(self) -> None:
        # Insertion order is load order, so the first key is the plan loaded longest ago.
        self._loaded: dict[str, Any] = {}
        self._loads = 0
        self._lock = threading.Lock()

    @property
    def loads(self) -> int:
        """Plans loaded in this process so far (a plan loaded again counts again)."""
        return self._loads

    def get_or_load(self, key: str, load: Callable[[], Any]) -> Any:
        """The plan kept under ``key``, or ``load()``'s, kept from now on in place of
        the oldest if :data:`KEPT_PLANS` are kept already."""
        with self._lock:
            if key not in self._loaded:
                if len(self._loaded) >= KEPT_PLANS:
                    del self._loaded[next(iter(self._loaded))]
                self._loaded[key] = load()
                self._loads += 1
            return self._loaded[key]
