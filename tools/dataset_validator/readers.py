"""Stream records out of JSONL, JSON (an array, one object, or an object wrapping a list), CSV
and Parquet files, each optionally gzip-compressed.

A reader yields one (record number, line, value) at a time, so memory stays flat however large
the file: the value is the parsed record, or a ReadError saying why that record could not be read.
Nothing is dropped silently: blank lines are counted, everything else is a numbered record.

What a file grows to once decompressed is bounded too (DecompressionBudget): a few KB of gzip or
Parquet can hold gigabytes, so every byte a reader hands on is counted against the limits.
"""

import csv
import gzip
import io
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import orjson

from tools.dataset_validator.columns import rename
from tools.dataset_validator.config import GZIP_SUFFIX, LimitsConfig, ReadingConfig
from tools.dataset_validator.formats import KNOWN_FIELDS
from tools.dataset_validator.json_document import DocumentError, JsonDocument
from tools.dataset_validator.kinds import ErrorCode, FileType
from tools.errors import UserError
from tools.quoting import quote

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# Cells of these CSV columns may hold JSON (a list of messages); they are decoded when they do.
STRUCTURED_COLUMNS = frozenset(
    {"messages", "conversations", "chosen", "rejected", "prompt", "completion", "history", "tools"}
)
BOOLEAN_CELLS = {"true": True, "false": False, "1": True, "0": False}
CORRUPT_STREAM = (EOFError, gzip.BadGzipFile, zlib.error)
RECORD_FIELDS = frozenset(KNOWN_FIELDS)
"""A .json object with one of these fields is a record, not a wrapper of records."""
LINES, DOCUMENT = "lines", "document"
"""How a file's JSON is laid out: one value per line, or one array or object."""
_LINE_END = b"\r\n"

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
    """The file as a whole cannot be read (not gzip, not Parquet, UTF-16...); says why, and
    how to fix it when that is more than the code's general fix."""

    code = ErrorCode.UNREADABLE_FILE

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.fix = fix


class FileTooLargeError(UnreadableFileError):
    """The file decompresses to more than the limits allow; says which limit."""

    code = ErrorCode.FILE_TOO_LARGE


class DecompressionBudget:
    """What one call (a validation, a package, a listing) may decompress across all the files
    it reads, limits.max_decompressed_bytes_per_call; each reader also holds its own file to
    the per-file limits."""

    def __init__(self, limits: LimitsConfig) -> None:
        self.limits = limits
        self.used = 0

    def take(self, count: int) -> None:
        """Count `count` more bytes; UserError once the call is past its limit."""
        self.used += count
        cap = self.limits.max_decompressed_bytes_per_call
        if self.used > cap:
            raise UserError(
                f"The datasets of this call decompress to more than {cap:,} bytes "
                "(limits.max_decompressed_bytes_per_call); nothing more was read. Give fewer "
                "or smaller datasets per call, or raise the limit."
            )


class _Metered(io.RawIOBase):
    """A stream that hands on `source`'s bytes and reports how many to `count`: wrapped in a
    BufferedReader, the check costs one call per buffer, never one per line."""

    def __init__(self, source: BinaryIO, count: Callable[[int], None]) -> None:
        self._source, self._count = source, count

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = self._source.readinto(buffer)  # type: ignore[attr-defined]
        self._count(size)
        return size


def file_type(name: str) -> FileType | None:
    """The file type a name's extension declares (a trailing .gz aside), or None."""
    base = name.lower().removesuffix(GZIP_SUFFIX)
    for kind in FileType:
        if base.endswith(f".{kind.value}"):
            return kind
    return None


class RecordReader:
    """Reads one file's records; `position()` says how far it has got, in bytes of the file.

    Every byte it hands on after decompression counts against `budget` and the per-file limits
    (FileTooLargeError): gzip's output as it is read, a Parquet file's declared uncompressed
    sizes before any of its data is read. `columns` renames records' top-level fields as they
    are read (validate_datasets' `columns`; UserError when a new name is taken); line_batches()
    hands on lines as they are, so a caller with a mapping reads records()."""

    def __init__(
        self,
        path: Path,
        kind: FileType,
        reading: ReadingConfig,
        max_record_bytes: int,
        budget: DecompressionBudget,
        columns: Mapping[str, str] | None = None,
    ):
        self.path, self.kind = path, kind
        self._columns = columns or {}
        self.size = path.stat().st_size
        self.blank_lines = 0
        self.blank_line_numbers: list[int] = []  # the first few
        self.records_key: str | None = None  # the key of the list a wrapper object holds
        self.decompressed = 0
        self._reading = reading
        self._max = max_record_bytes
        self._budget = budget
        self._rows_done = 0
        self._rows_total = 0
        self._layout: str | None = None
        self._spill: BinaryIO | None = None
        self._disk: BinaryIO = open(path, "rb", buffering=reading.buffer_bytes)  # noqa: SIM115
        head = self._disk.peek(4)[:4]
        self.compressed = head.startswith(GZIP_MAGIC)
        if head.startswith(UTF16_BOMS):
            self.close()
            raise UnreadableFileError(
                "the file is UTF-16 encoded", "Save the file as UTF-8 (without a byte order mark)."
            )
        source = gzip.GzipFile(fileobj=self._disk, mode="rb") if self.compressed else self._disk
        self._stream: BinaryIO = io.BufferedReader(  # type: ignore[assignment]
            _Metered(source, self._count), reading.buffer_bytes
        )

    def __enter__(self) -> "RecordReader":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._disk.close()
        if self._spill is not None:
            self._spill.close()

    def _count(self, size: int, consumed: int | None = None) -> None:
        """`size` more bytes decompressed from the first `consumed` bytes of the file (default:
        as far as it has been read): FileTooLargeError past the file's limits, UserError past
        the call's."""
        self.decompressed += size
        self._judge(self.decompressed, self._disk.tell() if consumed is None else consumed)
        self._budget.take(size)

    def _judge(self, decompressed: int, consumed: int) -> None:
        """FileTooLargeError when `consumed` bytes of the file growing to `decompressed` bytes
        is past limits.max_decompressed_bytes_per_file or limits.max_compression_ratio."""
        limits = self._budget.limits
        cap, ratio = limits.max_decompressed_bytes_per_file, limits.max_compression_ratio
        if decompressed > cap:
            raise FileTooLargeError(
                f"the file decompresses to more than {cap:,} bytes "
                "(limits.max_decompressed_bytes_per_file); split it into smaller files"
            )
        if decompressed >= limits.compression_ratio_after_bytes and (
            decompressed > ratio * max(consumed, 1)
        ):
            raise FileTooLargeError(
                f"{consumed:,} bytes of the file decompress to {decompressed:,} bytes, more than "
                f"{ratio:g} times as many (limits.max_compression_ratio), which no real dataset "
                "does; if this really is your data, store it uncompressed"
            )

    def _blank(self, line: int) -> None:
        """Count a blank line, keeping the first few line numbers."""
        self.blank_lines += 1
        if len(self.blank_line_numbers) < self._budget.limits.examples_per_error_code:
            self.blank_line_numbers.append(line)

    def position(self) -> int:
        """Bytes of the file on disk consumed so far (compressed bytes for a gzip file)."""
        if self.kind is FileType.PARQUET:
            return self.size * self._rows_done // max(self._rows_total, 1)
        return self._disk.tell() if not self._disk.closed else self.size

    def records(self) -> Iterator[RawRecord]:
        """Every record in file order; UnreadableFileError when the file itself is broken."""
        if self.kind is FileType.CSV:  # renamed in the header, so cells decode by the new names
            yield from self._read(self._csv())
            return
        found = self._read(self._records())
        if not self._columns:
            yield from found
            return
        mapping, quoted = self._columns, self._budget.limits.max_quoted_chars
        for number, line, value in found:
            yield number, line, rename(value, mapping, quoted) if type(value) is dict else value

    def _records(self) -> Iterator[RawRecord]:
        if self.kind is FileType.PARQUET:
            yield from self._parquet()
        elif not self.holds_lines():
            yield from self._document()
        else:
            for batch in self.line_batches():
                yield from batch.records()

    def _read(self, records: Iterator[RawRecord]) -> Iterator[RawRecord]:
        try:
            yield from records
        except CORRUPT_STREAM as exc:
            raise UnreadableFileError(f"the gzip stream is corrupt or cut off ({exc})") from exc

    def holds_lines(self) -> bool:
        """JSON Lines: a .jsonl file, or a .json file laid out as lines (_json_layout)."""
        if self.kind is FileType.JSONL:
            return True
        if self.kind is not FileType.JSON:
            return False
        if self._layout is None:
            self._layout = self._json_layout()
        return self._layout == LINES

    def _json_layout(self) -> str:
        """LINES or DOCUMENT, from the first buffer of a .json file. Many .json files hold JSON
        Lines (the datasets library writes them so), others one array, one record object (as
        axolotl's fixtures) or an object wrapping a list, pretty-printed or on one line. Lines
        when the first line is a whole object and more follows, or when it is not (a cut-off
        first record) but the next few lines all are; a document otherwise."""
        size = self._reading.buffer_bytes
        head = self._stream.peek(size)[:size]  # type: ignore[attr-defined]
        text = head.removeprefix(UTF8_BOM).lstrip()
        if text[:1] != b"{":
            return DOCUMENT if text[:1] == b"[" else LINES
        first, _, rest = text.partition(b"\n")
        complete = rest.split(b"\n")[:-1] if len(head) == size else rest.split(b"\n")
        following = [line for line in complete if line.strip()][: self._reading.sniff_records]
        if _is_object(first):
            return LINES if rest.strip() else DOCUMENT
        if following and all(line[:1] == b"{" and _is_object(line) for line in following):
            return LINES
        return DOCUMENT

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
                self._blank(line_no)
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

    # --- one JSON array or object --------------------------------------------------------

    def _document(self) -> Iterator[RawRecord]:
        """The records of a .json file that is one array or one object (JsonDocument)."""
        read, size = self._stream.read, self._reading.buffer_bytes
        document = JsonDocument(
            read,
            read(size).removeprefix(UTF8_BOM),
            size,
            self._max,
            RECORD_FIELDS | set(self._columns),
            tuple(self._reading.wrapper_keys),
            self._budget.limits.max_quoted_chars,
            self._element,
        )
        try:
            for number, (line, value) in enumerate(document, 1):
                yield number, line, value
        except DocumentError as exc:
            raise UnreadableFileError(str(exc), exc.fix) from exc
        finally:
            self.records_key = document.key

    def _element(self, data: bytes | None, line: int, column: Callable[[], int]) -> Any:
        """One record of a JSON document from its bytes (None: too long to hold), an error
        placed at its line and `column()` in the file."""
        if data is None or len(data) > self._max:
            return _too_long(self._max, "record")
        if not data:
            return ReadError(
                ErrorCode.INVALID_JSON,
                "an empty array element (two commas in a row, or a comma before ])",
            )
        value = parse_record(data)
        if type(value) is ReadError and value.code is ErrorCode.INVALID_JSON:
            return parse_record(data, line, column())
        return value

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
        if self._columns:
            header = list(
                rename(dict.fromkeys(header), self._columns, self._budget.limits.max_quoted_chars)
            )
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
                self._blank(line)
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

        source = self._seekable()
        try:
            parquet = pq.ParquetFile(source, buffer_size=self._reading.buffer_bytes)
        except (pa.ArrowException, OSError) as exc:
            raise UnreadableFileError(f"not a readable Parquet file ({exc})") from exc
        groups = self._judge_parquet(parquet.metadata)
        self._rows_total = parquet.metadata.num_rows
        number = 0
        try:
            for group, size in enumerate(groups):
                self._count(size, self.size)  # counted as each row group is reached
                for batch in parquet.iter_batches(
                    batch_size=self._reading.parquet_batch_rows, row_groups=[group]
                ):
                    for row in self._rows(batch):
                        number += 1
                        yield number, None, row
                    self._rows_done = number
        except (pa.ArrowException, OSError) as exc:
            raise UnreadableFileError(
                f"the Parquet data is corrupt after row {number} ({exc})"
            ) from exc

    def _seekable(self) -> BinaryIO:
        """The Parquet file to read: the file itself, or a gzip'd one decompressed (and counted)
        into an anonymous temporary file, since Parquet reads by seeking and each seek back in
        gzip would decompress from the start again."""
        if not self.compressed:
            return self._disk
        self._spill = tempfile.TemporaryFile()  # noqa: SIM115 (closed with the reader)
        shutil.copyfileobj(self._stream, self._spill, self._reading.buffer_bytes)
        self._spill.seek(0)
        return self._spill

    def _judge_parquet(self, metadata: "pq.FileMetaData") -> list[int]:
        """Each row group's uncompressed size, as the metadata declares it; FileTooLargeError,
        before any data is read, when the file is past the limits. Parquet decompresses a whole
        page at a time, a single value can fill a page, and a page lies within a column chunk,
        so limits.max_parquet_column_chunk_bytes bounds what one value can cost."""
        limits = self._budget.limits
        bound, groups = limits.max_parquet_column_chunk_bytes, []
        for group in range(metadata.num_row_groups):
            row_group, total = metadata.row_group(group), 0
            for column in range(row_group.num_columns):
                chunk = row_group.column(column)
                size = max(chunk.total_uncompressed_size, 0)
                if size > bound:
                    name = quote(chunk.path_in_schema, limits.max_quoted_chars)
                    raise FileTooLargeError(
                        f"column {name} of row group {group + 1} is {size:,} bytes uncompressed, "
                        f"more than limits.max_parquet_column_chunk_bytes ({bound:,}), and a "
                        "single value may be that large; write the file with smaller row groups "
                        "(pyarrow.parquet.write_table(..., row_group_size=...)) and values "
                        f"under limits.max_line_bytes ({limits.max_line_bytes:,} bytes)"
                    )
                total += size
            groups.append(total)
        self._judge(self.decompressed + sum(groups), self.size)
        return groups

    def _rows(self, batch: "pa.RecordBatch") -> Iterator[Any]:
        """The batch's rows as Python values; a row with a value over max_record_bytes is a
        ReadError instead, found from arrow's sizes so the value is never converted."""
        import pyarrow as pa

        limit = self._max
        errors: dict[int, ReadError] = {}
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            if column.nbytes <= limit:  # then no value of it can be longer
                continue
            error = _too_long(
                limit, f"value of column {quote(name, self._budget.limits.max_quoted_chars)}"
            )
            for row in np.flatnonzero(_value_bytes(column) > limit).tolist():
                errors.setdefault(row, error)
        if not errors:
            yield from batch.to_pylist()
            return
        keep = np.ones(batch.num_rows, dtype=bool)
        keep[list(errors)] = False
        kept = iter(batch.filter(pa.array(keep)).to_pylist())
        for row in range(batch.num_rows):
            yield errors[row] if row in errors else next(kept)


def parse_record(data: bytes, line: int = 1, column: int = 1) -> Any:
    """One record's JSON: its value, or a ReadError saying why it is not JSON and where, as a
    column on the record's first line (which starts at `column`) or a line and column beyond."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return _bad_json(data, exc, line, column)


def _bad_json(data: bytes, exc: orjson.JSONDecodeError, line: int, column: int) -> ReadError:
    """invalid_json, or encoding_error when the bytes are not UTF-8 in the first place. A line
    of JSON Lines keeps its line end, after which orjson places a cut-off record's end (line 2,
    column 1): it is parsed again without it for the place on its own line."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as bad:
        return ReadError(
            ErrorCode.ENCODING_ERROR,
            f"byte {bad.start + 1} is not valid UTF-8; save the file as UTF-8",
        )
    if data.endswith(b"\n"):
        try:
            orjson.loads(data.rstrip(_LINE_END))
        except orjson.JSONDecodeError as bare:
            exc = bare
    if exc.lineno == 1:
        where = f"column {column + exc.colno - 1}"
    else:
        where = f"line {line + exc.lineno - 1}, column {exc.colno}"
    return ReadError(ErrorCode.INVALID_JSON, f"not valid JSON at {where}: {exc.msg}")


def _is_object(line: bytes) -> bool:
    """Whether a line is one whole JSON object."""
    try:
        return type(orjson.loads(line)) is dict
    except orjson.JSONDecodeError:
        return False


def _too_long(limit: int, what: str) -> ReadError:
    return ReadError(
        ErrorCode.LINE_TOO_LONG, f"the {what} is longer than {limit} bytes (limits.max_line_bytes)"
    )


def _value_bytes(array: "pa.Array") -> np.ndarray:
    """Each value's size in bytes, its strings and fixed-width values (nested ones summed),
    computed by arrow without converting a value to Python."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind, count = array.type, len(array)
    if isinstance(array, pa.ExtensionArray):
        return _value_bytes(array.storage)
    if pa.types.is_dictionary(kind):
        sizes = np.append(_value_bytes(array.dictionary), 0)  # never empty, for null indices
        picked = sizes[array.indices.fill_null(0).to_numpy()]
        return np.where(array.is_valid().to_numpy(zero_copy_only=False), picked, 0)
    if kind in (pa.binary_view(), pa.string_view()):  # no length kernel for views
        return _value_bytes(array.cast(pa.large_binary()))
    if kind in (pa.binary(), pa.string(), pa.large_binary(), pa.large_string()):
        return pc.binary_length(array).fill_null(0).to_numpy()
    if pa.types.is_struct(kind):
        return sum((_value_bytes(field) for field in array.flatten()), np.zeros(count))
    if pa.types.is_fixed_size_list(kind):
        size = kind.list_size
        starts = (array.offset + np.arange(count)) * size
        return _spans(array, starts, starts + size)
    if pa.types.is_list_view(kind) or pa.types.is_large_list_view(kind):
        starts = array.offsets.to_numpy()
        return _spans(array, starts, starts + array.sizes.to_numpy())
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_map(kind):
        offsets = array.offsets.to_numpy()
        return _spans(array, offsets[:-1], offsets[1:])
    try:
        width = kind.bit_width / 8
    except ValueError:  # no fixed width (a union, say): each value counts as all of them
        return np.full(count, array.nbytes)
    return np.where(array.is_valid().to_numpy(zero_copy_only=False), width, 0)


def _spans(array: "pa.Array", starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Per list value, the bytes of its elements values[start:end] (nulls: 0)."""
    sizes = np.concatenate(([0], np.cumsum(_value_bytes(array.values))))
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    return np.where(valid, sizes[ends] - sizes[starts], 0)


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
