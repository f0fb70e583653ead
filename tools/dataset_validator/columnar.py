"""Chat records checked a batch of JSON Lines at a time, column by column, in Arrow.

Most records of a large dataset have nothing wrong with them, and checking them one Python dict
at a time is what makes a scan slow. Here Arrow's JSON reader parses a whole batch of lines
against the chat schema (in C++, batches in parallel) and each rule of FormatChecker._well_formed is
applied to whole columns: known roles, non-blank contents, the turn order, an assistant turn.
The rows that pass come out with what the scan needs of them: digest, system turn, token length,
placeholder candidates. Every other row, and every batch Arrow cannot read as chat, takes the
record-by-record path, which words each problem. Both paths give a record the same verdict,
digest and length; the tests hold them to it.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import pairwise

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
from xxhash import xxh3_128_digest

from tools.dataset_validator.config import FormatsConfig
from tools.dataset_validator.formats import ROLE_OF_TAG, ROLE_TAGS, WELL_ORDERED, Example
from tools.dataset_validator.hygiene import TURN_SEPARATOR
from tools.dataset_validator.kinds import Format, Role
from tools.dataset_validator.readers import LineBatch
from tools.dataset_validator.tokens import Conversations

_MESSAGES = "messages"
_SCHEMA = pa.schema(
    [(_MESSAGES, pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())])))]
)
_PARSE = pj.ParseOptions(explicit_schema=_SCHEMA, unexpected_field_behavior="ignore")
# What str.isspace() calls whitespace (U+3000, the ideographic space, is the highest such code
# point), as an RE2 class: a content is not blank when it holds a character outside it.
_NOT_BLANK = "[^{}]".format(
    "".join(f"\\x{{{code:x}}}" for code in range(0x3001) if chr(code).isspace())
)
# what JSON writes escaped besides \uXXXX: the quote, the backslash, the slash, control characters
_JSON_ESCAPED = frozenset('"\\/' + "".join(map(chr, range(0x20))))
_UNUSABLE = b"x"  # the tag of a turn whose role is unknown or missing: no order admits it
_SPACE, _CONTROL_SPACES = ord(" "), (ord("\t"), ord("\r"))  # ASCII_WHITESPACE: \t..\r, " "


@dataclass(frozen=True, slots=True)
class ChatBatch:
    """The chat rows of a batch that passed every check (`rows`: their positions in the batch),
    with what the scan needs of each, in the same order."""

    rows: np.ndarray
    """Positions in the batch's items."""
    digests: list[bytes]
    has_system: np.ndarray
    texts: pa.ListArray
    """Each passing row's turn texts."""
    tags: pa.StringArray
    """Each passing row's roles, one ROLE_TAGS letter per turn."""
    placeholder_candidates: np.ndarray
    """Positions (into `rows`) of the texts that could hold a placeholder."""

    def example(self, position: int) -> Example:
        """One passing row in the common shape (for the preview)."""
        roles = map(ROLE_OF_TAG.__getitem__, self.tags[position].as_py())
        turns = list(zip(roles, self.texts[position].as_py(), strict=True))
        return Example(Format.CHAT, turns, has_system=bool(self.has_system[position]))

    @property
    def conversations(self) -> Conversations:
        """The passing rows as the token counter takes them."""
        texts = self.texts
        return Conversations(
            offsets=texts.offsets.to_numpy(),
            chars=pc.utf8_length(texts.values).to_numpy(zero_copy_only=False),
            texts=texts.values.to_pylist,
        )

    def joined_text(self, position: int) -> str:
        """The row's turns joined as RecordIndex.digest joins them (for the placeholder check)."""
        return TURN_SEPARATOR.join(self.texts[position].as_py())


class ChatColumns:
    """Reads batches of JSON Lines as chat; holds the role names the config accepts."""

    def __init__(
        self,
        config: FormatsConfig,
        roles_seed: Callable[[str], int],
        placeholder_literal: str,
        block: int,
    ):
        """`roles_seed`: RecordIndex.roles_seed, so both paths digest a record alike."""
        names = list(config.chat_roles)
        self._names = pa.array(names)
        # each known name's tag letter, then _UNUSABLE for an unknown or missing role
        self._letters = np.frombuffer(
            "".join(ROLE_TAGS[config.chat_roles[name]] for name in names).encode() + _UNUSABLE,
            dtype=np.uint8,
        )
        self._order = f"^(?:{WELL_ORDERED.pattern})$"
        self._assistant = ROLE_TAGS[Role.ASSISTANT]
        self._system = ord(ROLE_TAGS[Role.SYSTEM])
        self._roles_seed = roles_seed
        self._literal = placeholder_literal
        # batches are parsed in parallel on the scan's threads; Arrow's own pool would compete
        self._read = pj.ReadOptions(use_threads=False, block_size=block)

    def read(self, batch: LineBatch) -> ChatBatch | None:
        """The batch's records that are well-formed chat, or None when Arrow cannot read the
        batch as chat at all (a line that is not an object, a field of another type, ...)."""
        lines = [raw for _, raw in batch.items if type(raw) is bytes]
        if not lines:
            return None
        data = b"".join(lines)  # type: ignore[arg-type]
        try:
            table = pj.read_json(
                pa.BufferReader(data), read_options=self._read, parse_options=_PARSE
            )
            # Arrow passes on string bytes that are not UTF-8 without a word
            table.validate(full=True)
        except (pa.ArrowException, ValueError):
            return None
        if table.num_rows != len(lines):  # two objects on a line, one across lines
            return None
        messages = table.column(_MESSAGES).combine_chunks()
        if messages.null_count == len(messages):
            return None
        chat = self._passing(messages, may_hold_placeholder=self._may_hold_placeholder(data))
        if len(lines) < len(batch.items):  # rows are lines; the batch also holds ReadErrors
            at = [i for i, (_, raw) in enumerate(batch.items) if type(raw) is bytes]
            chat = replace(chat, rows=np.asarray(at)[chat.rows])
        return chat

    def _may_hold_placeholder(self, data: bytes) -> bool:
        """Whether any text of the raw batch may begin a placeholder: the literal is there as
        written, or an escape could spell it otherwise (a \\uXXXX escape is one)."""
        literal = self._literal
        if not literal or any(char in _JSON_ESCAPED for char in literal):
            return True
        return literal.encode() in data or b"\\u" in data

    def _passing(self, messages: pa.ListArray, may_hold_placeholder: bool) -> ChatBatch:
        offsets = messages.offsets.to_numpy()
        role, content = messages.values.flatten()
        known = pc.index_in(role, value_set=self._names)
        codes = pc.fill_null(known, len(self._names)).to_numpy(zero_copy_only=False)
        letters = self._letters[codes]
        tags = pa.StringArray.from_buffers(
            len(messages), pa.py_buffer(offsets), pa.py_buffer(letters)
        )
        usable = pc.fill_null(pc.match_substring_regex(content, _NOT_BLANK), False)
        faulty = np.concatenate(([0], np.cumsum(~usable.to_numpy(zero_copy_only=False))))
        passing = (
            messages.is_valid().to_numpy(zero_copy_only=False)
            & (faulty[offsets[1:]] == faulty[offsets[:-1]])
            & pc.match_substring_regex(tags, self._order).to_numpy(zero_copy_only=False)
            & pc.match_substring(tags, self._assistant).to_numpy(zero_copy_only=False)
        )
        rows = np.flatnonzero(passing)
        if len(rows) < len(messages):
            chosen = pa.array(rows)
            messages, tags = messages.take(chosen), tags.take(chosen)
        texts = pa.ListArray.from_arrays(messages.offsets, messages.values.flatten()[1])
        joined = pc.binary_join(texts, TURN_SEPARATOR)
        first_tags = letters[offsets[:-1][passing]] if len(rows) else letters[:0]
        return ChatBatch(
            rows=rows,
            digests=self._digests(tags, joined),
            has_system=first_tags == self._system,
            texts=texts,
            tags=tags,
            placeholder_candidates=(
                np.arange(len(rows))
                if not self._literal
                else np.flatnonzero(
                    pc.match_substring(joined, self._literal).to_numpy(zero_copy_only=False)
                )
                if may_hold_placeholder
                else np.zeros(0, dtype=np.int64)
            ),
        )

    def _digests(self, tags: pa.StringArray, joined: pa.StringArray) -> list[bytes]:
        """RecordIndex.digest of each row: its joined text without ASCII whitespace (removed
        for the whole batch at once), hashed with the seed of its roles."""
        if not len(joined):
            return []
        _, offsets, data = joined.buffers()
        first = joined.offset
        starts = np.frombuffer(offsets, dtype=np.int32)[first : first + len(joined) + 1]
        raw = np.frombuffer(data, dtype=np.uint8)[: starts[-1]]
        low, high = _CONTROL_SPACES
        blank = (raw - np.uint8(low) <= high - low) | (raw == _SPACE)  # uint8 wraps below \t
        spaces = np.flatnonzero(blank)
        packed = np.compress(~blank, raw).tobytes()
        bounds = (starts - np.searchsorted(spaces, starts)).tolist()
        view, seed = memoryview(packed), self._roles_seed
        return [
            xxh3_128_digest(view[a:b], seed(roles))
            for (a, b), roles in zip(pairwise(bounds), tags.to_pylist(), strict=True)
        ]
