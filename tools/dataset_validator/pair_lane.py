"""TRL's preference pairs checked a batch at a time, as chat_lane.py checks chat.

msgspec decodes a line straight into one strict shape, {"prompt", "chosen", "rejected"} as
strings (TRL's standard form) or as lists of {"role", "content"} messages (its conversational
form), refusing any other member; the lane then applies the record path's rules (answers not
blank nor the same once whitespace is ignored; each side, after the prompt, a well-formed
conversation) and digests the pair as hygiene.RecordIndex.digest does (from the answers' bare
text it compared, not baring the whole pair again). Every other line (other
members, a fault to word) goes record by record; both give a record the same verdict, digest
and length, and the tests hold them to it.
"""

from collections.abc import Callable
from typing import Any, Literal

import msgspec
import numpy as np

from tools.dataset_validator.config import FormatsConfig
from tools.dataset_validator.conversation import ROLE_TAGS, bare, cached_order, well_formed
from tools.dataset_validator.hygiene import (
    BARE_PAIR,
    BARE_TURN,
    PAIR_SEPARATOR,
    TURN_SEPARATOR,
    Placeholders,
    RecordIndex,
)
from tools.dataset_validator.kinds import Format, Role
from tools.dataset_validator.lane_batch import LaneBatch, offsets_of
from tools.dataset_validator.readers import LineBatch, ReadError, parse_record

_USER, _ASSISTANT = ROLE_TAGS[Role.USER], ROLE_TAGS[Role.ASSISTANT]
Sequences = tuple[str, list[str], str, list[str], int, bytes]
"""(chosen's role letters, chosen's texts, rejected's, rejected's, prompt turns, the pair's text
bare as the digest takes it): each side with the prompt's turns in front."""


class _TextPair(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    prompt: str
    chosen: str
    rejected: str


def _message_pair(roles: tuple[str, ...]) -> type[msgspec.Struct]:
    message = msgspec.defstruct(
        "Message",
        [("role", Literal[roles]), ("content", str)],  # type: ignore[valid-type]
        forbid_unknown_fields=True,
        gc=False,
    )
    return msgspec.defstruct(
        "MessagePair",
        [("prompt", list[message]), ("chosen", list[message]), ("rejected", list[message])],
        forbid_unknown_fields=True,
        gc=False,
    )


class PairLane:
    """Splits batches of JSON Lines into the well-formed pairs of one form and the rest."""

    def __init__(
        self,
        config: FormatsConfig,
        index: RecordIndex,
        placeholders: Placeholders,
        *,
        conversational: bool,
    ) -> None:
        """`conversational`: message lists, else strings."""
        shape = _message_pair(tuple(config.chat_roles)) if conversational else _TextPair
        self._decode = msgspec.json.Decoder(shape).decode
        self._tag = {name: ROLE_TAGS[role] for name, role in config.chat_roles.items()}
        self._ordered = cached_order()
        self._sequences: Callable[[Any], Sequences | None] = (
            self._messages if conversational else self._strings
        )
        self.conversational = conversational
        self._digest = index.digest_bare
        self._find = placeholders.find

    def fits(self, raw: bytes) -> bool:
        """Whether a line is a pair in this lane's strict shape."""
        try:
            self._decode(raw)
        except msgspec.DecodeError:
            return False
        return True

    def read(self, batch: LineBatch) -> LaneBatch:
        rows: list[int] = []
        tags: list[str] = []
        texts: list[str] = []
        counts: list[int] = []
        prompts: list[int] = []
        digests: list[bytes] = []
        found: list[tuple[int, str]] = []
        others: list[tuple[int, Any]] = []
        decode, sequences, digest, find = self._decode, self._sequences, self._digest, self._find
        for position, (_, raw) in enumerate(batch.items):
            if type(raw) is ReadError:
                others.append((position, raw))
                continue
            try:
                pair = sequences(decode(raw))
            except msgspec.DecodeError:  # ValidationError too: not the strict shape
                pair = None
            if pair is None:
                others.append((position, parse_record(raw)))
                continue
            chosen_tags, chosen, rejected_tags, rejected, prompt, data = pair
            text = f"{TURN_SEPARATOR.join(chosen)}{PAIR_SEPARATOR}{TURN_SEPARATOR.join(rejected)}"
            placeholder = find(text)
            if placeholder is not None:
                found.append((len(rows), placeholder))
            rows.append(position)
            tags += (chosen_tags, rejected_tags)
            texts += chosen
            texts += rejected
            counts += (len(chosen), len(rejected))
            prompts.append(prompt)
            digests.append(digest(data, f"{chosen_tags}{PAIR_SEPARATOR}{rejected_tags}"))
        return LaneBatch(
            format=Format.PREFERENCE,
            sequences=2,
            conversational=self.conversational,
            rows=np.array(rows, dtype=np.int64),
            tags=tags,
            texts=texts,
            offsets=offsets_of(counts),
            prompt_turns=prompts,
            digests=digests,
            placeholders=found,
            others=others,
        )

    def _strings(self, pair: Any) -> Sequences | None:
        """A standard pair: a user turn (when the prompt is not empty) and each answer."""
        prompt, chosen, rejected = pair.prompt, pair.chosen, pair.rejected
        if not chosen or chosen.isspace() or not rejected or rejected.isspace():
            return None
        chosen_bare, rejected_bare = bare(chosen), bare(rejected)
        if chosen_bare == rejected_bare:
            return None
        if not prompt:
            data = chosen_bare + BARE_PAIR + rejected_bare
            return _ASSISTANT, [chosen], _ASSISTANT, [rejected], 0, data
        head = bare(prompt) + BARE_TURN
        data = head + chosen_bare + BARE_PAIR + head + rejected_bare
        tags = f"{_USER}{_ASSISTANT}"
        return tags, [prompt, chosen], tags, [prompt, rejected], 1, data

    def _messages(self, pair: Any) -> Sequences | None:
        """A conversational pair: the prompt's turns, then each side's."""
        tag, ordered = self._tag, self._ordered
        prompt, chosen, rejected = pair.prompt, pair.chosen, pair.rejected
        if not prompt or not chosen or not rejected:
            return None
        # comprehensions, as in the chat lane: faster than attrgetter over Structs
        prompt_tags = "".join([tag[message.role] for message in prompt])
        prompt_texts = [message.content for message in prompt]
        chosen_tags = prompt_tags + "".join([tag[message.role] for message in chosen])
        rejected_tags = prompt_tags + "".join([tag[message.role] for message in rejected])
        chosen_texts = prompt_texts + [message.content for message in chosen]
        rejected_texts = prompt_texts + [message.content for message in rejected]
        start = len(prompt)
        if not well_formed(chosen_tags, chosen_texts, ordered) or not well_formed(
            rejected_tags, rejected_texts, ordered
        ):
            return None
        head = list(map(bare, prompt_texts))
        chosen_bare = [*head, *map(bare, chosen_texts[start:])]
        rejected_bare = [*head, *map(bare, rejected_texts[start:])]
        if chosen_tags[start:] == rejected_tags[start:] and chosen_bare == rejected_bare:
            return None
        data = BARE_TURN.join(chosen_bare) + BARE_PAIR + BARE_TURN.join(rejected_bare)
        return chosen_tags, chosen_texts, rejected_tags, rejected_texts, start, data
