"""Reader throughput and memory on a generated file of any size.

    python benchmarks/bench_readers.py --rows 200000            # CDR CSV, ~12 MB
    python benchmarks/bench_readers.py --gigabytes 2 --split-only  # the 2 GB case

Generates the file in a temporary directory (deleted afterwards), reads it once, and
reports rows/s and the peak of Python allocations (tracemalloc, which slows the run: use
``--no-trace`` for the speed figure and the process's max RSS instead). Constant memory
means the peak stays flat as ``--rows`` grows. With ``--no-trace`` the same file is also
read the way a user would without the readers (csv.DictReader + CDR.from_mapping, the
named baseline) and with csv.DictReader alone, and a table prints the ratios.
"""

from __future__ import annotations

import argparse
import csv
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

from cdrrating import CDR
from cdrrating.formats import read_cdrs
from cdrrating.formats._source import LineSource, csv_records

HEADER = "call_id,destination_number,started_at,billsec,caller_number\n"
ROW_BYTES = 60


def generate(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write(HEADER)
        for i in range(rows):
            f.write(
                f"c{i},4420794{i % 100000:05d},2026-09-23T10:00:00+00:00,{i % 600},+4930{i % 997}\n"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--gigabytes", type=float, help="size instead of --rows")
    parser.add_argument("--split-only", action="store_true", help="decode and split CSV only")
    parser.add_argument("--no-trace", action="store_true", help="no tracemalloc (true speed)")
    args = parser.parse_args()
    rows = int(args.gigabytes * 1e9 / ROW_BYTES) if args.gigabytes else args.rows
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cdrs.csv"
        generate(path, rows)
        size = path.stat().st_size
        if not args.no_trace:
            tracemalloc.start()
        start = time.perf_counter()
        if args.split_only:
            src = LineSource(path)
            count = sum(1 for _ in csv_records(src)) - 1
            src.close()
        else:
            reader = read_cdrs(path, "csv")
            count = sum(1 for _ in reader)
            assert reader.ok, reader.summary
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] if not args.no_trace else None
        tracemalloc.stop()
        baselines = [] if args.split_only or not args.no_trace else _baselines(path)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        f"{count:,} rows, {size / 1e6:,.1f} MB in {elapsed:.2f} s: {count / elapsed:,.0f} rows/s, "
        f"{size / 1e6 / elapsed:,.1f} MB/s"
    )
    if baselines:
        naive = baselines[0][1]
        print(f"\n{'reader':58} {'rows/s':>10}  vs baseline")
        for name, seconds in [("cdrrating read_cdrs(path, 'csv')", elapsed), *baselines]:
            print(f"{name:58} {count / seconds:>10,.0f}  {naive / seconds:.2f}x")
    if peak is not None:
        print(f"peak Python allocations while reading: {peak / 1024:,.0f} KiB")
    print(f"process max RSS: {rss / 1024:,.1f} MiB")


def _baselines(path: Path) -> list[tuple[str, float]]:
    """What a user would write without the readers, timed on the same file: the csv
    module and CDR.from_mapping (the baseline: no line numbers, no reject report, the
    first bad row stops it), and the csv module alone (parsing only, for scale)."""
    out = []
    start = time.perf_counter()
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            CDR.from_mapping(row)
    out.append(("baseline: csv.DictReader + CDR.from_mapping", time.perf_counter() - start))
    start = time.perf_counter()
    with path.open(encoding="utf-8", newline="") as f:
        for _ in csv.DictReader(f):
            pass
    out.append(("csv.DictReader alone (no CDRs)", time.perf_counter() - start))
    return out


if __name__ == "__main__":
    main()
