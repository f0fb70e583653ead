"""Duplicates, train/validation overlap, the split itself and template leftovers.

Two records are duplicates when their turns match once whitespace is taken out, so spacing,
line breaks and indentation cannot hide a copy. Each record leaves only a 16-byte digest behind
(XXH3-128 of its text without ASCII whitespace, seeded with split.seed and its roles): that is
the memory the duplicate checks need per record; everything else streams. The same digest places
the record in training or validation, so the split is deterministic (seeded), needs no second
pass, and never puts two copies of a record on different sides. XXH3 rather than a cryptographic
hash: nothing here defends against a crafted collision, and it hashes at memory speed.
"""

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter

import numpy as np
from xxhash import xxh3_64_intdigest, xxh3_128_digest

from tools.dataset_validator.conversation import ROLE_SEQUENCES_CACHED, ROLE_TAGS, bare
from tools.dataset_validator.formats import Example

DIGEST_BYTES = 16
TURN_SEPARATOR, PAIR_SEPARATOR, TOOLS_SEPARATOR = "\x1e", "\x1d", "\x1c"
"""A record's digest hashes its turns' texts joined by TURN_SEPARATOR (a pair's rejected side
follows a PAIR_SEPARATOR, the tools it declares a TOOLS_SEPARATOR), seeded with the hash of its
roles as ROLE_TAGS letters (and label)."""
BARE_TURN, BARE_PAIR = TURN_SEPARATOR.encode(), PAIR_SEPARATOR.encode()
_SIDE_BITS = 64
_text = itemgetter(1)
_RECORD_BITS = 40  # the record number packed into the index's value: up to 2**40 records


@dataclass(frozen=True, slots=True)
class Sighting:
    """Where a digest was first seen: which dataset, which side, which record."""

    dataset: int
    validation: bool
    record: int


class RecordIndex:
    """Every digest of one validation run, with its first sighting, looked up a batch at a time.

    Digests live in sorted NumPy runs, 24 bytes a record (a dict of bytes keys takes about 120),
    so the duplicate checks stay within the memory budget on large files. A batch is sorted,
    searched in each run and added as a run of its own; runs of similar size are merged, which
    keeps their number logarithmic in the records seen.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed % (1 << 64)  # XXH3 takes an unsigned 64-bit seed
        self._roles_seed = lru_cache(ROLE_SEQUENCES_CACHED)(self._roles_seed_of)
        self._runs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (high, low, first)

    def digest(self, example: Example) -> tuple[bytes, str]:
        """The record's digest, and its joined text (for the placeholder check)."""
        turns = example.turns
        text = TURN_SEPARATOR.join(map(_text, turns))
        tags = "".join([ROLE_TAGS[role] for role, _ in turns])
        if example.rejected is not None:
            rejected = example.rejected
            text = f"{text}{PAIR_SEPARATOR}{TURN_SEPARATOR.join(map(_text, rejected))}"
            tags = f"{tags}{PAIR_SEPARATOR}{''.join([ROLE_TAGS[role] for role, _ in rejected])}"
        if example.label is not None:
            tags = f"{tags}{PAIR_SEPARATOR}{example.label}"
        if example.tools:
            text = f"{text}{TOOLS_SEPARATOR}{example.tools_text()}"
        return self.digest_text(text, tags), text

    def digest_text(self, text: str, tags: str) -> bytes:
        """The digest of a record's joined text and role letters: what digest() computes, for
        the chat lane, which has both without building an Example."""
        return self.digest_bare(bare(text), tags)

    def digest_bare(self, data: bytes, tags: str) -> bytes:
        """digest_text of a text already bare: bare() of the joined text is the join of its
        pieces' bare() (no separator is whitespace), so a lane that bared each piece for its
        own checks joins them with BARE_TURN and BARE_PAIR instead of baring the whole again."""
        return xxh3_128_digest(data, self._roles_seed(tags))

    def _roles_seed_of(self, tags: str) -> int:
        """The seed a record's text is hashed with: the run's seed and the record's roles."""
        return xxh3_64_intdigest(tags.encode(), self.seed)

    def see_many(
        self, digests: Sequence[bytes], dataset: int, validation: np.ndarray, records: np.ndarray
    ) -> Iterator[tuple[int, Sighting]]:
        """Record sightings of records in file order: (position, the first sighting) for each
        one whose digest was seen before, in this batch or an earlier one."""
        if not digests:
            return
        halves = np.frombuffer(b"".join(digests), dtype="<u8").reshape(-1, 2)
        high, low = halves[:, 0], halves[:, 1]
        mine = (np.asarray(records, dtype=np.int64) << 1) | np.asarray(validation, dtype=np.int64)
        mine |= dataset << (_RECORD_BITS + 1)
        order = np.lexsort((np.arange(len(high)), low, high))  # by digest, then file order
        sorted_high, sorted_low = high[order], low[order]
        new_digest = np.ones(len(order), dtype=bool)
        new_digest[1:] = (sorted_high[1:] != sorted_high[:-1]) | (sorted_low[1:] != sorted_low[:-1])
        firsts = order[new_digest]  # each distinct digest's first position in the batch
        first_high, first_low = sorted_high[new_digest], sorted_low[new_digest]
        earlier = self._find(first_high, first_low)
        unseen = earlier < 0
        self._add(first_high[unseen], first_low[unseen], mine[firsts][unseen])
        first = np.where(earlier >= 0, earlier, mine[firsts])
        group = np.cumsum(new_digest) - 1  # which distinct digest each sorted position holds
        first_of = np.empty(len(order), dtype=np.int64)
        first_of[order] = first[group]
        for position in np.flatnonzero(first_of != mine).tolist():
            yield position, _unpack(int(first_of[position]))

    def _find(self, high: np.ndarray, low: np.ndarray) -> np.ndarray:
        """The first sighting of each digest, or -1 where it was never seen."""
        found = np.full(len(high), -1, dtype=np.int64)
        for run_high, run_low, run_first in self._runs:
            rows = np.flatnonzero(found < 0)
            at = np.searchsorted(run_high, high[rows])
            while len(rows):  # more than one pass only where first halves collide
                keep = at < len(run_high)
                rows, at = rows[keep], at[keep]
                keep = run_high[at] == high[rows]
                rows, at = rows[keep], at[keep]
                hit = run_low[at] == low[rows]
                found[rows[hit]] = run_first[at[hit]]
                rows, at = rows[~hit], at[~hit] + 1
        return found

    def _add(self, high: np.ndarray, low: np.ndarray, first: np.ndarray) -> None:
        runs = self._runs
        runs.append((high, low, first))
        while len(runs) > 1 and len(runs[-1][0]) * 2 >= len(runs[-2][0]):
            (h2, l2, f2), (h1, l1, f1) = runs.pop(), runs.pop()
            merged_high, merged_low = np.concatenate((h1, h2)), np.concatenate((l1, l2))
            # _find needs equal first halves together, not the second halves in order; sorted
            # by the first half alone, two sorted runs merge in one pass (timsort finds them)
            order = np.argsort(merged_high, kind="stable")
            runs.append((merged_high[order], merged_low[order], np.concatenate((f1, f2))[order]))


def _unpack(packed: int) -> Sighting:
    return Sighting(
        dataset=packed >> (_RECORD_BITS + 1),
        validation=bool(packed & 1),
        record=(packed >> 1) & ((1 << _RECORD_BITS) - 1),
    )


class Splitter:
    """Validation when the digest's first 8 bytes, as a fraction of 2**64, fall below the share."""

    def __init__(self, validation_share: float) -> None:
        self._below = int(validation_share * (1 << _SIDE_BITS))

    def is_validation(self, digest: bytes) -> bool:
        return int.from_bytes(digest[:8], "little") < self._below

    def validation_mask(self, digests: Sequence[bytes]) -> np.ndarray:
        """is_validation for many digests at once."""
        if not digests:
            return np.zeros(0, dtype=bool)
        heads = np.frombuffer(b"".join(digests), dtype="<u8")[:: DIGEST_BYTES // 8]
        return heads < np.uint64(self._below)


class Placeholders:
    """Template leftovers: warnings.placeholder_pattern searched in a record's joined text (re
    looks for a pattern's literal prefix on its own, so no text needs filtering first)."""

    def __init__(self, pattern: str) -> None:
        self._search = re.compile(pattern).search

    def find(self, text: str) -> str | None:
        found = self._search(text)
        return found.group() if found else None
