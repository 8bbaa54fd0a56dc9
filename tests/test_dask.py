"""cdrrating.dask on the threaded scheduler and on a local distributed cluster of two
worker processes: every row equals rate_table's on the same rows.

Skipped when dask or distributed is missing, a failure when CI=true.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

pytest.importorskip("pyarrow")
pytest.importorskip("pandas")

import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information

from cdrrating import Rate, RatePlan, ValidationError
from cdrrating.frame import rate_table
from tests.test_spark import PLAN, RATER, SCHEDULED, cdr_rows

if TYPE_CHECKING:
    import dask.dataframe

ADDED = ["cost_micros", "currency", "billed_seconds", "status", "reason", "prefix", "error"]
PLANS = [PLAN, SCHEDULED, [SCHEDULED, PLAN], RATER, None]


def _require(module: str) -> Any:
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"{module} is not installed: pip install 'cdrrating[dask]'")


@pytest.fixture(scope="module")
def dd() -> Any:
    return _require("dask.dataframe")


@pytest.fixture(scope="module")
def client(dd: Any) -> Iterator[Any]:
    distributed = _require("distributed")
    import dask  # noqa: PLC0415  # (after _require: the skip names the extra)

    from cdrrating.dask import WORKER_CONFIG  # noqa: PLC0415

    # The cluster the docs recommend: the results must not depend on it.
    with (
        dask.config.set(WORKER_CONFIG),
        distributed.LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            dashboard_address=":0",  # any free port: never 8787, which may be taken
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as connected,
    ):
        yield connected


def frame(n: int = 240, seed: int = 7) -> pd.DataFrame:
    table = cdr_rows(n=n, seed=seed)
    return cast("pd.DataFrame", table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get))


def computed(out: dask.dataframe.DataFrame, **options: Any) -> pd.DataFrame:
    """``out.compute(**options)``: what a Dask DataFrame computes to is a pandas one."""
    compute: Callable[..., pd.DataFrame] = out.compute  # dask leaves compute unannotated
    return compute(**options)


def values(df: pd.DataFrame, name: str) -> list[Any]:
    column = df[name].astype(object)
    return [None if pd.isna(v) else v for v in column]


def kinds(dtypes: Any) -> dict[str, Any]:
    """Dtypes, with a categorical's categories left out (known only once computed)."""
    return {k: "category" if isinstance(v, pd.CategoricalDtype) else v for k, v in dtypes.items()}


def assert_same_rows(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns)
    assert got.index.equals(want.index)
    for name in want.columns:
        assert values(got, name) == values(want, name), name


# -- the threaded scheduler: the plan object itself, nothing pickled -------------------------


@pytest.mark.parametrize("plan", PLANS, ids=lambda p: type(p).__name__)
def test_rows_equal_rate_table_on_threads(dd: Any, plan: Any) -> None:
    from cdrrating.dask import rate_dask  # noqa: PLC0415

    ddf = dd.from_pandas(frame(), npartitions=4)
    out = rate_dask(ddf, plan)
    got = computed(out, scheduler="threads")
    rows = ddf.compute(scheduler="threads")
    assert_same_rows(got, rate_table(rows, plan))
    # The declared meta is what every partition is.
    assert kinds(out.dtypes) == kinds(got.dtypes)
    assert out.divisions == ddf.divisions
    if plan is not None:
        assert {"RATED", "UNANSWERED", "UNRATED", "ERROR"} <= set(values(got, "status"))


def test_threads_never_pickle_the_plan(dd: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Building the graph (tokenising) and running it on threads use the plan as it is:
    a plan that cannot be pickled rates all the same."""
    from cdrrating.dask import rate_dask  # noqa: PLC0415

    plan = RatePlan([Rate("44", 1_000), Rate("1", 2_000)], currency="EUR", name="unpicklable")

    def refuse(self: RatePlan, protocol: Any) -> Any:
        raise AssertionError("the plan was pickled")

    monkeypatch.setattr(RatePlan, "__reduce_ex__", refuse)
    with pytest.raises(AssertionError, match="pickled"):
        pickle.dumps(plan)
    ddf = dd.from_pandas(frame(seed=3), npartitions=3)
    got = computed(rate_dask(ddf, plan), scheduler="threads")
    assert_same_rows(got, rate_table(ddf.compute(scheduler="threads"), plan))


def test_plain_strings_and_chosen_columns(dd: Any) -> None:
    from cdrrating.dask import rate_dask  # noqa: PLC0415

    ddf = dd.from_pandas(frame(seed=5), npartitions=3)
    rows = ddf.compute(scheduler="threads")
    options: dict[str, Any] = {"strings": "plain", "columns": ["cost_micros", "status"]}
    out = rate_dask(ddf, PLAN, destination=True, **options)
    got = computed(out, scheduler="threads")
    assert_same_rows(got, rate_table(rows, PLAN, destination=True, **options))
    assert list(got.columns)[-3:] == ["cost_micros", "status", "destination"]
    assert kinds(out.dtypes) == kinds(got.dtypes)


def test_partitions_where_a_text_column_has_no_value_join_the_others(dd: Any) -> None:
    from cdrrating.dask import rate_dask  # noqa: PLC0415

    plan = RatePlan([Rate("44", 1_000)], currency="EUR")
    rows = pd.DataFrame(
        {
            "call_id": ["a", "b", "c", "d"],
            "started_at": pd.to_datetime(["2026-03-01 10:00"] * 4, utc=True),
            "destination_number": ["4412", "4413", "x", "339"],
            "billsec": pd.array([60, 30, 60, 60], dtype="Int64"),
        }
    )
    # The first partition has neither a reason nor an error; the second has both.
    out = rate_dask(dd.from_pandas(rows, npartitions=2, sort=False), plan)
    got = computed(out, scheduler="threads")
    assert_same_rows(got, rate_table(rows, plan))
    text = pd.Index(["-"]).dtype
    for name in ("reason", "error"):
        assert isinstance(got[name].dtype, pd.CategoricalDtype)
        assert got[name].cat.categories.dtype == text
    assert values(got, "reason") == [None, None, "INVALID_NUMBER", "NO_RATE"]


# dask's own Parquet reader calls reset_index(inplace=True), which pandas 3.1 deprecates.
@pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index:Warning")
@pytest.mark.parametrize("backend", ["numpy_nullable", "pyarrow"])
def test_parquet_read_with_either_dtype_backend(dd: Any, tmp_path: Path, backend: str) -> None:
    """Partitions as ``dd.read_parquet`` makes them (several files, Arrow-backed text;
    with ``dtype_backend="pyarrow"`` every column an ``ArrowDtype``): the rows and the
    declared dtypes are rate_table's, and the input columns pass through unchanged."""
    import pyarrow.parquet as pq  # type: ignore[import-untyped]  # noqa: PLC0415  # pyarrow ships no type information

    from cdrrating.dask import rate_dask  # noqa: PLC0415

    table = cdr_rows(n=240, seed=13)
    for k in range(3):
        pq.write_table(table.slice(80 * k, 80), tmp_path / f"part-{k}.parquet")
    ddf = dd.read_parquet(str(tmp_path), dtype_backend=backend)
    assert ddf.npartitions == 3
    rows = computed(ddf, scheduler="threads")
    if backend == "pyarrow":
        assert all(isinstance(t, pd.ArrowDtype) for t in rows.dtypes if t != "string")
    for strings in ("dictionary", "plain"):
        out = rate_dask(ddf, RATER, strings=strings)
        got = computed(out, scheduler="threads")
        assert_same_rows(got, rate_table(rows, RATER, strings=strings))
        assert kinds(out.dtypes) == kinds(got.dtypes)
        for name in rows.columns:
            assert got[name].dtype == rows[name].dtype, name


def test_naive_timestamps_need_assume_tz(dd: Any) -> None:
    from cdrrating.dask import rate_dask  # noqa: PLC0415

    rows = pd.DataFrame(
        {
            "call_id": ["a", "b", "c"],
            "started_at": pd.to_datetime(
                ["2026-03-27 07:59", "2026-03-29 02:30", "2026-03-30 12:00"]
            ),
            "destination_number": ["491701234567"] * 3,
            "billsec": [120, 60, 60],
        }
    )
    ddf = dd.from_pandas(rows, npartitions=2)
    with pytest.raises(ValidationError, match=r"started_at.*assume_tz"):
        rate_dask(ddf, SCHEDULED)
    got = computed(rate_dask(ddf, SCHEDULED, assume_tz="Europe/Berlin"), scheduler="threads")
    want = rate_table(ddf.compute(scheduler="threads"), SCHEDULED, assume_tz="Europe/Berlin")
    assert_same_rows(got, want)
    assert values(got, "status") == ["RATED", "ERROR", "RATED"]  # 02:30 does not exist
    assert values(got, "cost_micros")[0] == 1_000 + 4_000  # a minute off-peak, one at peak


def test_unusable_input_is_refused_at_the_call(dd: Any) -> None:
    from cdrrating.dask import rate_dask  # noqa: PLC0415

    ddf = dd.from_pandas(frame(n=8), npartitions=2)
    with pytest.raises(ValidationError, match="destination_number"):
        rate_dask(ddf.drop(columns=["destination_number"]), PLAN)
    with pytest.raises(ValidationError, match="billsec"):
        rate_dask(ddf.assign(billsec=ddf["billsec"].astype("float64")), PLAN)
    with pytest.raises(ValidationError, match="plan_or_rater"):
        rate_dask(ddf, "retail")  # type: ignore[arg-type]  # a wrong type on purpose
    with pytest.raises(ValidationError, match="ddf"):
        rate_dask(frame(n=2), PLAN)  # type: ignore[arg-type]  # pandas, not Dask, on purpose


# -- a distributed cluster: the plan scattered once, loaded once per worker --------------------


@pytest.mark.parametrize("plan", [RATER, [SCHEDULED, PLAN]], ids=lambda p: type(p).__name__)
def test_rows_equal_rate_table_on_a_cluster(dd: Any, client: Any, plan: Any) -> None:
    from cdrrating.dask import rate_dask  # noqa: PLC0415

    ddf = dd.from_pandas(frame(seed=11), npartitions=4)
    got = client.compute(rate_dask(ddf, plan, client=client)).result()
    assert_same_rows(got, rate_table(ddf.compute(scheduler="threads"), plan))


def test_plan_is_shipped_once_and_loaded_once_per_worker(dd: Any, client: Any) -> None:
    from cdrrating.dask import rate_dask, worker_plan_loads  # noqa: PLC0415

    plan = RatePlan([Rate("4420", 2_500), Rate("44", 1_200)], currency="GBP", name="loads")
    twin = RatePlan([Rate("44", 1_200), Rate("4420", 2_500)], currency="GBP", name="loads")
    before = worker_plan_loads(client)
    assert len(before) == 2
    ddf = dd.from_pandas(frame(n=400, seed=5), npartitions=8)
    want = rate_table(ddf.compute(scheduler="threads"), plan)
    for shipped in (plan, twin, plan):
        got = client.compute(rate_dask(ddf, shipped, client=client)).result()
        assert_same_rows(got, want)
    after = worker_plan_loads(client)
    loads = {worker: after[worker] - before[worker] for worker in after}
    # Twenty-four tasks over two worker processes: at most one load in each.
    assert set(loads.values()) <= {0, 1}
    assert sum(loads.values()) >= 1


def test_worker_config_reaches_the_workers(dd: Any, client: Any) -> None:
    """WORKER_CONFIG, set before the cluster starts: the worker processes start without
    the nanny's MALLOC_TRIM_THRESHOLD_, and without the sampling profiler."""

    def seen() -> tuple[str | None, bool]:
        import dask  # noqa: PLC0415  # (in the worker)

        return (
            os.environ.get("MALLOC_TRIM_THRESHOLD_"),
            bool(dask.config.get("distributed.worker.profile.enabled")),
        )

    answers = client.run(seen)
    assert len(answers) == 2
    assert set(answers.values()) == {(None, False)}


def test_default_client_is_used(dd: Any, client: Any) -> None:
    from cdrrating.dask import rate_dask, worker_plan_loads  # noqa: PLC0415

    plan = RatePlan([Rate("33", 4_321)], currency="EUR", name="default-client")
    ddf = dd.from_pandas(frame(n=60, seed=2), npartitions=2)
    before = sum(worker_plan_loads(client).values())
    with client.as_current():
        out = rate_dask(ddf, plan)
        assert sum(worker_plan_loads().values()) == before  # lazy: nothing loaded yet
        got = computed(out)
    assert_same_rows(got, rate_table(ddf.compute(scheduler="threads"), plan))
    assert sum(worker_plan_loads(client).values()) > before  # it ran on the cluster


def test_worker_plan_loads_needs_a_client() -> None:
    _require("distributed")
    from cdrrating.dask import worker_plan_loads  # noqa: PLC0415

    with pytest.raises(ValidationError, match="client"):
        worker_plan_loads()


def test_importing_without_dask_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['dask'] = None\n"
        "try:\n    import cdrrating.dask\n"
        "except ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'cdrrating[dask]'" in out.stdout


def test_a_start_one_minute_before_peak(dd: Any) -> None:
    """A worked example through Dask: 120 s from 07:59 Berlin is one minute at each price."""
    from cdrrating.dask import rate_dask  # noqa: PLC0415

    rows = pd.DataFrame(
        {
            "call_id": ["w"],
            "started_at": [pd.Timestamp(datetime(2026, 3, 27, 6, 59), tz="UTC")],
            "destination_number": ["+49 170 1234567"],
            "billsec": [120],
        }
    )
    got = computed(rate_dask(dd.from_pandas(rows, npartitions=1), SCHEDULED), scheduler="threads")
    assert values(got, "cost_micros") == [5_000]
    assert values(got, "prefix") == ["49"]


def test_docs_dask_examples_run(dd: Any) -> None:
    """docs/scaleout.md: the plan and the Dask examples run as printed."""
    from tests.test_docs import SKIP_MARK, blocks  # noqa: PLC0415

    page = Path(__file__).resolve().parent.parent / "docs" / "scaleout.md"
    namespace: dict[str, object] = {"__name__": "docs_scaleout_dask"}
    ran = 0
    for block in blocks(page):
        if block.code.lstrip().startswith(SKIP_MARK) or "spark" in block.code:
            continue
        exec(compile("\n" * block.line + block.code, str(page), "exec"), namespace)
        ran += 1
    assert ran >= 2


def test_a_worker_keeps_a_few_plans_and_loads_each_once(dd: Any) -> None:
    """The worker-side cache (what a task on a cluster calls): one load per plan while
    it is kept; the oldest makes room for a further one."""
    from cdrrating import dask as cdask  # noqa: PLC0415

    plans = [RatePlan([Rate("44", 1_000 + k)], currency="EUR") for k in range(cdask.KEPT_PLANS + 1)]
    shipped = [cdask._Shipped(p.content_hash, pickle.dumps(p)) for p in plans]
    before = cdask._loads_here()
    for _ in range(3):
        assert [s.plan() for s in shipped[:-1]] == plans[:-1]
    assert cdask._loads_here() - before == cdask.KEPT_PLANS
    assert shipped[-1].plan() == plans[-1]  # one more: the oldest goes
    assert shipped[0].plan() == plans[0]  # and is loaded again
    assert cdask._loads_here() - before == cdask.KEPT_PLANS + 2
    assert pickle.loads(pickle.dumps(shipped[1])) == shipped[1]  # travels as bytes
