"""Duplicates, train/validation overlap, the split itself and template leftovers.

Two records are duplicates when their turns match once whitespace is taken out, so spacing,
line breaks and indentation cannot hide a copy. Each record leaves only a 16-byte digest behind
(XXH3-128 seeded with split.seed, over its roles and its text without ASCII whitespace): that is
the memory the duplicate checks need per record; everything else streams. The same digest places
the record in training or validation, so the split is deterministic (seeded), needs no second
pass, and never puts two copies of a record on different sides. XXH3 rather than a cryptographic
hash: nothing here defends against a crafted collision, and it hashes at memory speed.
"""

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter

import numpy as np
from xxhash import xxh3_128_digest

from tools.dataset_validator.formats import ROLE_TAGS, Example

DIGEST_BYTES = 16
ASCII_WHITESPACE = b" \t\n\r\x0b\x0c"
TURN_SEPARATOR, PAIR_SEPARATOR = "\x1e", "\x1d"
"""A record's digest input: its roles as ROLE_TAGS letters, PAIR_SEPARATOR, then its turns' texts
joined by TURN_SEPARATOR (a pair's rejected side, or a label, follows a PAIR_SEPARATOR)."""
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
    """Every digest of one validation run, with its first sighting."""

    def __init__(self, seed: int) -> None:
        self.seed = seed % (1 << 64)  # XXH3 takes an unsigned 64-bit seed
        self._seen: dict[bytes, int] = {}

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
        data = f"{tags}{PAIR_SEPARATOR}{text}".encode("utf-8", "surrogatepass")
        return xxh3_128_digest(data.translate(None, ASCII_WHITESPACE), self.seed), text

    def see(self, digest: bytes, dataset: int, validation: bool, record: int) -> Sighting | None:
        """Record a sighting; the earlier one if the digest was seen before, else None."""
        packed = (dataset << (_RECORD_BITS + 1)) | (record << 1) | validation
        first = self._seen.setdefault(digest, packed)
        return None if first == packed else _unpack(first)

    def see_many(
        self, digests: Sequence[bytes], dataset: int, validation: np.ndarray, records: np.ndarray
    ) -> Iterator[tuple[int, Sighting]]:
        """see() for records in order: (position, earlier sighting) for each one seen before."""
        packed = (records.astype(np.int64) << 1) | validation
        packed |= dataset << (_RECORD_BITS + 1)
        setdefault = self._seen.setdefault
        for position, (digest, mine) in enumerate(zip(digests, packed.tolist(), strict=True)):
            first = setdefault(digest, mine)
            if first != mine:
                yield position, _unpack(first)


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
    def __init__(self, pattern: str) -> None:
        self._search = re.compile(pattern).search
        self.literal = _leading_literal(pattern)
        """Text every match starts with ("" if none): a text without it need not be searched."""

    def find(self, text: str) -> str | None:
        found = self._search(text)
        return found.group() if found else None


def _leading_literal(pattern: str) -> str:
    """The literal characters the pattern's every match begins with, read off the parse tree
    of Python's own regex compiler (whose module is private, hence the care)."""
    try:
        from re import _constants, _parser  # type: ignore[attr-defined]

        parsed = _parser.parse(pattern)
        if parsed.state.flags & ~(_constants.SRE_FLAG_UNICODE):
            return ""  # IGNORECASE and the like change what a literal matches
        literal = []
        for op, value in parsed:
            if op is not _constants.LITERAL:
                break
            literal.append(chr(value))
        return "".join(literal)
    except (ImportError, AttributeError, TypeError, re.error):
        return ""
