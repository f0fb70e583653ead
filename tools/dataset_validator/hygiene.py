"""Duplicates, train/validation overlap, the split itself and template leftovers.

Two records are duplicates when their turns match once whitespace is taken out, so spacing,
line breaks and indentation cannot hide a copy. Each record leaves only a 16-byte keyed blake2b
digest behind: that is the memory the duplicate checks need per record; everything else streams.
The same digest places the record in training or validation, so the split is deterministic
(seeded), needs no second pass, and never puts two copies of a record on different sides.
"""

import re
from dataclasses import dataclass
from hashlib import blake2b
from operator import itemgetter

from tools.dataset_validator.formats import Example

DIGEST_BYTES = 16
ASCII_WHITESPACE = b" \t\n\r\x0b\x0c"
_SIDE_BITS = 64
_TURN_SEPARATOR, _PAIR_SEPARATOR, _ROLE_SEPARATOR = "\x1e", "\x1d", ","
_role, _text = itemgetter(0), itemgetter(1)
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
        self._key = seed.to_bytes(8, "little", signed=True)
        self._seen: dict[bytes, int] = {}

    def digest(self, example: Example) -> tuple[bytes, str]:
        """The record's digest, and its joined text (for the placeholder check)."""
        turns = example.turns
        text = _TURN_SEPARATOR.join(map(_text, turns))
        tags = _ROLE_SEPARATOR.join(map(_role, turns))
        if example.rejected is not None:
            rejected = example.rejected
            text = f"{text}{_PAIR_SEPARATOR}{_TURN_SEPARATOR.join(map(_text, rejected))}"
            tags = f"{tags}{_PAIR_SEPARATOR}{_ROLE_SEPARATOR.join(map(_role, rejected))}"
        if example.label is not None:
            tags = f"{tags}{_PAIR_SEPARATOR}{example.label}"
        key = blake2b(tags.encode(), digest_size=DIGEST_BYTES, key=self._key)
        key.update(text.encode("utf-8", "surrogatepass").translate(None, ASCII_WHITESPACE))
        return key.digest(), text

    def see(self, digest: bytes, dataset: int, validation: bool, record: int) -> Sighting | None:
        """Record a sighting; the earlier one if the digest was seen before, else None."""
        packed = (dataset << (_RECORD_BITS + 1)) | (record << 1) | validation
        first = self._seen.setdefault(digest, packed)
        if first == packed:
            return None
        return Sighting(
            dataset=first >> (_RECORD_BITS + 1),
            validation=bool(first & 1),
            record=(first >> 1) & ((1 << _RECORD_BITS) - 1),
        )


class Splitter:
    """Validation when the digest's first 8 bytes, as a fraction of 2**64, fall below the share."""

    def __init__(self, validation_share: float) -> None:
        self._below = int(validation_share * (1 << _SIDE_BITS))

    def is_validation(self, digest: bytes) -> bool:
        return int.from_bytes(digest[:8], "little") < self._below


class Placeholders:
    def __init__(self, pattern: str) -> None:
        self._search = re.compile(pattern).search

    def find(self, text: str) -> str | None:
        found = self._search(text)
        return found.group() if found else None
