"""Opening inputs and cutting them into lines, CSV records and JSON values (private).

Everything here streams: memory is bounded by the longest line (``MAX_LINE_CHARS``) or
the largest JSON record (``MAX_RECORD_CHARS``), never by the file size.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import IO, Any

from cdrrating.errors import ValidationError
from cdrrating.formats._errors import FormatError

Source = str | os.PathLike[str] | IO[bytes] | IO[str]

# A CDR or rate line is a few hundred bytes; a "line" of megabytes means a binary file
# or a file without line breaks, and reading it whole would break the memory promise.
MAX_LINE_CHARS = 1 << 20
MAX_RECORD_CHARS = 16 << 20
# No CDR or rate format comes near these; past them an input is hostile or not what it
# claims to be, and the work it asks for (a 100,000-deep JSON value, a 5,000-digit
# number) is refused per row instead of attempted.
MAX_JSON_DEPTH = 64
MAX_COLUMNS = 4096
MAX_NUMBER_DIGITS = 40
# A rejected row keeps its text for the reject file, cut to this when it is huge.
MAX_RAW_CHARS = 4096

_WIDE_CODECS = {"utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"}
_LONE_CR = re.compile(r"(?<=\r)(?!\n)")


def source_name(source: Source) -> str:
    if isinstance(source, str | os.PathLike):
        return os.fspath(source)
    return str(getattr(source, "name", "<stream>"))


def short_raw(text: str) -> str:
    """``text`` as a reject keeps it: whole, or its start and its length when huge."""
    if len(text) <= MAX_RAW_CHARS:
        return text
    return f"{text[:MAX_RAW_CHARS]}... ({len(text):,} characters in all)"


def check_encoding(encoding: str) -> str:
    """The codec's canonical name, or a ValidationError naming the option."""
    if not isinstance(encoding, str):
        raise ValidationError("encoding", encoding, "a codec name such as 'utf-8' or 'cp1252'")
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise ValidationError(
            "encoding", encoding, "a codec name such as 'utf-8', 'cp1252' or 'latin-1'"
        ) from None


class LineSource:
    """Decoded lines of one input, each with its line ending, and the current line number.

    Handles a UTF-8 or UTF-16/32 byte-order mark, ``\\n``, ``\\r\\n`` and lone ``\\r``
    endings mixed in one file, and reports an undecodable byte with its line number.
    """

    def __init__(self, source: Source, *, encoding: str = "utf-8") -> None:
        self.name = source_name(source)
        self.encoding = encoding
        self.line = 0  # number of the last line handed out
        # Line numbers of lines longer than MAX_LINE_CHARS that were cut out (CSV only).
        self.overlong: list[int] = []
        self._owned: IO[Any] | None = None
        self._text: IO[str] | None = None
        self._binary: IO[bytes] | None = None
        codec = check_encoding(encoding)
        if isinstance(source, str | os.PathLike):
            try:
                self._owned = self._binary = open(source, "rb")  # noqa: SIM115 - see close()
            except OSError as error:
                raise FormatError(
                    0,
                    f"cannot open {self.name}: {error.strerror or error}",
                    value=self.name,
                ) from None
        elif isinstance(source, io.TextIOBase):
            self._text = source  # already decoded by the caller (e.g. sys.stdin, StringIO)
        else:
            self._binary = source  # type: ignore[assignment]
        if self._text is None:
            self._codec = codec
        else:
            # The caller decoded it: name the stream's own encoding in errors, if it has one.
            self._codec = str(getattr(self._text, "encoding", None) or "text")
        self._pending: list[str] = []
        self._started = False
        self._replay: tuple[list[str], Iterator[str]] | None = None
        self._cut_raw: dict[int, str] = {}  # index in the replayed lines -> raw text

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()
            self._owned = None

    # -- decoding ----------------------------------------------------------------------------

    def _start(self) -> None:
        self._started = True
        if self._binary is None:
            return
        head = _peek(self._binary, 4)
        wide = self._codec in _WIDE_CODECS
        if head.startswith(codecs.BOM_UTF8):
            self._binary.read(3)
            if self._codec not in ("utf-8", "utf-8-sig") and not wide:
                # A UTF-8 BOM is stronger evidence than the default: trust it.
                self._codec = "utf-8"
        elif head[:4] in (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE):
            self._codec, wide = "utf-32", True
        elif head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
            self._codec, wide = "utf-16", True
        elif not wide and b"\x00" in _peek(self._binary, 4096):
            raise FormatError(
                1,
                "the file contains NUL bytes: it looks like UTF-16 without a byte-order mark "
                "(pass encoding='utf-16-le') or is not a text file",
            )
        if wide:
            # Line breaks are not single bytes in these encodings: let the text layer split.
            self._text = io.TextIOWrapper(self._binary, encoding=self._codec, newline="")

    def lines(self, *, chunked: bool = False) -> Iterator[str]:
        """Lines with their endings; a final line may lack one (see ``unterminated``).

        ``chunked=True`` (JSON) cuts over-long lines into pieces instead of refusing them.
        """
        if self._replay is not None:
            seen, rest = self._replay
            self._replay = None
            for index, text in enumerate(seen):
                if index in self._cut_raw:
                    self.line += 1
                    self.overlong.append(self.line)
                    self._pending.append(self._cut_raw[index])
                    yield text
                else:
                    yield self._count(text)
            yield from rest
            return
        if not self._started:
            self._start()
        if self._text is not None:
            yield from self._text_lines(self._text, chunked)
            return
        assert self._binary is not None
        decoder = (
            codecs.getincrementaldecoder(self._codec)("strict")
            if self._codec != "utf-8" or chunked  # a chunk may end inside a character
            else None
        )
        readline = self._binary.readline
        while True:
            raw = self._read(readline)
            if not raw:
                return
            if len(raw) > MAX_LINE_CHARS and not raw.endswith(b"\n") and not chunked:
                yield self._cut(raw.decode(self._codec, "replace"), readline, b"\n")
                continue
            try:
                text = raw.decode() if decoder is None else decoder.decode(raw)
            except UnicodeDecodeError as error:
                bad = raw[error.start : error.start + 1]
                raise FormatError(
                    self.line + 1,
                    f"byte 0x{bad.hex()} at column {error.start + 1} is not valid {self._codec}; "
                    f"pass encoding= with the file's encoding (e.g. encoding='cp1252' for "
                    f"Windows/Excel exports, 'latin-1')",
                    field="encoding",
                ) from None
            if "\r" in text[:-2]:
                # Old Mac endings, or a file with endings mixed by an editor.
                for part in _LONE_CR.split(text):
                    if part:
                        yield self._count(part)
            else:
                yield self._count(text)

    def peek(self, done: Callable[[str], bool], *, limit: int = 1000) -> list[str]:
        """Lines up to the first for which ``done`` is true (at most ``limit``), without
        consuming them: iteration later starts from the first line again."""
        rest = self.lines()
        seen: list[str] = []
        first, cut_before = self.line + 1, len(self.overlong)
        for text in rest:
            seen.append(text)
            if done(text) or len(seen) >= limit:
                break
        self.line -= len(seen)
        # A line cut out while peeking is cut again when replayed: its raw text is kept.
        raws = self._pending[-len(seen) :] if seen else []
        self._cut_raw = {n - first: raws[n - first] for n in self.overlong[cut_before:]}
        del self.overlong[cut_before:]
        self._pending.clear()
        self._replay = (seen, rest)
        return seen

    def first_char(self) -> str:
        """The first non-blank character of the input ('' if none), not consumed."""
        seen = self.peek(lambda text: bool(text.strip()))
        return seen[-1].strip()[:1] if seen else ""

    def _read(self, readline: Callable[[int], Any]) -> Any:
        try:
            return readline(MAX_LINE_CHARS + 1)
        except UnicodeDecodeError as error:
            raise FormatError(
                self.line + 1,
                # Decoded ahead in blocks: the bad byte may be some lines further on.
                f"not valid {self._codec} ({error.reason}) at or after this line; pass "
                "encoding= with the file's encoding",
                field="encoding",
                value=self._codec,
            ) from None
        except OSError as error:
            raise FormatError(
                self.line + 1,
                f"reading {self.name} failed: {error.strerror or error}",
                value=self.name,
            ) from None

    def _cut(self, head: str, readline: Callable[[int], Any], newline: Any) -> str:
        """Skip the rest of an over-long line (memory stays bounded) and stand in for it
        with an empty line; the CSV layer rejects the record that holds it."""
        size = len(head)
        while True:
            more = self._read(readline)
            size += len(more)
            if not more or more.endswith(newline):
                break
        self.line += 1
        self.overlong.append(self.line)
        self._pending.append(f"{head[:MAX_RAW_CHARS]}... ({size:,} characters in all)\n")
        return "\n"

    def _text_lines(self, stream: IO[str], chunked: bool) -> Iterator[str]:
        while True:
            text = self._read(stream.readline)
            if not text:
                return
            if len(text) > MAX_LINE_CHARS and not chunked and not text.endswith("\n"):
                yield self._cut(text, stream.readline, "\n")
                continue
            yield self._count(text)

    def _count(self, text: str) -> str:
        self.line += 1
        if text.startswith("\ufeff"):
            # A BOM in mid-file: two exports concatenated with `cat`.
            text = text[1:]
        self._pending.append(text)
        return text

    def take_raw(self) -> str:
        """The physical lines consumed since the last call, endings stripped."""
        raw = "".join(self._pending).rstrip("\r\n")
        self._pending.clear()
        return raw

    @property
    def unterminated(self) -> bool:
        """True when the most recent line had no line ending (the file was cut short)."""
        return bool(self._pending) and not self._pending[-1].endswith(("\n", "\r"))


def _peek(stream: IO[bytes], size: int) -> bytes:
    peek = getattr(stream, "peek", None)
    if peek is not None:
        data: bytes = peek(size)[:size]
        return data
    if stream.seekable():
        pos = stream.tell()
        data = stream.read(size)
        stream.seek(pos)
        return data
    return b""


class CsvRecord:
    __slots__ = ("fields", "line", "raw", "unterminated")

    def __init__(self, fields: list[str], line: int, raw: str, unterminated: bool) -> None:
        self.fields = fields
        self.line = line  # the line the record starts on (1-based)
        self.raw = raw
        self.unterminated = unterminated


def csv_records(
    src: LineSource, *, delimiter: str = ","
) -> Iterator[CsvRecord | tuple[int, str, str]]:
    """CSV records with their first line number; a record csv cannot parse is given as
    ``(line, reason, raw)`` and reading continues with the next record.

    Bounded: a physical line over ``MAX_LINE_CHARS`` is cut out (see ``LineSource``), a
    field over ``csv.field_size_limit()`` is refused by ``csv``, and a record whose quoted
    fields run over ``MAX_LINE_CHARS`` in all is ended there and rejected.
    """
    feed = _CsvFeed(src)
    reader = csv.reader(feed, delimiter=delimiter, strict=True)
    while True:
        first = src.line + 1
        cut = len(src.overlong)
        feed.size = 0
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raw = short_raw(src.take_raw())
            reason = str(error)
            if feed.size > MAX_LINE_CHARS:
                reason = f"a record longer than {MAX_LINE_CHARS:,} characters (an unclosed quote?)"
            elif "unexpected end of data" in reason:
                reason = "the file ends inside a quoted field (truncated last record?)"
            yield (first, reason, raw)
            continue
        if len(src.overlong) > cut:
            yield (
                first,
                f"line {src.overlong[-1]} is longer than {MAX_LINE_CHARS:,} characters: "
                "not a CDR or rate row",
                short_raw(src.take_raw()),
            )
            continue
        unterminated = src.unterminated
        yield CsvRecord(fields, first, src.take_raw(), unterminated)


class _CsvFeed:
    """The lines csv reads, counting the characters of the current record."""

    # After a quote is closed, strict csv refuses any character but a delimiter: this
    # line ends an over-long record with a csv.Error, and the next record starts clean.
    _BREAK = '"\x00\n'

    def __init__(self, src: LineSource) -> None:
        self.lines = src.lines()
        self.size = 0

    def __iter__(self) -> _CsvFeed:
        return self

    def __next__(self) -> str:
        if self.size > MAX_LINE_CHARS:
            return self._BREAK
        text = next(self.lines)
        self.size += len(text)
        return text


# -- JSON ------------------------------------------------------------------------------------

_DECODER = json.JSONDecoder(parse_float=Decimal)
_WS = re.compile(r"[ \t\r\n]*")
RECORD_KEYS = ("rows", "objects", "data", "records", "cdrs", "results", "items", "calls")
# What matters when skipping a value: a string, or a run of brackets (a run at a time,
# so that a value nested a million deep is a few steps, not a million).
_SKIP_NEXT = re.compile(r'"|[\[{]+|[\]}]+')
_STRING_REST = re.compile(r'(?:[^"\\]|\\.)*"', re.DOTALL)
_NUMBER = re.compile(r"-?[0-9.eE+-]*")
_BIG = 10**MAX_NUMBER_DIGITS

Envelope = bool | str | None
"""``None``: a whole input that is one object holding a list under a ``RECORD_KEYS`` key
(and not itself a record) is an API response; ``False``: objects are always records;
a key name: an object holding a list under that key is an API response."""


class JsonLimit(Exception):
    """A JSON value past one of the bounds: the row is rejected with ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class JsonValue:
    __slots__ = ("line", "raw", "value")

    def __init__(self, value: Any, line: int, raw: str) -> None:
        self.value = value
        self.line = line
        self.raw = raw


JsonItem = JsonValue | tuple[int, str, str]


def check_json(value: Any) -> Any:
    """``value`` if it is within the bounds (nesting depth, digits of a number), else
    JsonLimit. Iterative: a deep value cannot exhaust the stack here. Only containers
    are stacked, so a flat record costs one pass over its values."""
    if not isinstance(value, dict | list):
        _check_scalar(value)
        return value
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise JsonLimit(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        for child in item.values() if type(item) is dict else item:
            kind = type(child)
            if kind is str or child is None or kind is bool:
                continue
            if kind is dict or kind is list:
                stack.append((child, depth + 1))
            else:
                _check_scalar(child)
    return value


def _check_scalar(value: Any) -> None:
    if type(value) is int:
        if not -_BIG < value < _BIG:
            raise JsonLimit(f"a JSON number of more than {MAX_NUMBER_DIGITS} digits")
    elif isinstance(value, Decimal) and len(value.as_tuple().digits) > MAX_NUMBER_DIGITS:
        raise JsonLimit(f"a JSON number of more than {MAX_NUMBER_DIGITS} digits")


def _limit_reason(error: Exception) -> str:
    if isinstance(error, RecursionError):
        return f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
    # int() refuses more than sys.get_int_max_str_digits() digits with a ValueError.
    return f"a JSON number of more than {MAX_NUMBER_DIGITS} digits"


def loads_bounded(text: str) -> Any:
    """json.loads (numbers with a fraction or exponent as Decimal) within the bounds;
    JSONDecodeError for text that is not JSON, JsonLimit past a bound."""
    try:
        value = _DECODER.decode(text)  # one decoder: json.loads(parse_float=) makes one a call
    except json.JSONDecodeError:
        raise
    except (RecursionError, ValueError) as error:
        raise JsonLimit(_limit_reason(error)) from None
    return check_json(value)


def _dumps(value: Any) -> str:
    return short_raw(json.dumps(value, default=str))


class _Buffer:
    """Decoded text with the line number of its first character; refilled line by line."""

    def __init__(self, src: LineSource) -> None:
        self.src = src
        self.lines = src.lines(chunked=True)
        self.text = ""
        self.pos = 0
        self.line = 1  # line number at self.pos
        self.eof = False

    def more(self, at_least: int = 65536) -> bool:
        if self.eof:
            return False
        if self.pos > 65536:
            self.text = self.text[self.pos :]
            self.pos = 0
        got = 0
        for line in self.lines:
            self.text += line
            got += len(line)
            if got >= at_least:
                break
        else:
            self.eof = True
        self.src.take_raw()  # raw text is cut from the buffer instead
        if len(self.text) - self.pos > MAX_RECORD_CHARS:
            raise FormatError(
                self.line, f"a JSON record larger than {MAX_RECORD_CHARS:,} characters"
            )
        return got > 0

    def grow(self) -> bool:
        """More text, doubling what is held: re-parsing a long value after each refill
        stays linear in its length."""
        return self.more(max(65536, len(self.text) - self.pos))

    def advance(self, to: int) -> None:
        self.line += self.text.count("\n", self.pos, to)
        self.pos = to

    def skip_ws(self) -> str:
        """The next non-blank character ('' at the end of input), not consumed."""
        while True:
            m = _WS.match(self.text, self.pos)
            assert m is not None
            self.advance(m.end())
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.more():
                return ""

    def expect(self, chars: str) -> str:
        c = self.skip_ws()
        if c == "" or c not in chars:
            found = repr(c) if c else "the end of the file"
            raise FormatError(self.line, f"invalid JSON: expected one of {chars!r}, found {found}")
        self.advance(self.pos + 1)
        return c

    def value(self) -> JsonItem:
        """The next value, or ``(line, reason, raw)`` for one past a bound (skipped)."""
        self.skip_ws()
        start_line = self.line
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as error:
                if self.grow():
                    continue
                line = start_line + self.text.count("\n", self.pos, error.pos)
                raise FormatError(
                    line,
                    f"invalid JSON ({error.msg}); "
                    + (
                        "the file ends inside a value (truncated?)"
                        if error.msg.startswith("Unterminated")
                        or error.pos >= len(self.text.rstrip())
                        else "the rest of the file cannot be read"
                    ),
                ) from None
            except (RecursionError, ValueError) as error:
                return self._skip(start_line, _limit_reason(error))
            # A number that ends exactly at the buffer's end may continue in the next line.
            if end == len(self.text) and not self.eof and self.grow():
                continue
            raw = self.text[self.pos : end]
            try:
                check_json(value)
            except JsonLimit as error:
                self.advance(end)
                return (start_line, error.reason, short_raw(raw))
            self.advance(end)
            return JsonValue(value, start_line, raw)

    def _skip(self, line: int, reason: str) -> tuple[int, str, str]:
        """Step over the value at ``pos`` without decoding it (linear, no recursion)."""
        if self.text[self.pos] not in "[{":
            while True:  # a number: the only scalar that can be past a bound
                number = _NUMBER.match(self.text, self.pos)
                assert number is not None
                if number.end() < len(self.text) or not self.grow():
                    break
            rel = number.end() - self.pos
        else:
            depth = 0
            rel = 0  # offsets from pos: a refill may move the text
            while True:
                m = _SKIP_NEXT.search(self.text, self.pos + rel)
                if m is not None and m.group() == '"':
                    rest = _STRING_REST.match(self.text, m.end())
                    if rest is not None:
                        rel = rest.end() - self.pos
                        continue
                    rel, m = m.start() - self.pos, None  # the string goes on past the buffer
                elif m is None:
                    rel = len(self.text) - self.pos
                if m is None:
                    if not self.grow():
                        raise FormatError(
                            line, "invalid JSON: the file ends inside a value (truncated?)"
                        )
                    continue
                run = m.group()
                if run[0] in "[{":
                    depth += len(run)
                elif len(run) >= depth:
                    rel = m.start() + depth - self.pos
                    break
                else:
                    depth -= len(run)
                rel = m.end() - self.pos
        end = self.pos + rel
        raw = short_raw(self.text[self.pos : end])
        self.advance(end)
        return (line, reason, raw)


def json_values(
    src: LineSource,
    *,
    envelope: Envelope = None,
    is_record: Callable[[dict[str, Any]], bool] | None = None,
) -> Iterator[JsonItem]:
    """Records of a JSON input, streamed.

    Accepted layouts: JSON Lines (one value a line; a bad line is reported as
    ``(line, reason, raw)`` and reading goes on), one object, an array of values, or an
    API response (see ``Envelope``): one object holding the records in a list under one
    of ``RECORD_KEYS`` (``rows``, ``objects``, ``data``, ...). Arrays are read element by
    element. A JSON Lines line is never an envelope: every line is one record. Input
    that is not JSON at all raises FormatError with the line where reading stopped.
    """
    keys = (envelope,) if isinstance(envelope, str) else RECORD_KEYS
    buf = _Buffer(src)
    jsonl = False
    first = True
    while True:
        c = buf.skip_ws()
        if c == "":
            return
        was_first, first = first, False
        if jsonl or c == "{":
            # Fast path for JSON Lines: a whole line that is one complete value.
            end = buf.text.find("\n", buf.pos)
            while end < 0 and len(buf.text) - buf.pos <= MAX_LINE_CHARS and buf.more():
                end = buf.text.find("\n", buf.pos)
            line_text = buf.text[buf.pos : end if end >= 0 else len(buf.text)]
            line = buf.line
            if jsonl and end < 0 and not buf.eof:
                yield _skip_long_line(buf, line)
                continue
            try:
                if end < 0 and not buf.eof:
                    # A long single-line document: stream it below instead.
                    raise json.JSONDecodeError("too long for one line", line_text, 0)
                value = loads_bounded(line_text)
            except JsonLimit as error:
                # Read the line again value by value, so that only the records past a
                # bound are rejected (an array line, a one-line API response), and never
                # past its end (a broken line cannot swallow the next ones).
                buf.advance(buf.pos + len(line_text))
                whole = was_first and envelope is not False and buf.skip_ws() == ""
                jsonl = True
                yield from _line_items(
                    line_text, line, error.reason, keys if whole else (), is_record
                )
                continue
            except json.JSONDecodeError as error:
                if jsonl:
                    buf.advance(end if end >= 0 else len(buf.text))
                    reason = (
                        "the last line is not complete JSON and has no line ending "
                        "(truncated last line?)"
                        if end < 0
                        else f"invalid JSON ({error.msg} at column {error.colno})"
                    )
                    yield (line, reason, short_raw(line_text.rstrip("\r\n")))
                    continue
            else:
                buf.advance(buf.pos + len(line_text))
                raw = line_text.rstrip("\r\n")
                key = _records_key(value, keys) if was_first and envelope is not False else None
                if (
                    key is not None
                    and not (is_record is not None and is_record(value))
                    and buf.skip_ws() == ""
                ):
                    # The whole input is one API response: its list holds the records.
                    yield from _envelope_items(value, key, line, is_record)
                    continue
                jsonl = True
                if isinstance(value, list):
                    for item in value:
                        yield JsonValue(item, line, _dumps(item))
                else:
                    yield JsonValue(value, line, raw)
                continue
        if c == "[":
            buf.advance(buf.pos + 1)
            yield from _array(buf)
        elif c == "{":
            yield from _object(buf, keys if was_first and envelope is not False else (), is_record)
        else:
            raise FormatError(
                buf.line, f"invalid JSON: expected an object or an array, found {c!r}"
            )


def _skip_long_line(buf: _Buffer, line: int) -> tuple[int, str, str]:
    """Step over a JSON Lines line too long to be a record, in bounded memory."""
    head = buf.text[buf.pos : buf.pos + MAX_RAW_CHARS]
    size = 0
    while True:
        end = buf.text.find("\n", buf.pos)
        stop = end if end >= 0 else len(buf.text)
        size += stop - buf.pos
        buf.advance(stop)
        if end >= 0 or not buf.more():
            break
    reason = f"a line longer than {MAX_LINE_CHARS:,} characters: not a record"
    return (line, reason, f"{head}... ({size:,} characters in all)")


def _line_items(
    text: str,
    line: int,
    reason: str,
    keys: tuple[str, ...],
    is_record: Callable[[dict[str, Any]], bool] | None,
) -> list[JsonItem]:
    """The values of one line that failed a bound as a whole, read one by one."""
    sub = _Buffer(LineSource(io.StringIO(text)))
    try:
        if sub.skip_ws() == "[":
            sub.advance(sub.pos + 1)
            items = list(_array(sub))
        else:
            items = list(_object(sub, keys, is_record))
    except FormatError:
        return [
            (line, f"{reason}, in a line that is not complete JSON", short_raw(text.rstrip("\r\n")))
        ]
    return [
        JsonValue(item.value, line, item.raw)
        if isinstance(item, JsonValue)
        else (line, item[1], item[2])
        for item in items
    ]


def _records_key(value: Any, keys: tuple[str, ...]) -> str | None:
    if not isinstance(value, dict):
        return None
    for key in keys:
        if isinstance(value.get(key), list):
            return key
    return None


def _envelope_items(
    value: dict[str, Any],
    key: str,
    line: int,
    is_record: Callable[[dict[str, Any]], bool] | None,
) -> Iterator[JsonItem]:
    for item in value[key]:
        yield JsonValue(item, line, _dumps(item))
    yield from _envelope_rest({k: v for k, v in value.items() if k != key}, key, line, is_record)


def _envelope_rest(
    rest: dict[str, Any],
    key: str,
    line: int,
    is_record: Callable[[dict[str, Any]], bool] | None,
) -> Iterator[JsonItem]:
    # An envelope's own fields are metadata (ok, count, next, ...). If they look like a
    # record, the object was perhaps a record with a list field: say so, never drop it.
    if is_record is not None and is_record(rest):
        yield (
            line,
            f"an object holding a list under {key!r} was read as an API response, but its "
            "other fields look like a record (pass envelope=False to read it as one)",
            _dumps(rest),
        )


def _array(buf: _Buffer) -> Iterator[JsonItem]:
    if buf.skip_ws() == "]":
        buf.advance(buf.pos + 1)
        return
    while True:
        yield buf.value()
        if buf.expect(",]") == "]":
            return


def _object(
    buf: _Buffer,
    keys: tuple[str, ...],
    is_record: Callable[[dict[str, Any]], bool] | None,
) -> Iterator[JsonItem]:
    """An object too big for one line. The first value of the input may be an API
    response: a list under one of ``keys`` is streamed. Anything else is one record."""
    start_line = buf.line
    buf.expect("{")
    record: dict[str, Any] = {}
    streamed: str | None = None
    bad: str | None = None
    if buf.skip_ws() == "}":
        buf.advance(buf.pos + 1)
        yield JsonValue(record, start_line, "{}")
        return
    while True:
        key_item = buf.value()
        if not isinstance(key_item, JsonValue) or not isinstance(key_item.value, str):
            raise FormatError(buf.line, "invalid JSON: an object key must be a string")
        key = key_item.value
        buf.expect(":")
        if key in keys and buf.skip_ws() == "[" and streamed is None:
            buf.advance(buf.pos + 1)
            streamed = key
            yield from _array(buf)
        else:
            item = buf.value()
            if isinstance(item, JsonValue):
                record[key] = item.value
            else:
                bad = bad or item[1]
        if buf.expect(",}") == "}":
            break
    if streamed is not None:
        yield from _envelope_rest(record, streamed, start_line, is_record)
    elif bad is not None:
        yield (start_line, bad, _dumps(record))
    else:
        try:
            check_json(record)
        except JsonLimit as error:
            yield (start_line, error.reason, _dumps(record))
            return
        yield JsonValue(record, start_line, _dumps(record))
