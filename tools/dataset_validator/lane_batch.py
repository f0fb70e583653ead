"""What a lane hands the scan: a batch of JSON Lines split into the rows it took, with what the
scan needs of each, and every other row, parsed, for the record path.

A row is one sequence (a chat record) or two (a preference pair: chosen, then rejected, each
with the prompt's turns in front, as the record path's Example has them), so tokens are measured
per sequence and the scan takes each row's longest sequence and their sum, as it does for an
Example.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np

from tools.dataset_validator.conversation import ROLE_OF_TAG, ROLE_TAGS, Turn
from tools.dataset_validator.formats import Example
from tools.dataset_validator.kinds import Format, Role
from tools.dataset_validator.tokens import Conversations

_SYSTEM = ROLE_TAGS[Role.SYSTEM]


@dataclass(frozen=True, slots=True)
class LaneBatch:
    format: Format
    """The format of every row the lane took."""
    sequences: int
    """Sequences per row: 1, or 2 for a pair (chosen, rejected)."""
    conversational: bool
    rows: np.ndarray
    """Positions in the batch's items of the rows the lane took, ascending."""
    tags: list[str]
    """Each sequence's roles, one ROLE_TAGS letter per turn."""
    texts: list[str]
    """Every sequence's turn texts, end to end."""
    offsets: np.ndarray
    """Sequence i's turns are texts[offsets[i]:offsets[i + 1]]."""
    prompt_turns: list[int] | None
    """Each pair's prompt turns (None for chat)."""
    digests: list[bytes]
    placeholders: list[tuple[int, str]]
    """(position in rows, the placeholder found) for each row that holds one."""
    others: list[tuple[int, Any]]
    """(position in the batch's items, parsed value or ReadError) for every other row."""

    @property
    def has_system(self) -> np.ndarray:
        """Per row: its (first) sequence opens with a system turn."""
        if not self.tags:
            return np.zeros(0, dtype=bool)
        letters = np.frombuffer("".join(self.tags).encode(), dtype=np.uint8)
        firsts = self.offsets[:-1][:: self.sequences]
        return letters[firsts] == ord(_SYSTEM)

    def _turns(self, sequence: int) -> list[Turn]:
        tags, start = self.tags[sequence], int(self.offsets[sequence])
        roles = map(ROLE_OF_TAG.__getitem__, tags)
        return list(zip(roles, self.texts[start : start + len(tags)], strict=True))

    def example(self, position: int) -> Example:
        """One row in the common shape (for the preview)."""
        first = position * self.sequences
        turns = self._turns(first)
        has_system = self.conversational and turns[0][0] is Role.SYSTEM
        if self.sequences == 1:
            return Example(self.format, turns, has_system=has_system)
        return Example(
            self.format,
            turns,
            rejected=self._turns(first + 1),
            conversational=self.conversational,
            has_system=has_system,
            prompt_turns=self.prompt_turns[position] if self.prompt_turns else None,
        )

    @property
    def conversations(self) -> Conversations:
        """Every sequence as the token counter takes them."""
        chars = np.fromiter(map(len, self.texts), np.int64, len(self.texts))
        return Conversations(
            offsets=self.offsets,
            chars=chars,
            texts=lambda: self.texts,
            framed=self.conversational,
        )


def offsets_of(counts: list[int]) -> np.ndarray:
    """Where each sequence's turns start, and the end: the cumulative turn counts from 0."""
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets
