"""Which line each record of a file starts on, kept in little memory.

Records are numbered in order and lines only grow, so the gap between a record's line and its
number changes only where a record does not start on the line after the previous one's start:
after a blank line, a CSV row with line breaks, a multi-line array element. Only those points
are kept: one for JSON Lines without blank lines, at most one per record (16 bytes) for a file
of pretty-printed records. The warnings, which keep record numbers, look their lines up here.
"""

from array import array
from bisect import bisect_right

import numpy as np


class LineMap:
    def __init__(self) -> None:
        self._records = array("q")  # the first record of each stretch with one gap
        self._gaps = array("q")  # its line minus its record number

    def note(self, record: int, line: int) -> None:
        """Record `record` (after every earlier one) starts on `line`."""
        gap = line - record
        if not self._gaps or self._gaps[-1] != gap:
            self._records.append(record)
            self._gaps.append(gap)

    def note_many(self, first: int, lines: list[int]) -> None:
        """Records first, first + 1, ... start on `lines`."""
        if not lines:
            return
        gaps = np.asarray(lines, dtype=np.int64) - np.arange(first, first + len(lines))
        changes = np.flatnonzero(gaps[1:] != gaps[:-1]) + 1
        if not self._gaps or self._gaps[-1] != gaps[0]:
            changes = np.concatenate(([0], changes))
        self._records.extend((first + changes).tolist())
        self._gaps.extend(gaps[changes].tolist())

    def lines(self, records: list[int]) -> list[int]:
        """The lines of noted records (none when no record had a line)."""
        if not self._records:
            return []
        return [r + self._gaps[bisect_right(self._records, r) - 1] for r in records]
