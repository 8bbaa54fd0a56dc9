"""Regenerate the bundled example files from the libphonenumber-derived data.

    python examples/make_examples.py ../shared/data/e164-prefixes

Deterministic (fixed seed): the committed rates.csv and cdrs.csv are its output. The
prices are made up; the prefixes and place names come from libphonenumber (Apache-2.0,
see SOURCES.md).
"""

from __future__ import annotations

import csv
import gzip
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Destinations with nested prefixes a real deck has: (parent, children) in the data.
NESTED = {"44": 30, "49": 25, "33": 15, "1": 40, "91": 20, "234": 10, "52": 10, "61": 10}
NOT_PRICED = {"870", "881", "882", "883", "979", "800", "808"}  # satellite/global: left unrated


def main(source: Path) -> None:
    rng = random.Random(20261122)
    countries = list(csv.DictReader((source / "e164_country_calling_codes.csv").open()))
    geo = {}
    with gzip.open(source / "geocode_prefixes.csv.gz", "rt") as fh:
        for row in csv.DictReader(fh):
            geo[row["prefix"]] = row["description"]
    carriers = list(csv.DictReader((source / "carrier_prefixes.csv").open()))

    rates: list[dict[str, str]] = []
    for c in countries:
        code = c["calling_code"]
        if code in NOT_PRICED:
            continue
        base = rng.choice([40, 60, 75, 90, 120, 150, 250, 400]) * rng.randint(100, 500)
        rates.append(
            {
                "prefix": code,
                "destination": c["main_region_name_en"] or "non-geographic",
                "rate": f"{base / 1_000_000:.6f}".rstrip("0"),
                "billing_increment": rng.choice(["60/60", "30/6", "1/1", "60/1"]),
                "connection_fee": rng.choice(["0", "0", "0", "0.01"]),
                "status": "active",
            }
        )
    by_parent: dict[str, list[str]] = {p: [] for p in NESTED}
    for prefix in sorted(geo):
        for parent in NESTED:
            if prefix.startswith(parent) and len(prefix) <= len(parent) + 3:
                by_parent[parent].append(prefix)
    country_name = {c["calling_code"]: c["main_region_name_en"] for c in countries}
    for parent, count in NESTED.items():
        names = [
            c
            for c in carriers
            if c["prefix"].startswith(parent) and len(c["prefix"]) <= len(parent) + 3
        ]
        picks = rng.sample(by_parent[parent], min(count // 2, len(by_parent[parent])))
        picks += [c["prefix"] for c in rng.sample(names, min(count - len(picks), len(names)))]
        for prefix in sorted(set(picks)):
            label = geo.get(prefix) or next(
                (c["carrier"] for c in carriers if c["prefix"] == prefix), ""
            )
            rates.append(
                {
                    "prefix": prefix,
                    "destination": f"{country_name[parent]} - {label}"
                    if label
                    else country_name[parent],
                    "rate": f"{rng.randint(5, 400) * 100 / 1_000_000:.6f}".rstrip("0"),
                    "billing_increment": rng.choice(["60/60", "30/6", "1/1"]),
                    "connection_fee": "0",
                    "status": "inactive" if rng.random() < 0.05 else "active",
                }
            )
    rates.sort(key=lambda r: r["prefix"])
    with (HERE / "rates.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rates[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rates)

    priced = [r["prefix"] for r in rates]
    start = datetime(2026, 10, 1, tzinfo=UTC)
    dispositions = (
        ["ANSWERED"] * 60
        + ["NO ANSWER"] * 20
        + ["BUSY"] * 8
        + ["FAILED"] * 5
        + ["CONGESTION"] * 3
        + ["CANCELLED"] * 4
    )
    cdrs = []
    for i in range(3000):
        kind = rng.random()
        direction = "outbound"
        if kind < 0.03:
            number = rng.choice(sorted(NOT_PRICED)) + "".join(rng.choices("0123456789", k=8))
        elif kind < 0.04:
            number = rng.choice(["anonymous", "*97", "s", "+44 (0) 20 ext. 5"])
        elif kind < 0.09:
            direction, number = rng.choice(["inbound", "internal"]), str(rng.randint(100, 999))
        else:
            prefix = rng.choice(priced)
            number = prefix + "".join(rng.choices("0123456789", k=max(0, 11 - len(prefix))))
            number = rng.choice(["", "+", "00"]) + number
        disposition = rng.choice(dispositions)
        started = start + timedelta(seconds=rng.randint(0, 31 * 86400 - 4000))
        ring = rng.randint(2, 30)
        billsec = 0
        if disposition == "ANSWERED":
            billsec = 0 if rng.random() < 0.03 else int(rng.expovariate(1 / 150)) + 1
        duration = ring + billsec
        cdrs.append(
            {
                "call_id": f"ex-{i:05d}",
                "started_at": started.isoformat(),
                "caller_number": f"+4930{rng.randint(1000000, 9999999)}",
                "destination_number": number,
                "direction": direction,
                "disposition": disposition,
                "duration": str(duration),
                "billsec": str(billsec),
                "tenant": rng.choice(["acme", "globex", "initech"]),
            }
        )
    with (HERE / "cdrs.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(cdrs[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(cdrs)
    print(f"{len(rates)} rates, {len(cdrs)} CDRs written to {HERE}")


if __name__ == "__main__":
    main(
        Path(sys.argv[1] if len(sys.argv) > 1 else HERE.parent.parent / "shared/data/e164-prefixes")
    )
