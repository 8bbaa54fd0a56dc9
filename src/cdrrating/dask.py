"""Rating Dask DataFrames (extra ``[dask]``).

``rate_dask(ddf, plan_or_rater)`` returns a lazy Dask DataFrame: ``ddf`` with the charge
columns of :func:`cdrrating.frame.rate_table` added, each partition rated by
``rate_table`` (``map_partitions`` with an explicit ``meta``). Row for row the result
equals ``rate_table`` on the same rows, with the same index and divisions.

The plan is shipped once. With a distributed ``Client`` in use, its pickled form is
scattered to every worker once (``client.scatter(..., broadcast=True)``) and each worker
process loads it once, keyed by the plan's content hash, for every later task. On the
default threaded scheduler the tasks read the very plan object: nothing is pickled.
Either way the plan enters the task graph as a small reference whose Dask token is the
plan's content hash, so building a graph never hashes the plan's rates.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Iterable
from typing import Any, Literal

import attrs

try:
    import dask.dataframe as dd
    import pandas as pd
    from dask.dataframe.utils import clear_known_categories
except ImportError as _error:  # pragma: no cover - exercised by the import test in a subprocess
    raise ImportError(
        f"cdrrating.dask needs dask[dataframe] ({_error.name} is missing): "
        "pip install 'cdrrating[dask]'"
    ) from _error

# The "as" re-exports KEPT_PLANS: cdrrating.dask.KEPT_PLANS is a name users read.
from cdrrating._worker_plans import KEPT_PLANS as KEPT_PLANS  # noqa: PLC0414
from cdrrating._worker_plans import PlanArg, WorkerPlans, plan_key
from cdrrating.errors import ValidationError
from cdrrating.frame import ALL_OUTPUT_COLUMNS, rate_table

__all__ = ["WORKER_CONFIG", "rate_dask", "worker_plan_loads"]

#: Dask settings for workers that rate, to pass to ``dask.config.set`` before the
#: cluster (or ``dask worker``) starts. Unset the ``MALLOC_TRIM_THRESHOLD_`` Dask's
#: nanny gives its workers: it also fixes glibc's mmap threshold at 128 KiB, so every
#: array rating makes is mapped and unmapped afresh (the workers spent about a third
#: more CPU with it). No sampling profiler, slower ticks: their CPU for every second a
#: task runs. None of it changes a result.
WORKER_CONFIG: dict[str, Any] = {
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.worker.memory.monitor-interval": "1s",
}

# -- the plan in the tasks -------------------------------------------------------------------

# Plans loaded in this process, by content hash, and how many times one was loaded.
_PLANS = WorkerPlans()


@attrs.frozen
class _InProcess:
    """The plan itself, for schedulers that run tasks in this process."""

    key: str
    value: Any = attrs.field(repr=False)

    def plan(self) -> Any:
        return self.value

    def __dask_tokenize__(self) -> tuple[str, str]:
        return ("cdrrating-plan", self.key)


@attrs.frozen
class _Shipped:
    """The pickled plan, as scattered to the workers: it stays pickled (bytes travel
    between workers without a load) until a task in a process first needs it."""

    key: str
    payload: bytes = attrs.field(repr=False)

    def plan(self) -> Any:
        return _PLANS.get_or_load(self.key, self._load)

    def _load(self) -> Any:
        return pickle.loads(self.payload)

    def __dask_tokenize__(self) -> tuple[str, str]:
        return ("cdrrating-plan", self.key)


def _loads_here() -> int:
    return _PLANS.loads


def worker_plan_loads(client: Any = None) -> dict[str, int]:
    """How many times each worker process of a distributed cluster has loaded a plan
    shipped by :func:`rate_dask` (all plans together): once per plan and process.

    ``client`` defaults to the current distributed ``Client``.
    """
    if client is None:
        client = _current_client()
        if client is None:
            raise ValidationError("client", None, "a distributed Client (none is in use)")
    loads: dict[str, int] = client.run(_loads_here)
    return loads


def _current_client() -> Any:
    """The distributed Client that will run the graph, or None for a local scheduler."""
    if _configured_scheduler() not in (None, "dask.distributed", "distributed"):
        return None
    try:
        from distributed import default_client  # noqa: PLC0415  # optional at run time
    except ImportError:  # pragma: no cover - dask without distributed
        return None
    try:
        return default_client()  # type: ignore[no-untyped-call]  # distributed has no hints here
    except ValueError:
        return None


def _configured_scheduler() -> Any:
    import dask  # noqa: PLC0415  # the package, beside the dask.dataframe import above

    return dask.config.get("scheduler", None)


_SCATTERED: dict[tuple[str, str], Any] = {}
_SCATTERED_LOCK = threading.Lock()


def _reference(plan_or_rater: PlanArg, client: Any) -> Any:
    key = plan_key(plan_or_rater)
    if client is None:
        return _InProcess(key, plan_or_rater)
    slot = (client.id, key)
    with _SCATTERED_LOCK:
        future = _SCATTERED.get(slot)
        if future is None or future.status != "finished":
            shipped = _Shipped(key, pickle.dumps(plan_or_rater, protocol=pickle.HIGHEST_PROTOCOL))
            future = _SCATTERED[slot] = client.scatter(shipped, broadcast=True, hash=True)
    return future


# -- the public call -------------------------------------------------------------------------


def _rate_partition(part: pd.DataFrame, reference: Any, **options: Any) -> pd.DataFrame:
    # rate_table's categoricals have text categories also when none of a partition's
    # rows has a value, so Dask can join every partition's categories as they come.
    rated: pd.DataFrame = rate_table(part, reference.plan(), **options)
    return rated


def rate_dask(
    ddf: dd.DataFrame,
    plan_or_rater: PlanArg,
    *,
    assume_tz: str | None = None,
    destination: bool = False,
    columns: Iterable[str] | None = None,
    strings: Literal["dictionary", "plain"] = "dictionary",
    client: Any = None,
) -> dd.DataFrame:
    """Rate a Dask DataFrame of CDRs: ``ddf`` with the charge columns added, lazily.

    ``plan_or_rater`` and the options are those of :func:`cdrrating.frame.rate_table`
    (a :class:`~cdrrating.RatePlan`, a fallback chain, a :class:`~cdrrating.Rater`
    whose chains the ``tenant`` column picks, or None). Each partition is rated by
    ``rate_table``; the result's columns, dtypes, index and divisions are what
    ``rate_table`` gives for a partition (with ``strings="dictionary"`` the text
    columns are categoricals whose categories are known only once computed). Bad rows
    get status ``ERROR`` and the reason in ``error``; columns that are unusable as a
    whole (a missing required column, naive timestamps without ``assume_tz``, float
    seconds) raise :class:`~cdrrating.ValidationError` here, before anything runs.

    ``client``: the distributed Client to ship the plan to; by default the current one
    if there is one (create it before calling), else the graph holds the plan itself
    for the threaded scheduler.
    """
    if not isinstance(ddf, dd.DataFrame):
        raise ValidationError("ddf", ddf, "a dask.dataframe.DataFrame")
    options: dict[str, Any] = {
        "assume_tz": assume_tz,
        "destination": destination,
        "columns": None if columns is None else tuple(columns),
        "strings": strings,
    }
    # Rated on no rows: options and columns are checked here, and the result's empty
    # frame is exactly the meta of every partition.
    meta = rate_table(ddf._meta, plan_or_rater, **options)
    if strings == "dictionary":
        # Each partition's dictionaries hold the values its rows use: unknown here.
        added = [
            c
            for c in ALL_OUTPUT_COLUMNS
            if c in meta.columns and isinstance(meta[c].dtype, pd.CategoricalDtype)
        ]
        meta = clear_known_categories(meta, cols=added)  # type: ignore[no-untyped-call]  # (dask)
    reference = _reference(plan_or_rater, client if client is not None else _current_client())
    rated: dd.DataFrame = ddf.map_partitions(  # type: ignore[no-untyped-call]  # (dask)
        _rate_partition, reference, meta=meta, token="rate-cdrs", **options
    )
    return rated
