"""Chat JSON Lines checked a batch at a time: msgspec decodes each line into the well-formed shape.

Most records of a large dataset are plain, well-formed chat, and building a dict for each and
walking it in Python is what makes the record path slow. msgspec decodes a line straight into
Structs of that shape (a `messages` list of objects whose `role` is a configured name and whose
`content` is a string) and refuses any other; the lane holds what it takes to the rest of the
rules (formats.well_formed), digests it with RecordIndex.digest_text, and the scan then handles the
batch's rows together. Every other line goes record by record, where FormatChecker words each
problem (msgspec's own message, such as "at `$.messages[2].role`", is not used: the report stays
the record path's word for word). Both paths give a record the same verdict, digest and length;
the tests hold them to it.

Two shapes: the strict one admits no member it does not read, so every byte of a line it takes
is one msgspec checked, as strictly as orjson does (UTF-8, escapes, surrogates). msgspec skips
unread members without those checks (invalid UTF-8, 1e309, nesting depth), so a line with other
members (an "id", a "weight") is parsed by orjson, the record path's own parser, and its
messages are converted into the lenient shape. Members the record path reads go there instead:
a message's tool calls, name or reasoning, and a record's tools, media or label.
"""

from typing import Any, Literal

import msgspec
import numpy as np

from tools.dataset_validator.config import FormatsConfig
from tools.dataset_validator.conversation import ROLE_TAGS, cached_order, well_formed
from tools.dataset_validator.formats import MESSAGE_FIELDS, detect
from tools.dataset_validator.hygiene import TURN_SEPARATOR, Placeholders, RecordIndex
from tools.dataset_validator.kinds import Format
from tools.dataset_validator.lane_batch import LaneBatch, offsets_of
from tools.dataset_validator.readers import LineBatch, ReadError, parse_record

_UNPARSED: Any = object()  # a line orjson has not parsed (yet)


def _shape(roles: tuple[str, ...], *, strict: bool) -> type[msgspec.Struct]:
    """The well-formed chat record as Structs; `strict`: refusing members it does not read,
    else refusing only the message members the record path reads (MESSAGE_FIELDS)."""
    absent = [(key, msgspec.UnsetType, msgspec.UNSET) for key in MESSAGE_FIELDS]
    message = msgspec.defstruct(
        "Message",
        [("role", Literal[roles]), ("content", str), *([] if strict else absent)],  # type: ignore[valid-type]
        forbid_unknown_fields=strict,
        gc=False,
    )
    return msgspec.defstruct(
        "ChatRecord", [("messages", list[message])], forbid_unknown_fields=strict, gc=False
    )


class ChatLane:
    """Splits batches of JSON Lines into the well-formed chat rows and the rest."""

    def __init__(self, config: FormatsConfig, index: RecordIndex, placeholders: Placeholders):
        """`index` digests the rows as the record path does; `placeholders` finds leftovers."""
        roles = tuple(config.chat_roles)
        self._record_path_fields = frozenset(("tools", *config.media_fields))
        self._decode = msgspec.json.Decoder(_shape(roles, strict=True)).decode
        self._lenient = _shape(roles, strict=False)
        self._tag = {name: ROLE_TAGS[role] for name, role in config.chat_roles.items()}
        self._ordered = cached_order()
        self._digest = index.digest_text
        self._find = placeholders.find

    def fits(self, raw: bytes) -> bool:
        """Whether a line is well-formed chat in the strict shape (how Lanes picks a lane)."""
        try:
            self._decode(raw)
        except msgspec.DecodeError:
            return False
        return True

    def read(self, batch: LineBatch) -> LaneBatch:
        """The batch's well-formed chat rows, and every other row parsed as the record path
        parses it (by orjson, once: the record path takes the value as it is)."""
        rows: list[int] = []
        tags: list[str] = []
        texts: list[str] = []
        counts: list[int] = []
        digests: list[bytes] = []
        found: list[tuple[int, str]] = []
        others: list[tuple[int, Any]] = []
        decode, tag, ordered = self._decode, self._tag, self._ordered
        digest, find = self._digest, self._find
        for position, (_, raw) in enumerate(batch.items):
            if type(raw) is ReadError:
                others.append((position, raw))
                continue
            value = _UNPARSED
            try:
                messages = decode(raw).messages
            except msgspec.DecodeError:  # ValidationError too: not the strict shape
                value = parse_record(raw)
                messages = self._messages(value)
                if messages is None:
                    others.append((position, value))
                    continue
            # comprehensions: Python reads a Struct's fields faster than attrgetter calls do
            turns = [message.content for message in messages]
            roles = "".join([tag[message.role] for message in messages])
            if not well_formed(roles, turns, ordered):
                others.append((position, parse_record(raw) if value is _UNPARSED else value))
                continue
            text = TURN_SEPARATOR.join(turns)
            placeholder = find(text)
            if placeholder is not None:
                found.append((len(rows), placeholder))
            rows.append(position)
            tags.append(roles)
            texts += turns
            counts.append(len(turns))
            digests.append(digest(text, roles))
        return LaneBatch(
            format=Format.CHAT,
            sequences=1,
            conversational=True,
            rows=np.array(rows, dtype=np.int64),
            tags=tags,
            texts=texts,
            offsets=offsets_of(counts),
            prompt_turns=None,
            digests=digests,
            placeholders=found,
            others=others,
        )

    def _messages(self, value: Any) -> list[Any] | None:
        """A parsed chat record's messages in the lenient shape, or None when it is not one
        (or holds what only the record path reads)."""
        if (
            type(value) is not dict
            or detect(value) is not Format.CHAT
            or not self._record_path_fields.isdisjoint(value)
        ):
            return None
        try:
            return msgspec.convert(value, self._lenient).messages  # type: ignore[attr-defined]
        except msgspec.ValidationError:
            return None
