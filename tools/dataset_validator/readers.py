"""Stream records out of JSONL, JSON-array, CSV and Parquet files, each optionally gzip-compressed.

A reader yields one (record number, line, value) at a time, so memory stays flat however large
the file: the value is the parsed record, or a ReadError saying why that record could not be read.
Nothing is dropped silently: blank lines are counted, everything else is a numbered record.
"""

import csv
import gzip
import io
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from tools.dataset_validator.config import GZIP_SUFFIX, ReadingConfig
from tools.dataset_validator.kinds import ErrorCode, FileType

GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# Cells of these CSV columns may hold JSON (a list of messages); they are decoded when they do.
STRUCTURED_COLUMNS = frozenset(
    {"messages", "conversations", "chosen", "rejected", "prompt", "completion", "history", "tools"}
)
BOOLEAN_CELLS = {"true": True, "false": False, "1": True, "0": False}
CORRUPT_STREAM = (EOFError, gzip.BadGzipFile, zlib.error)

# A JSON array is split into its elements without parsing it whole: a complete string in one
# match, else one structural character (or a string's opening quote when it runs past the buffer).
_ARRAY_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},"]', re.S)
_STRING_BODY = re.compile(rb'(?:[^"\\]|\\.)*', re.S)
_NON_SPACE = re.compile(rb"\S")
_QUOTE, _COMMA = ord('"'), ord(",")
_OPENERS, _CLOSERS = frozenset(b"[{"), frozenset(b"]}")

RawRecord = tuple[int, int | None, Any]
"""(1-based record number, 1-based line where it starts or None, parsed value or ReadError)."""


@dataclass(frozen=True, slots=True)
class ReadError:
    """Why one record could not be read."""

    code: ErrorCode
    message: str


@dataclass(frozen=True, slots=True)
class LineBatch:
    """Consecutive records of a JSON Lines file: (line, raw bytes or why it cannot be read)
    each; the first is record number `first`, the others follow without a gap."""

    first: int
    items: list[tuple[int, "bytes | ReadError"]]

    def records(self) -> Iterator[RawRecord]:
        for number, (line, raw) in enumerate(self.items, self.first):
            yield number, line, raw if type(raw) is ReadError else parse_record(raw)


class UnreadableFileError(Exception):
    """The file as a whole cannot be read (not gzip, not Parquet, UTF-16...); says why."""


def file_type(name: str) -> FileType | None:
    """The file type a name's extension declares (a trailing .gz aside), or None."""
    base = name.lower().removesuffix(GZIP_SUFFIX)
    for kind in FileType:
        if base.endswith(f".{kind.value}"):
            return kind
    return None


class RecordReader:
    """Reads one file's records; `position()` says how far it has got, in bytes of the file."""

    def __init__(self, path: Path, kind: FileType, reading: ReadingConfig, max_record_bytes: int):
        self.path, self.kind = path, kind
        self.size = path.stat().st_size
        self.blank_lines = 0
        self._reading = reading
        self._max = max_record_bytes
        self._rows_done = 0
        self._rows_total = 0
        self._disk: BinaryIO = open(path, "rb", buffering=reading.buffer_bytes)  # noqa: SIM115
        head = self._disk.peek(4)[:4]
        self.compressed = head.startswith(GZIP_MAGIC)
        if head.startswith(UTF16_BOMS):
            self.close()
            raise UnreadableFileError("the file is UTF-16 encoded; save it as UTF-8")
        self._stream: BinaryIO = (
            gzip.GzipFile(fileobj=self._disk, mode="rb") if self.compressed else self._disk
        )

    def __enter__(self) -> "RecordReader":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._disk.close()

    def position(self) -> int:
        """Bytes of the file on disk consumed so far (compressed bytes for a gzip file)."""
        if self.kind is FileType.PARQUET:
            return self.size * self._rows_done // max(self._rows_total, 1)
        return self._disk.tell() if not self._disk.closed else self.size

    def records(self) -> Iterator[RawRecord]:
        """Every record in file order; UnreadableFileError when the file itself is broken."""
        try:
            if self.kind is FileType.PARQUET:
                yield from self._parquet()
            elif self.kind is FileType.CSV:
                yield from self._csv()
            elif not self.holds_lines():
                yield from self._json_array()
            else:
                for batch in self.line_batches():
                    yield from batch.records()
        except CORRUPT_STREAM as exc:
            raise UnreadableFileError(f"the gzip stream is corrupt or cut off ({exc})") from exc

    def holds_lines(self) -> bool:
        """JSON Lines: a .jsonl file, or a .json file that does not open with [ (as often)."""
        if self.kind is FileType.JSONL:
            return True
        if self.kind is not FileType.JSON:
            return False
        head = self._stream.peek(self._reading.sniff_bytes)  # type: ignore[attr-defined]
        return head.removeprefix(UTF8_BOM).lstrip()[:1] != b"["

    # --- JSON Lines -----------------------------------------------------------------------

    def line_batches(self) -> Iterator["LineBatch"]:
        """The file's JSON Lines, unparsed, reading.batch_bytes or check_every_records at a time,
        whichever comes first (a batch ends at a line end). Blank lines are counted and left
        out; an overlong line becomes a ReadError without ever being held whole."""
        try:
            yield from self._line_batches()
        except CORRUPT_STREAM as exc:
            raise UnreadableFileError(f"the gzip stream is corrupt or cut off ({exc})") from exc

    def _line_batches(self) -> Iterator["LineBatch"]:
        readline = self._stream.readline
        limit, skip = self._max + 1, self._reading.buffer_bytes
        target, most = self._reading.batch_bytes, self._reading.check_every_records
        first = 1  # the record number of the batch's first line
        line_no = size = 0
        items: list[tuple[int, bytes | ReadError]] = []
        while line := readline(limit):
            line_no += 1
            if line_no == 1 and line.startswith(UTF8_BOM):
                line = line[len(UTF8_BOM) :]
            if len(line) == limit and line[-1:] != b"\n":
                while (rest := readline(skip)) and rest[-1:] != b"\n":
                    pass  # the rest of the line, a buffer at a time
                items.append((line_no, _too_long(self._max, "line")))
                size += limit
            elif line.isspace() or not line:
                self.blank_lines += 1
                continue
            else:
                items.append((line_no, line))
                size += len(line)
            if size >= target or len(items) >= most:
                yield LineBatch(first, items)
                first += len(items)
                items, size = [], 0
        if items:
            yield LineBatch(first, items)

    # --- one JSON array -------------------------------------------------------------------

    def _json_array(self) -> Iterator[RawRecord]:
        """The array's elements, split by a scan that keeps only the current element in memory."""
        read, size = self._stream.read, self._reading.buffer_bytes
        buf = bytearray(read(size).removeprefix(UTF8_BOM))
        scan = 0  # the next byte to look at
        start = -1  # where the open element begins; -1 until the array opens
        depth = number = 0
        in_string = closed = False
        oversized_at = 0  # the line of an element dropped for being too long; 0: none
        counted, lines = 0, 1  # buf[:counted] holds lines - 1 newlines (dropped bytes included)

        def line_at(index: int) -> int:
            nonlocal counted, lines
            lines += buf.count(b"\n", counted, index)
            counted = index
            return lines

        while not closed:
            while scan < len(buf):
                if in_string:
                    end = _STRING_BODY.match(buf, scan).end()  # type: ignore[union-attr]
                    if end < len(buf) and buf[end] == _QUOTE:
                        in_string, scan = False, end + 1
                        continue
                    scan = end
                    break
                match = _ARRAY_TOKEN.search(buf, scan)
                if match is None:
                    scan = len(buf)
                    break
                at, scan = match.start(), match.end()
                char = buf[at]
                if char == _QUOTE:
                    in_string = scan - at == 1
                elif char in _OPENERS:
                    depth += 1
                    if depth == 1:
                        start = scan
                elif depth > 1:
                    depth -= char in _CLOSERS
                else:
                    last = char != _COMMA
                    raw = b"" if oversized_at else bytes(buf[start:at])
                    element = raw.lstrip()
                    if element or oversized_at or not last or number:
                        number += 1
                        where = oversized_at or line_at(start + len(raw) - len(element))
                        yield number, where, _element(element.rstrip(), oversized_at, self._max)
                    start, oversized_at = scan, 0
                    if last:
                        closed = True
                        break
            if closed:
                break
            keep = start if start >= 0 and not oversized_at else scan
            line_at(keep)
            del buf[:keep]
            scan, counted = scan - keep, 0
            start = 0 if start >= 0 and not oversized_at else start
            if start == 0 and not oversized_at and len(buf) > self._max:
                oversized_at = line_at(_NON_SPACE.search(buf).start())  # type: ignore[union-attr]
            chunk = read(size)
            if not chunk:
                break
            buf += chunk
        if not closed:
            yield (
                number + 1,
                oversized_at or line_at(max(start, 0)),
                ReadError(
                    ErrorCode.INVALID_JSON, "the file ends before the JSON array is closed with ]"
                ),
            )
            return
        rest = bytes(buf[scan:])
        while not rest.strip() and (chunk := read(size)):
            rest = chunk
        if rest.strip():
            yield (
                number + 1,
                None,
                ReadError(
                    ErrorCode.INVALID_JSON, "there is data after the ] that closes the JSON array"
                ),
            )

    # --- CSV ------------------------------------------------------------------------------

    def _csv(self) -> Iterator[RawRecord]:
        """Rows as records keyed by the header; invalid UTF-8 is reported per row, not fatal."""
        text = io.TextIOWrapper(
            self._stream, encoding="utf-8-sig", errors="surrogateescape", newline=""
        )
        csv.field_size_limit(self._max)  # process-wide; every reader sets the configured one
        rows = csv.reader(text)
        try:
            header = [name.strip() for name in next(rows)]
        except StopIteration:
            return
        except csv.Error as exc:
            raise UnreadableFileError(f"the CSV header cannot be read: {exc}") from exc
        number, previous = 0, rows.line_num
        while True:
            try:
                row = next(rows)
            except StopIteration:
                return
            except csv.Error as exc:
                number, line, previous = number + 1, previous + 1, rows.line_num
                too_long = "field larger than field limit" in str(exc)
                yield (
                    number,
                    line,
                    (
                        _too_long(self._max, "field")
                        if too_long
                        else ReadError(ErrorCode.INVALID_CSV, f"the row cannot be parsed: {exc}")
                    ),
                )
                continue
            line, previous = previous + 1, rows.line_num
            if not row:
                self.blank_lines += 1
                continue
            number += 1
            if len(row) != len(header):
                yield (
                    number,
                    line,
                    ReadError(
                        ErrorCode.INVALID_CSV,
                        f"the row has {len(row)} fields but the header has {len(header)}",
                    ),
                )
                continue
            try:
                "".join(row).encode("utf-8")
            except UnicodeEncodeError:
                yield (
                    number,
                    line,
                    ReadError(
                        ErrorCode.ENCODING_ERROR,
                        "the row is not valid UTF-8; save the file as UTF-8",
                    ),
                )
                continue
            yield (
                number,
                line,
                {name: _cell(name, value) for name, value in zip(header, row, strict=True)},
            )

    # --- Parquet --------------------------------------------------------------------------

    def _parquet(self) -> Iterator[RawRecord]:
        import pyarrow as pa  # on first use: pyarrow adds ~20 MB to a process
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(self._stream, buffer_size=self._reading.buffer_bytes)
        except (pa.ArrowException, OSError) as exc:
            raise UnreadableFileError(f"not a readable Parquet file ({exc})") from exc
        self._rows_total = parquet.metadata.num_rows
        number = 0
        try:
            for batch in parquet.iter_batches(batch_size=self._reading.parquet_batch_rows):
                for row in batch.to_pylist():
                    number += 1
                    yield number, None, row
                self._rows_done = number
        except (pa.ArrowException, OSError) as exc:
            raise UnreadableFileError(
                f"the Parquet data is corrupt after row {number} ({exc})"
            ) from exc


def parse_record(data: bytes) -> Any:
    """One record's JSON: its value, or a ReadError saying why it is not JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return _bad_json(data, exc)


def _bad_json(data: bytes, exc: orjson.JSONDecodeError) -> ReadError:
    """invalid_json, or encoding_error when the bytes are not UTF-8 in the first place."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as bad:
        return ReadError(
            ErrorCode.ENCODING_ERROR,
            f"byte {bad.start + 1} is not valid UTF-8; save the file as UTF-8",
        )
    return ReadError(ErrorCode.INVALID_JSON, f"not valid JSON at column {exc.colno}: {exc.msg}")


def _element(data: bytes, oversized_at: int, limit: int) -> Any:
    if oversized_at or len(data) > limit:
        return _too_long(limit, "record")
    if not data:
        return ReadError(
            ErrorCode.INVALID_JSON,
            "an empty array element (two commas in a row, or a comma before ])",
        )
    return parse_record(data)


def _too_long(limit: int, what: str) -> ReadError:
    return ReadError(
        ErrorCode.LINE_TOO_LONG, f"the {what} is longer than {limit} bytes (limits.max_line_bytes)"
    )


def _cell(column: str, value: str) -> Any:
    """A CSV cell as the value it stands for: JSON for structured columns, a label as bool."""
    if column in STRUCTURED_COLUMNS and value.lstrip()[:1] in ("[", "{"):
        try:
            decoded = orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
        if isinstance(decoded, list | dict):
            return decoded
    if column == "label":
        return BOOLEAN_CELLS.get(value.strip().lower(), value)
    return value
