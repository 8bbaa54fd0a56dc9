"""Reader throughput and memory on a generated file of any size.

    python benchmarks/bench_readers.py --rows 200000            # CDR CSV, ~12 MB
    python benchmarks/bench_readers.py --gigabytes 2 --split-only  # the 2 GB case
    python benchmarks/bench_readers.py --hostile                # work per hostile input

Generates the file in a temporary directory (deleted afterwards), reads it once, and
reports rows/s and the peak of Python allocations (tracemalloc, which slows the run: use
``--no-trace`` for the speed figure and the process's max RSS instead). Constant memory
means the peak stays flat as ``--rows`` grows. With ``--no-trace`` the same file is also
read the way a user would without the readers (csv.DictReader + CDR.from_mapping, the
named baseline) and with csv.DictReader alone, and a table prints the ratios.

``--hostile`` times inputs built to make a reader do unbounded work (wide headers, deep
JSON, long numbers, a megabyte line) at growing sizes; each time is printed with its
ratio to the smallest size of its kind, the baseline: linear work grows with the
size, a quadratic check would grow with its square.
"""

from __future__ import annotations

import argparse
import csv
import io
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

from cdrrating import CDR
from cdrrating.formats import read_cdrs
from cdrrating.formats._source import MAX_COLUMNS, LineSource, csv_records

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
    parser.add_argument("--hostile", action="store_true", help="time hostile inputs instead")
    args = parser.parse_args()
    if args.hostile:
        hostile()
        return
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


GOOD = '{"call_id": "g", "destination_number": "44", "started_at": "2026-09-23T10:00:00Z"'


def _wide_header(n: int) -> str:
    names = [f"c{i}" for i in range(n - 2)]
    return ",".join([*names, "destination_number", "started_at"]) + "\n"


def _deep_line(n: int) -> str:
    return GOOD + ', "x": ' + "[" * n + "]" * n + "}\n"


def _deep_array(n: int) -> str:
    return "[\n" + GOOD + "},\n" + "[" * n + "]" * n + "\n]\n"


def _long_number(n: int) -> str:
    return GOOD + ', "x": ' + "9" * n + "}\n"


def _long_line(n: int) -> str:
    return "call_id,destination_number,started_at\n" + "x" * n + "\n"


HOSTILE = [
    ("CSV header, N columns", "csv", _wide_header, [512, 1024, 2048, MAX_COLUMNS]),
    ("JSON Lines line nested N deep", "json", _deep_line, [10_000, 100_000, 1_000_000]),
    ("JSON array element nested N deep", "json", _deep_array, [10_000, 100_000, 1_000_000]),
    ("JSON number of N digits", "json", _long_number, [5_000, 50_000, 500_000]),
    ("CSV line of N characters", "csv", _long_line, [2_000_000, 8_000_000, 32_000_000]),
]


def hostile() -> None:
    print(f"{'input':34} {'N':>10} {'seconds':>9} {'vs smallest N':>14}  outcome")
    for label, fmt, make, sizes in HOSTILE:
        base: tuple[int, float] | None = None
        for n in sizes:
            text = make(n)
            start = time.perf_counter()
            reader = read_cdrs(io.StringIO(text), fmt)
            try:
                got = sum(1 for _ in reader)
                outcome = f"{got} read, {len(reader.rejects)} rejected"
            except ValueError as error:  # FormatError: the whole input refused
                outcome = f"refused: {str(error)[:40]}"
            seconds = time.perf_counter() - start
            base = base or (n, seconds)
            ratio = f"{seconds / base[1]:.1f}x (N {n / base[0]:.0f}x)"
            print(f"{label:34} {n:>10,} {seconds:>9.4f} {ratio:>14}  {outcome}")


if __name__ == "__main__":
    main()
