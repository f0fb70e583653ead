"""Chat JSON Lines checked a batch at a time in native code.

Most records of a large dataset are plain, well-formed chat, and building a Python dict for each
and walking it is what makes a scan slow: about 30 µs a record, against 5 for orjson merely to
parse it. The native core (native/chat_lines.c: yyjson, the parser orjson itself uses, and
xxHash) takes a whole batch of lines, without the GIL, and returns what the scan needs of the
lines that are well-formed chat by the rules of FormatChecker._well_formed: digest, roles, token
lengths, whether a placeholder could be there. Each rule and constant it applies is handed to it
from the Python definitions. Every other line takes the record-by-record path, which words each
problem. Both paths give a record the same verdict, digest and length; the tests hold them to it.

The core is compiled when the package is installed (hatch_build.py). Where no C compiler was at
hand it is missing, and every line takes the record path: the same report, several times slower.
"""

from dataclasses import dataclass
from itertools import chain

import numpy as np
import orjson

from tools.dataset_validator.config import FormatsConfig
from tools.dataset_validator.formats import ALLOWED_ORDER, ROLE_OF_TAG, ROLE_TAGS, Example
from tools.dataset_validator.hygiene import (
    ASCII_WHITESPACE,
    DIGEST_BYTES,
    TURN_SEPARATOR,
    RecordIndex,
)
from tools.dataset_validator.kinds import Format, Role
from tools.dataset_validator.readers import LineBatch
from tools.dataset_validator.tokens import Conversations

try:
    from tools.dataset_validator import _chat_lines
except ImportError:  # built without a C compiler
    _chat_lines = None

ORJSON_MAX_DEPTH = 1024
"""orjson refuses a document nested deeper ("depth limit exceeded"), and so must the lane."""
_START = "^"  # the "previous role" of a conversation's first turn, for the turn-order pairs


@dataclass(frozen=True, slots=True)
class ChatBatch:
    """The rows of a batch that are well-formed chat, with what the scan needs of each, in
    batch order."""

    batch: LineBatch
    rows: np.ndarray
    """Positions in the batch's items."""
    tags: bytes
    """Every row's roles end to end, one ROLE_TAGS letter per turn."""
    offsets: np.ndarray
    """Row i's turns are turns offsets[i]..offsets[i + 1]."""
    turn_chars: np.ndarray
    """Each turn's length in characters."""
    digests: list[bytes]
    has_system: np.ndarray
    placeholder_candidates: np.ndarray
    """Positions (into `rows`) of the rows that could hold a placeholder."""

    def texts(self, position: int) -> list[str]:
        """One row's turn texts, parsed again: the preview and placeholder checks need a few
        rows' texts, and only a model's tokenizer needs them all (and costs far more)."""
        raw = self.batch.items[int(self.rows[position])][1]
        return [message["content"] for message in orjson.loads(raw)["messages"]]  # type: ignore[arg-type]

    def example(self, position: int) -> Example:
        """One row in the common shape (for the preview)."""
        start, end = self.offsets[position], self.offsets[position + 1]
        roles = map(ROLE_OF_TAG.__getitem__, self.tags[start:end].decode())
        turns = list(zip(roles, self.texts(position), strict=True))
        return Example(Format.CHAT, turns, has_system=bool(self.has_system[position]))

    def joined_text(self, position: int) -> str:
        """The row's turns joined as RecordIndex.digest joins them (for the placeholder check)."""
        return TURN_SEPARATOR.join(self.texts(position))

    @property
    def conversations(self) -> Conversations:
        """The rows as the token counter takes them."""
        return Conversations(
            offsets=self.offsets,
            chars=self.turn_chars,
            texts=lambda: list(chain.from_iterable(map(self.texts, range(len(self.rows))))),
        )


class ChatLane:
    """Takes the well-formed chat rows out of batches of JSON Lines."""

    @staticmethod
    def available() -> bool:
        """Whether the native core was built."""
        return _chat_lines is not None

    def __init__(self, config: FormatsConfig, index: RecordIndex, placeholder_literal: str):
        """`index` digests records as the lane must; `placeholder_literal`: what every
        placeholder starts with ("" when unknown: every row is a candidate)."""
        tag = ROLE_TAGS.__getitem__
        literal = "" if TURN_SEPARATOR in placeholder_literal else placeholder_literal
        pairs = "".join(f"{_START if p is None else tag(p)}{tag(r)}" for p, r in ALLOWED_ORDER)
        self._system = ord(tag(Role.SYSTEM))
        self._rules = (
            tuple(name.encode() for name in config.chat_roles),
            "".join(map(tag, config.chat_roles.values())).encode(),
            pairs.encode(),
            ASCII_WHITESPACE,
            TURN_SEPARATOR.encode(),
            tag(Role.ASSISTANT).encode(),
            _START.encode(),
            index.seed,
            literal.encode(),  # a match spanning two turns would need the separator in it
            ORJSON_MAX_DEPTH,
        )

    def read(self, batch: LineBatch) -> ChatBatch | None:
        """The batch's well-formed chat rows, or None when it holds none."""
        assert _chat_lines is not None, "ChatLane.available() says whether it can be used"
        rows, tags, turns, digests, chars, candidates = _chat_lines.scan(batch.items, *self._rules)
        if not rows:
            return None
        offsets = np.concatenate(([0], np.cumsum(np.frombuffer(turns, dtype=np.int64))))
        letters = np.frombuffer(tags, dtype=np.uint8)
        return ChatBatch(
            batch=batch,
            rows=np.frombuffer(rows, dtype=np.int64),
            tags=tags,
            offsets=offsets,
            turn_chars=np.frombuffer(chars, dtype=np.int64),
            digests=[digests[i : i + DIGEST_BYTES] for i in range(0, len(digests), DIGEST_BYTES)],
            has_system=letters[offsets[:-1]] == self._system,
            placeholder_candidates=np.flatnonzero(np.frombuffer(candidates, dtype=np.uint8)),
        )
