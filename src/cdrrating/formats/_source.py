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

from cdrrating.formats._errors import FormatError

Source = str | os.PathLike[str] | IO[bytes] | IO[str]

# A CDR or rate line is a few hundred bytes; a "line" of megabytes means a binary file
# or a file without line breaks, and reading it whole would break the memory promise.
MAX_LINE_CHARS = 1 << 20
MAX_RECORD_CHARS = 16 << 20

_WIDE_CODECS = {"utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"}
_LONE_CR = re.compile(r"(?<=\r)(?!\n)")


def source_name(source: Source) -> str:
    if isinstance(source, str | os.PathLike):
        return os.fspath(source)
    return str(getattr(source, "name", "<stream>"))


class LineSource:
    """Decoded lines of one input, each with its line ending, and the current line number.

    Handles a UTF-8 or UTF-16/32 byte-order mark, ``\\n``, ``\\r\\n`` and lone ``\\r``
    endings mixed in one file, and reports an undecodable byte with its line number.
    """

    def __init__(self, source: Source, *, encoding: str = "utf-8") -> None:
        self.name = source_name(source)
        self.encoding = encoding
        self.line = 0  # number of the last line handed out
        self._owned: IO[Any] | None = None
        self._text: IO[str] | None = None
        self._binary: IO[bytes] | None = None
        if isinstance(source, str | os.PathLike):
            self._owned = self._binary = open(source, "rb")  # noqa: SIM115 - closed in close()
        elif isinstance(source, io.TextIOBase):
            self._text = source  # already decoded by the caller (e.g. sys.stdin, StringIO)
        else:
            self._binary = source  # type: ignore[assignment]
        self._codec = codecs.lookup(encoding).name if self._text is None else "text"
        self._pending: list[str] = []
        self._started = False
        self._replay: tuple[list[str], Iterator[str]] | None = None

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
            for text in seen:
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
            raw = readline(MAX_LINE_CHARS + 1)
            if not raw:
                return
            if len(raw) > MAX_LINE_CHARS and not raw.endswith(b"\n") and not chunked:
                raise FormatError(
                    self.line + 1,
                    f"a line longer than {MAX_LINE_CHARS:,} bytes: not a CDR or rate file?",
                )
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
        for text in rest:
            seen.append(text)
            if done(text) or len(seen) >= limit:
                break
        self.line -= len(seen)
        self._pending.clear()
        self._replay = (seen, rest)
        return seen

    def first_char(self) -> str:
        """The first non-blank character of the input ('' if none), not consumed."""
        seen = self.peek(lambda text: bool(text.strip()))
        return seen[-1].strip()[:1] if seen else ""

    def _text_lines(self, stream: IO[str], chunked: bool) -> Iterator[str]:
        while True:
            try:
                text = stream.readline(MAX_LINE_CHARS + 1)
            except UnicodeDecodeError as error:
                raise FormatError(
                    self.line + 1,
                    f"not valid {self._codec} ({error.reason}); pass encoding= with the "
                    "file's encoding",
                    field="encoding",
                ) from None
            if not text:
                return
            if len(text) > MAX_LINE_CHARS and not chunked:
                raise FormatError(
                    self.line + 1, f"a line longer than {MAX_LINE_CHARS:,} characters"
                )
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
    ``(line, reason, raw)`` and reading continues with the next record."""
    reader = csv.reader(src.lines(), delimiter=delimiter, strict=True)
    while True:
        first = src.line + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raw = src.take_raw()
            reason = str(error)
            if "unexpected end of data" in reason:
                reason = "the file ends inside a quoted field (truncated last record?)"
            yield (first, reason, raw)
            continue
        unterminated = src.unterminated
        yield CsvRecord(fields, first, src.take_raw(), unterminated)


# -- JSON ------------------------------------------------------------------------------------

_DECODER = json.JSONDecoder(parse_float=Decimal)
_WS = re.compile(r"[ \t\r\n]*")
RECORD_KEYS = ("rows", "objects", "data", "records", "cdrs", "results", "items", "calls")


class JsonValue:
    __slots__ = ("line", "raw", "value")

    def __init__(self, value: Any, line: int, raw: str) -> None:
        self.value = value
        self.line = line
        self.raw = raw


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

    def value(self) -> JsonValue:
        self.skip_ws()
        start_line = self.line
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as error:
                if self.more():
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
            # A number that ends exactly at the buffer's end may continue in the next line.
            if end == len(self.text) and not self.eof and self.more():
                continue
            raw = self.text[self.pos : end]
            self.advance(end)
            return JsonValue(value, start_line, raw)


def json_values(src: LineSource) -> Iterator[JsonValue | tuple[int, str, str]]:
    """Records of a JSON input, streamed.

    Accepted layouts: JSON Lines (one object a line; a bad line is reported as
    ``(line, reason, raw)`` and reading goes on), one object, an array of objects, or an
    object holding the records in a list under one of ``RECORD_KEYS`` (``rows``,
    ``objects``, ``data``, ...). Arrays are read element by element. Anything else raises
    FormatError with the line where reading stopped.
    """
    buf = _Buffer(src)
    jsonl = False
    while True:
        c = buf.skip_ws()
        if c == "":
            return
        if jsonl or c == "{":
            # Fast path for JSON Lines: a whole line that is one complete value.
            end = buf.text.find("\n", buf.pos)
            while end < 0 and len(buf.text) - buf.pos <= MAX_LINE_CHARS and buf.more():
                end = buf.text.find("\n", buf.pos)
            line_text = buf.text[buf.pos : end if end >= 0 else len(buf.text)]
            try:
                if end < 0 and not buf.eof:
                    # A long single-line document: stream it below instead.
                    raise json.JSONDecodeError("too long for one line", line_text, 0)
                value = json.loads(line_text, parse_float=Decimal)
            except json.JSONDecodeError as error:
                if jsonl:
                    line = buf.line
                    buf.advance(end if end >= 0 else len(buf.text))
                    reason = (
                        "the last line is not complete JSON and has no line ending "
                        "(truncated last line?)"
                        if end < 0
                        else f"invalid JSON ({error.msg} at column {error.colno})"
                    )
                    yield (line, reason, line_text.rstrip("\r\n"))
                    continue
            else:
                line = buf.line
                buf.advance(buf.pos + len(line_text))
                if isinstance(value, dict) and _records_key(value) is None:
                    jsonl = True
                    yield JsonValue(value, line, line_text.rstrip("\r\n"))
                    continue
                if isinstance(value, list):
                    for item in value:
                        yield JsonValue(item, line, json.dumps(item, default=str))
                    continue
                if isinstance(value, dict):
                    for item in value[_records_key(value) or ""]:
                        yield JsonValue(item, line, json.dumps(item, default=str))
                    continue
                raise FormatError(
                    line, f"expected a JSON object or array, found {type(value).__name__}"
                )
        if c == "[":
            buf.advance(buf.pos + 1)
            yield from _array(buf)
        elif c == "{":
            yield from _object(buf)
        else:
            raise FormatError(
                buf.line, f"invalid JSON: expected an object or an array, found {c!r}"
            )


def _records_key(value: dict[str, Any]) -> str | None:
    for key in RECORD_KEYS:
        if isinstance(value.get(key), list):
            return key
    return None


def _array(buf: _Buffer) -> Iterator[JsonValue]:
    if buf.skip_ws() == "]":
        buf.advance(buf.pos + 1)
        return
    while True:
        yield buf.value()
        if buf.expect(",]") == "]":
            return


def _object(buf: _Buffer) -> Iterator[JsonValue]:
    """An object too big for one line: stream its record list, else it is one record."""
    start_line = buf.line
    buf.expect("{")
    record: dict[str, Any] = {}
    streamed = False
    if buf.skip_ws() == "}":
        buf.advance(buf.pos + 1)
        yield JsonValue(record, start_line, "{}")
        return
    while True:
        key = buf.value().value
        if not isinstance(key, str):
            raise FormatError(buf.line, "invalid JSON: an object key must be a string")
        buf.expect(":")
        if key in RECORD_KEYS and buf.skip_ws() == "[" and not streamed:
            buf.advance(buf.pos + 1)
            streamed = True
            yield from _array(buf)
        else:
            record[key] = buf.value().value
        if buf.expect(",}") == "}":
            break
    if not streamed:
        yield JsonValue(record, start_line, json.dumps(record, default=str))
