"""Readers that turn carrier rate decks and rate notices into :class:`~cdrrating.Rate` objects.

:class:`RateCsvReader` reads a deck with a header row (a CSV or an XLSX sheet saved as
CSV); :class:`RateNoticeReader` reads a vendor's rate notice: preamble lines before the
header, lists and ranges of dial codes in one cell, day-first dates and change codes.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from datetime import UTC, tzinfo
from typing import Any

import attrs

from cdrrating.errors import ValidationError
from cdrrating.formats._errors import FormatError
from cdrrating.formats._reader import ROW_ERRORS, Reader, Reject, Row, reject_from
from cdrrating.formats._source import MAX_COLUMNS, CsvRecord, LineSource, Source, csv_records
from cdrrating.money import parse_decimal, to_micros
from cdrrating.rates import Rate, RateStatus, Tier

__all__ = ["RateCsvReader", "RateNoticeReader", "expand_codes"]

# Deck headers, normalised (lower case, runs of other characters as "_"), mapped to the
# keys Rate.parse understands, or to this module's own keys (starting with "_").
_HEADER_ALIASES = {
    "prefix": "prefix",
    "code": "prefix",
    "codes": "prefix",
    "dial_code": "prefix",
    "dial_codes": "prefix",
    "dialcode": "prefix",
    "dialcodes": "prefix",
    "dial_prefix": "prefix",
    "destination_code": "prefix",
    "rate": "rate",
    "price": "rate",
    "cost_per_minute": "rate",
    "per_minute": "rate",
    "rate_min": "rate",
    "rate_per_min": "rate",
    "rate_per_minute": "rate",
    "price_min": "rate",
    "price_per_min": "rate",
    "price_per_minute": "rate",
    "price_1": "rate",
    "per_min_micros": "per_min_micros",
    "per_minute_micros": "per_min_micros",
    "rate_sec": "_per_second",
    "rate_per_sec": "_per_second",
    "rate_per_second": "_per_second",
    "price_sec": "_per_second",
    "price_per_second": "_per_second",
    "per_second": "_per_second",
    "price_n": "_price_n",
    "billing_increment": "billing_increment",
    "increment": "billing_increment",
    "billing": "billing_increment",
    "interval": "billing_increment",
    "billing_interval": "billing_increment",
    "initial_seconds": "initial_seconds",
    "initial": "initial_seconds",
    "interval_1": "initial_seconds",
    "first_interval": "initial_seconds",
    "min_duration": "initial_seconds",
    "increment_seconds": "increment_seconds",
    "interval_n": "increment_seconds",
    "next_interval": "increment_seconds",
    "connection_fee": "connection_fee",
    "setup_fee": "connection_fee",
    "connect_fee": "connection_fee",
    "connection_charge": "connection_fee",
    "effective_date": "valid_from",
    "effective": "valid_from",
    "effective_from": "valid_from",
    "valid_from": "valid_from",
    "start_date": "valid_from",
    "end_date": "valid_until",
    "valid_until": "valid_until",
    "valid_to": "valid_until",
    "expires": "valid_until",
    "status": "status",
    "change": "_change",
    "change_code": "_change",
    "changes": "_change",
    "discontinued": "_closed_flag",
    "forbidden": "_closed_flag",
    "destination": "destination",
    "description": "_description",
    "name": "destination",
    "country": "_country",
    "network": "_description",
    "rate_id": "id",
    "id": "id",
    "direction": "direction",
    "priority": "priority",
    "grace_seconds": "grace_seconds",
    "minimum_charge": "minimum_charge",
    "maximum_charge": "maximum_charge",
    "tenant": "tenant",
}

_PREFIX_KEYS = frozenset({"prefix"})
_PRICE_KEYS = frozenset({"rate", "per_min_micros", "_per_second"})
_NOW = frozenset({"asap", "immediate", "immediately", "now", "current"})
_CLOSED = frozenset(
    {"closed", "close", "closure", "removed", "deleted", "discontinued", "withdrawn"}
)
_DATED = frozenset({"increase", "increased", "new", "added", "add", "planned"})
_TRUE = frozenset({"1", "true", "yes", "y", "x"})
_EXCEL_NUMBER = re.compile(r"\d(\.\d+)?[eE]\+\d+")
_CODE_SEPARATORS = re.compile(r"[,;]")
MAX_RANGE = 10_000


def _norm(name: str) -> str:
    return "_".join("".join(c if c.isalnum() else " " for c in name.strip().lower()).split())


def expand_codes(cell: str, *, max_range: int = MAX_RANGE) -> list[str]:
    """The dial codes a notice cell stands for, as digit strings.

    ``"49152, 49162, 49172-49174"`` → five codes; ``"234803; 234806"`` → two;
    ``"336 07, 336 08"`` → ``33607``, ``33608`` (spaces inside a listed code are
    formatting); ``"+521"`` → ``521``; ``"447400-447409"`` → ten codes. Without ``,``/``;``
    a cell of space-separated parts of 4+ digits each is a list (``"49152 49162"``), else
    its spaces are formatting (``"44 20"`` → ``4420``). ``A-B`` is a range when ``A`` and
    ``B`` have the same length and ``A <= B``; ``1-876`` (a short country code, then the
    rest) is formatting. Anything else raises ValidationError.
    """
    text = cell.strip()
    if _EXCEL_NUMBER.fullmatch(text):
        raise ValidationError(
            "prefix",
            cell,
            "digits: this looks like a number a spreadsheet reformatted "
            "(format the code column as text before saving as CSV)",
        )
    if _CODE_SEPARATORS.search(text):
        parts = [p for p in _CODE_SEPARATORS.split(text) if p.strip()]
    else:
        words = text.split()
        listed = len(words) > 1 and all(
            len(w.lstrip("+")) >= 4 and w.lstrip("+").isdigit() for w in words
        )
        parts = words if listed else [text]
    codes: list[str] = []
    for part in parts:
        codes.extend(_expand_part(part, cell, max_range))
    return codes


def _expand_part(part: str, cell: str, max_range: int) -> list[str]:
    compact = "".join(part.split()).lstrip("+")
    if "-" in compact:
        pieces = compact.split("-")
        if len(pieces) == 2 and all(p.isdigit() for p in pieces):
            low, high = pieces
            if len(low) == len(high) and low <= high:
                count = int(high) - int(low) + 1
                if count > max_range:
                    raise ValidationError(
                        "prefix", cell, f"a range of at most {max_range:,} codes (got {count:,})"
                    )
                return [str(n).zfill(len(low)) for n in range(int(low), int(high) + 1)]
            if len(low) <= 3 and len(high) > len(low):
                return [low + high]  # "1-876": the country code written apart
        raise ValidationError(
            "prefix",
            cell,
            "codes such as '49172', ranges such as '49172-49174' (same length, "
            "ascending) or lists separated by ',' or ';'",
        )
    compact = compact.replace(".", "").replace("(", "").replace(")", "")
    if not (compact.isdigit() and compact.isascii()):
        raise ValidationError("prefix", cell, "dial codes made of digits")
    return [compact]


class RateCsvReader(Reader[Rate]):
    """A rate deck with a header row: one rate per code (lists and ranges in the code
    cell are expanded, see :func:`expand_codes`).

    Columns are recognised by name, case and punctuation ignored: code (``prefix``,
    ``code``, ``dial codes``), price (``rate``, ``price``, ``rate/min``, ``price 1``;
    per second: ``rate/sec``, ``price per second``, or ``price_unit="second"``),
    increment (``billing`` as ``60/60``, or ``interval 1`` + ``interval n``), ``connection
    fee``, ``effective date``, ``end date``, ``status``, ``change`` (see
    :class:`RateNoticeReader`), ``discontinued``/``forbidden`` flags (1 → inactive).
    ``mapping`` names others: ``{"Tarif": "rate", "Indicatif": "prefix"}``. A ``price n``
    that differs from the first price becomes a :class:`~cdrrating.Tier` after the first
    interval. ``ASAP``/``immediate`` dates mean "no start date".

    ``delimiter=None`` picks ``,``, ``;``, tab or ``|`` from the header line;
    ``decimal_separator=","`` reads ``0,0125``.
    """

    format = "rates-csv"
    _find_header = False

    def __init__(
        self,
        source: Source,
        *,
        mapping: Mapping[str, str] | None = None,
        delimiter: str | None = None,
        decimal_separator: str = ".",
        price_unit: str = "minute",
        dayfirst: bool = False,
        default_tz: tzinfo = UTC,
        immediate_changes: Collection[str] = ("unchanged", "decrease", "decreased"),
        **options: Any,
    ) -> None:
        super().__init__(source, **options)
        if price_unit not in ("minute", "second"):
            raise ValidationError("price_unit", price_unit, "'minute' or 'second'")
        self.mapping = {_norm(k): v for k, v in (mapping or {}).items()}
        self.delimiter = delimiter
        self.decimal_separator = decimal_separator
        self.price_unit = price_unit
        self.dayfirst = dayfirst
        self.default_tz = default_tz
        self.immediate_changes = frozenset(c.lower() for c in immediate_changes)
        self.preamble: list[str] = []
        self.notes: list[str] = []
        self.metadata: dict[str, str] = {}

    @property
    def currency(self) -> str | None:
        """An ISO 4217 code named in the preamble (``Currency:,USD per minute``), if any."""
        for key, value in self.metadata.items():
            if "currency" in key:
                m = re.search(r"\b[A-Z]{3}\b", value)
                if m:
                    return m.group(0)
        return None

    def _header_keys(self, fields: list[str]) -> list[str]:
        keys = []
        for field in fields:
            norm = _norm(field)
            mapped = self.mapping.get(norm)
            keys.append(mapped if mapped is not None else _HEADER_ALIASES.get(norm, norm))
        return keys

    def _rows(self, src: LineSource) -> Iterator[Row[Rate]]:
        delimiter = self.delimiter or _sniff_delimiter(src)
        header: list[str] | None = None
        for record in csv_records(src, delimiter=delimiter):
            if not isinstance(record, CsvRecord):
                if header is None:
                    raise FormatError(record[0], f"cannot read the header: {record[1]}")
                yield Reject(*record)
                continue
            cells = [c.strip() for c in record.fields]
            if not any(cells):
                yield None
                continue
            if header is None:
                if len(cells) > MAX_COLUMNS:
                    raise FormatError(
                        record.line,
                        f"a line of {len(cells):,} columns before the header, at most "
                        f"{MAX_COLUMNS:,}: not a rate deck?",
                        field="header",
                    )
                keys = self._header_keys(cells)
                if _PREFIX_KEYS & set(keys) and _PRICE_KEYS & set(keys):
                    header = keys
                    yield None
                    continue
                if self._find_header and src.line <= 50:
                    self._preamble(cells)
                    yield None
                    continue
                raise FormatError(
                    record.line,
                    "no rate deck header: expected a code column (prefix, code, dial codes) "
                    "and a price column (rate, price, rate/min, price per second) "
                    f"; found {', '.join(record.fields)}",
                    field="header",
                )
            filled = [c for c in cells if c]
            row = dict(zip(header, cells, strict=False))
            if len(filled) == 1 and not row.get("prefix"):
                self.notes.append(filled[0])  # a footnote under the table
                yield None
                continue
            if len(cells) < len(header) or any(cells[len(header) :]):
                yield Reject(
                    record.line,
                    f"{len(cells)} fields, the header has {len(header)}"
                    + (" (truncated line?)" if len(cells) < len(header) else ""),
                    record.raw,
                )
                continue
            self._row_line = record.line
            try:
                yield self._rates(row)
            except ROW_ERRORS as error:
                yield reject_from(record.line, record.raw, error)
        if header is None:
            raise FormatError(
                src.line,
                "no rate deck header found: expected a code column (prefix, code, dial codes) "
                "and a price column (rate, price, rate/min)",
                field="header",
            )

    def _preamble(self, cells: list[str]) -> None:
        filled = [c for c in cells if c]
        self.preamble.append(",".join(filled))
        if len(filled) == 2 and filled[0].endswith(":"):
            self.metadata[_norm(filled[0])] = filled[1]

    def _rates(self, row: dict[str, str]) -> list[Rate]:
        data: dict[str, Any] = {k: v for k, v in row.items() if v and not k.startswith("_")}
        codes = expand_codes(row.get("prefix", ""))
        if not codes:
            raise ValidationError("prefix", row.get("prefix"), "at least one dial code")
        sep = self.decimal_separator
        per_second = row.get("_per_second")
        if per_second or (self.price_unit == "second" and "rate" in data):
            text = per_second or data.pop("rate")
            data["rate"] = parse_decimal(text, decimal_separator=sep, field="rate") * 60
        for key in ("valid_from", "valid_until"):
            if key in data and data[key].strip().lower() in _NOW:
                del data[key]
        name = " - ".join(p for p in (row.get("_country"), row.get("_description")) if p)
        if name and "destination" not in data:
            data["destination"] = name
        closed = row.get("_closed_flag", "").lower() in _TRUE
        change = row.get("_change", "").strip().lower()
        if change in _CLOSED:
            closed = True
        elif change in self.immediate_changes:
            data.pop("valid_from", None)
        elif change and change not in _DATED:
            raise ValidationError(
                "change",
                row.get("_change"),
                "a change code: Increase, Decrease, Unchanged, "
                "New or Closed (or pass immediate_changes=)",
            )
        if closed:
            data["status"] = RateStatus.INACTIVE.value
        data["prefix"] = codes[0]
        rate = Rate.parse(
            data, decimal_separator=sep, default_tz=self.default_tz, dayfirst=self.dayfirst
        )
        price_n = row.get("_price_n")
        if price_n:
            later = to_micros(
                parse_decimal(price_n, decimal_separator=sep, field="price_n"), field="price_n"
            )
            if later != rate.per_minute_micros:
                after = rate.initial_seconds or rate.increment_seconds
                rate = attrs.evolve(rate, tiers=(Tier(after, later, rate.increment_seconds),))
        source_prefix = (
            row.get("prefix") if row.get("prefix") != codes[0] or len(codes) > 1 else None
        )
        return [attrs.evolve(rate, prefix=code, source_prefix=source_prefix) for code in codes]


class RateNoticeReader(RateCsvReader):
    """A vendor rate notice: a rate deck with extras.

    * Lines before the table header (company, title, ``Issue date:,16/09/2026``,
      ``Currency:,USD per minute``) are skipped and kept in ``preamble``; ``key:,value``
      pairs in ``metadata``; ``currency`` reads the ISO code from them.
    * One-cell lines after the table (footnotes) are kept in ``notes``.
    * A code cell holds a list and ranges: ``"49152, 49162, 49172-49174"`` is five rates.
    * Dates are day first (``10/09/2026`` is 10 September) unless ``dayfirst=False``.
    * The change code sets the rate's validity: ``Increase``/``New`` take effect on the
      date given; ``Unchanged``/``Decrease`` are in force now (no start date: decreases
      apply at once, as is usual; see ``immediate_changes``); ``Closed`` gives an
      **inactive** rate from that date — the code is withdrawn from then on, and calls
      before it are priced by the previous version of the deck.
    """

    format = "rate-notice"
    _find_header = True

    def __init__(self, source: Source, *, dayfirst: bool = True, **options: Any) -> None:
        super().__init__(source, dayfirst=dayfirst, **options)


def _sniff_delimiter(src: LineSource) -> str:
    """The separator of the first line with two or more of one (preamble lines may be
    single cells)."""

    def counts(text: str) -> dict[str, int]:
        return {d: text.count(d) for d in (",", ";", "\t", "|")}

    seen = src.peek(lambda text: max(counts(text).values()) >= 2, limit=50)
    if not seen:
        return ","
    last = counts(seen[-1])
    best = max(last, key=lambda d: last[d])
    return best if last[best] >= 2 else ","
