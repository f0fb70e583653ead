"""Split one JSON document into records without parsing it whole: the elements of a top-level
array, the one object a file holds, or the list a wrapper object holds ({"data": [...]}).

A scan over the bytes finds the structure (whole strings, brackets, commas) and keeps in memory
only what it still needs: the element being read, or an object while it is unclear whether it is
one record or a wrapper; either is held up to the record limit (limits.max_line_bytes), beyond
which an element is reported too long and an object must be a wrapper.
"""

import re
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import numpy as np
import orjson

from tools.quoting import quote_list

# A complete string in one match, else one structural character (or a string's opening quote
# when it runs past the buffer).
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},"]', re.S)
_STRING_BODY = re.compile(rb'(?:[^"\\]|\\.)*', re.S)
_NON_SPACE = re.compile(rb"\S")
_QUOTE, _COMMA, _OPEN_LIST, _OPEN_OBJECT = b'"'[0], b","[0], b"["[0], b"{"[0]
_OPENERS, _CLOSERS = frozenset(b"[{"), frozenset(b"]}")
OVERFLOW = -1
"""A pseudo token: what is held has grown past the limit."""

Found = tuple[int, Any]
"""(1-based line where a record starts, its value as `parse` made it)."""
Parse = Callable[[bytes | None, int, Callable[[], int]], Any]
"""A record's value from its bytes (empty for an empty array element, None for one too long to
hold), the line they start on and what gives their 1-based column there (called only when it is
needed, for an error: finding it costs a look back along the line)."""


class DocumentError(Exception):
    """The document as a whole is broken or cannot be split into records; says why and how
    to fix it."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix


class _Walk:
    """The structural tokens of a JSON text read a buffer at a time.

    tokens() yields each token's first byte: a bracket, a comma, or (while `strings` is set) a
    quote for a whole string; `at` is where the token starts (negative once dropped), `scan`
    just past it. Each refill drops
    the bytes before `hold` (or before `scan` when nothing is held); `offset` counts the bytes
    dropped, so offset + index is a position in the document.
    """

    def __init__(
        self,
        read: Callable[[int], bytes],
        size: int,
        limit: int,
        first: bytearray,
        line: int = 1,
        column: int = 0,
        offset: int = 0,
    ) -> None:
        """`first`: the document's first bytes (the walk's buffer from then on), starting on
        `line` after `column` characters of it; `offset`: where they lie in the document."""
        self.buf = first
        self._read, self._size, self.limit = read, size, limit
        self.scan = self.at = 0
        self.hold = -1
        self.strings = False  # whether tokens() yields strings (object member names)
        self.offset = offset
        self._counted, self._lines = 0, line  # buf[:_counted] ends on line _lines
        self._dropped_chars = column  # characters of buf[0]'s line that were dropped

    def line_at(self, index: int) -> int:
        """The line of buf[index]."""
        if index >= self._counted:
            self._lines += self.buf.count(b"\n", self._counted, index)
        else:
            self._lines -= self.buf.count(b"\n", index, self._counted)
        self._counted = index
        return self._lines

    def column_at(self, index: int) -> int:
        """The 1-based column (in characters) of buf[index] on its line."""
        start = self.buf.rfind(b"\n", 0, index) + 1
        before = 0 if start else self._dropped_chars
        return before + _chars(self.buf[start:index]) + 1

    def tokens(self) -> Iterator[int]:
        """The tokens, strings among them only while `strings` is set (skipping the others
        is most of a scan's work saved)."""
        buf, in_string = self.buf, False
        search, body = _TOKEN.search, _STRING_BODY.match
        while True:
            scan, end_of_buffer = self.scan, len(buf)
            while scan < end_of_buffer:
                if in_string:
                    end = body(buf, scan).end()  # type: ignore[union-attr]
                    if end < end_of_buffer and buf[end] == _QUOTE:
                        in_string, scan = False, end + 1
                        if self.strings:
                            self.scan = scan
                            yield _QUOTE
                        continue
                    scan = end
                    break
                match = search(buf, scan)
                if match is None:
                    scan = end_of_buffer
                    break
                at, scan = match.span()
                char = buf[at]
                if char == _QUOTE:
                    if scan - at == 1:  # the string runs past the buffer
                        in_string, self.at = True, at
                        continue
                    if not self.strings:
                        continue
                self.at, self.scan = at, scan
                yield char
            self.scan = scan
            held = self._refill()
            if held < 0:
                return
            if held > self.limit:
                yield OVERFLOW

    def _refill(self) -> int:
        """Drop what is no longer needed and read on: how many bytes were held before the
        read (-1 at the end of the data)."""
        keep = self.scan if self.hold < 0 else min(self.hold, self.scan)
        self.line_at(keep)
        dropped = self.buf[:keep]
        newline = dropped.rfind(b"\n")
        if newline >= 0:
            self._dropped_chars = _chars(dropped[newline + 1 :])
        else:
            self._dropped_chars += _chars(dropped)
        del self.buf[:keep]
        self.offset += keep
        self.scan -= keep
        self.at -= keep
        self._counted = 0
        held = 0
        if self.hold >= 0:
            self.hold -= keep
            held = len(self.buf) - self.hold
        chunk = self._read(self._size)
        if not chunk:
            return -1
        self.buf += chunk
        return held

    def restart(self, index: int) -> "_Walk":
        """A walk that reads on from buf[index] (held), as if the document started there; it
        takes over the buffer, so this walk is done."""
        line, column = self.line_at(index), self.column_at(index) - 1
        del self.buf[:index]
        return _Walk(
            self._read, self._size, self.limit, self.buf, line, column, self.offset + index
        )

    def first_byte_after(self, index: int) -> int | None:
        """The first non-space byte at or after buf[index], if the buffer holds one."""
        match = _NON_SPACE.search(self.buf, index)
        return None if match is None else self.buf[match.start()]

    def rest_is_blank(self) -> bool:
        """Whether nothing but whitespace follows the scan (reading to the end of the data)."""
        while True:
            if _NON_SPACE.search(self.buf, self.scan):
                return False
            self.scan = len(self.buf)
            if self._refill() < 0:
                return True


class JsonDocument:
    """The records of a JSON text that opens with [ or {: iterate it for (line, value) pairs.

    An array's elements are the records. An object is one record when it has a field a format
    reads (`record_fields`), or no list of objects; otherwise it is a wrapper whose list holds
    the records: the first list under one of `wrapper_keys`, else its only list of objects
    (`key` says which). DocumentError when it is neither, or the document is cut off.
    """

    def __init__(
        self,
        read: Callable[[int], bytes],
        first: bytes,
        size: int,
        limit: int,
        record_fields: frozenset[str],
        wrapper_keys: tuple[str, ...],
        max_quoted_chars: int,
        parse: Parse,
    ) -> None:
        """`first`: the document's first bytes, `read(size)` the next ones; `parse`: a
        record's value from its bytes and where they start."""
        self._walk = _Walk(read, size, limit, bytearray(first))
        self._fields, self._wrappers = record_fields, wrapper_keys
        self._quoted = max_quoted_chars
        self._parse = parse
        self.key: str | None = None

    def __iter__(self) -> Iterator[Found]:
        walk = self._walk
        tokens = walk.tokens()
        opener = next(tokens, None)
        if opener == _OPEN_LIST:
            yield from _elements(walk, tokens, self._parse)
            close, what = "]", "array"
        elif opener == _OPEN_OBJECT:
            walk = yield from self._object(walk, tokens)
            close, what = "}", "object"
        else:
            return
        if not walk.rest_is_blank():
            line = walk.line_at(_NON_SPACE.search(walk.buf, walk.scan).start())  # type: ignore[union-attr]
            raise DocumentError(
                f"there is more data after the {close} that closes the JSON {what} (line {line})",
                "Keep one JSON value per .json file; for one record per line, name the file "
                ".jsonl.",
            )

    def _object(self, walk: _Walk, tokens: Iterator[int]) -> Iterator[Found]:
        """The records of an object (the walk is just past its {, held from there while it
        is undecided); returns the walk that read to its }."""
        begin, line = walk.offset + walk.at, walk.line_at(walk.at)
        walk.hold = walk.at
        depth, key, expect_key, is_record = 0, None, True, False
        lists: list[tuple[str | None, int]] = []  # (key, where its [ is in the document)
        open_list = False  # whether the member value being read is the last of `lists`
        walk.strings = True  # member names, at depth 0
        for char in tokens:
            if char == OVERFLOW:
                if is_record:
                    return (yield from self._too_long(walk, tokens, line, depth))
                chosen = self._lists_of_objects(walk, lists)
                if not (open_list and chosen == lists[-1:]):
                    raise DocumentError(
                        f"the JSON object on line {line} is longer than {walk.limit:,} bytes "
                        "(limits.max_line_bytes) and holds no list of records under "
                        f"{', '.join(self._wrappers)}",
                        "Put the records in a list under one of those keys, or write one "
                        "record per line (.jsonl).",
                    )
                return (yield from self._unwrap(walk, *lists[-1], strict=True))
            if depth:
                depth += (char in _OPENERS) - (char in _CLOSERS)
                open_list = open_list and depth > 0
                walk.strings = not depth
            elif char == _QUOTE:
                if expect_key:
                    key, expect_key = self._key(walk), False
                    is_record = is_record or key in self._fields
            elif char == _COMMA:
                expect_key = True
            elif char in _CLOSERS:
                return (yield from self._decide(walk, begin, line, is_record, lists))
            else:
                depth, open_list, walk.strings = 1, char == _OPEN_LIST, False
                if open_list and key in self._wrappers and not is_record:
                    self.key, walk.hold = key, -1
                    yield from _elements(walk, tokens, self._parse)
                    self._close(walk, tokens, line, strict=False)
                    return walk
                if open_list:
                    lists.append((key, walk.offset + walk.at))
        raise _cut_off(f"the JSON object that opens on line {line}")

    def _decide(
        self,
        walk: _Walk,
        begin: int,
        line: int,
        is_record: bool,
        lists: list[tuple[str | None, int]],
    ) -> Iterator[Found]:
        """The whole object is held: one record, or the records of its one list of objects."""
        candidates = self._lists_of_objects(walk, lists)
        if is_record or not candidates:
            start = begin - walk.offset
            data = bytes(walk.buf[start : walk.scan])
            yield line, self._parse(data, line, partial(walk.column_at, start))
            walk.hold = -1
            return walk
        if len(candidates) > 1:
            raise self._ambiguous([key for key, _ in candidates])
        return (yield from self._unwrap(walk, *candidates[0], strict=False))

    def _too_long(
        self, walk: _Walk, tokens: Iterator[int], line: int, depth: int
    ) -> Iterator[Found]:
        """An object that is one record, past the limit: reported, and read past."""
        walk.hold = -1
        yield line, self._parse(None, line, lambda: 0)
        for char in tokens:
            depth += (char in _OPENERS) - (char in _CLOSERS)
            if depth < 0:
                return walk
        raise _cut_off(f"the JSON object that opens on line {line}")

    def _lists_of_objects(
        self, walk: _Walk, lists: list[tuple[str | None, int]]
    ) -> list[tuple[str | None, int]]:
        """The lists (all held) whose first element is an object."""
        return [
            (key, at)
            for key, at in lists
            if walk.first_byte_after(at - walk.offset + 1) == _OPEN_OBJECT
        ]

    def _unwrap(self, walk: _Walk, key: str | None, at: int, *, strict: bool) -> Iterator[Found]:
        """The records of the held list whose [ is at `at` in the document, then the rest of
        the object; `strict`: another list of objects there is an error (the list was taken as
        the only one)."""
        self.key = key
        walk = walk.restart(at - walk.offset)
        tokens = walk.tokens()
        next(tokens)  # the list's [
        yield from _elements(walk, tokens, self._parse)
        self._close(walk, tokens, None, strict=strict)
        return walk

    def _close(self, walk: _Walk, tokens: Iterator[int], line: int | None, *, strict: bool) -> None:
        """Read to the } of the object whose records were just read (from just after their
        list); `strict`: DocumentError when another member holds a list of objects."""
        depth, key, expect_key = 0, None, False
        walk.strings = True
        for char in tokens:
            if depth:
                depth += (char in _OPENERS) - (char in _CLOSERS)
                walk.strings = not depth
            elif char == _QUOTE:
                if expect_key:
                    key, expect_key = self._key(walk), False
            elif char == _COMMA:
                expect_key = True
            elif char in _CLOSERS:
                return
            else:
                depth, walk.strings = 1, False
                objects = walk.first_byte_after(walk.scan) == _OPEN_OBJECT
                if strict and char == _OPEN_LIST and objects:
                    raise self._ambiguous([self.key, key])
        raise _cut_off("the JSON object" + (f" that opens on line {line}" if line else ""))

    def _key(self, walk: _Walk) -> str | None:
        """The member name just read, if its bytes are still held."""
        if walk.at < 0:
            return None
        try:
            name = orjson.loads(bytes(walk.buf[walk.at : walk.scan]))
        except orjson.JSONDecodeError:
            return None
        return name if isinstance(name, str) else None

    def _ambiguous(self, keys: list[str | None]) -> DocumentError:
        names = quote_list([k if k is not None else "?" for k in keys], self._quoted)
        wrappers = ", ".join(self._wrappers)
        return DocumentError(
            f"the JSON object holds several lists of objects ({names}) and none under "
            f"{wrappers}, so which one holds the records is unclear",
            f"Keep only the list of records, or put it under one of {wrappers}.",
        )


def _cut_off(what: str) -> DocumentError:
    return DocumentError(
        f"the file ends before {what} is closed",
        "The file is cut off: copy or download it again, whole.",
    )


def _elements(walk: _Walk, tokens: Iterator[int], parse: Parse) -> Iterator[Found]:
    """Each element of the list whose [ was just read, up to its ]; DocumentError when the
    data ends first."""
    walk.hold, walk.strings = walk.scan, False
    depth = count = oversized = 0  # oversized: the line of an element dropped for its size
    for char in tokens:
        if char == OVERFLOW:
            if walk.hold >= 0:
                start = _NON_SPACE.search(walk.buf, walk.hold).start()  # type: ignore[union-attr]
                oversized = walk.line_at(start)
                walk.hold = -1
            continue
        if char in _OPENERS:
            depth += 1
            continue
        if depth:
            depth -= char in _CLOSERS
            continue
        last = char != _COMMA
        if oversized:
            count += 1
            yield oversized, parse(None, oversized, lambda: 0)
        else:
            raw = walk.buf[walk.hold : walk.at]
            element = raw.strip()
            if element or not last or count:
                count += 1
                start = walk.hold + len(raw) - len(raw.lstrip())
                line = walk.line_at(start)
                yield line, parse(bytes(element), line, partial(walk.column_at, start))
        if last:
            walk.hold = -1
            return
        walk.hold, oversized = walk.scan, 0
    raise _cut_off(f"the JSON array (inside record {count + 1})")


def _chars(data: bytes | bytearray) -> int:
    """How many UTF-8 characters `data` holds: its bytes but continuation bytes."""
    if not data:
        return 0
    array = np.frombuffer(data, dtype=np.uint8)
    return len(data) - int(np.count_nonzero((array & 0xC0) == 0x80))
