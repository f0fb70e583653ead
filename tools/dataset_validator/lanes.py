"""Which lane reads a batch of JSON Lines: the one its first record fits.

A dataset is nearly always one layout from its first line to its last, so one look per batch
picks the lane (chat, TRL's standard pairs, TRL's conversational pairs), and no line of the
batch is tried against the other lanes' shapes; a line the lane does not take goes record by
record, as ever. When no lane's strict shape fits the first record, chat with other members
still goes to the chat lane (its lenient shape takes it), and anything else is parsed line by
line for the record path, with no decode tried in vain.
"""

from typing import Any

import numpy as np

from tools.dataset_validator.chat_lane import ChatLane
from tools.dataset_validator.config import FormatsConfig
from tools.dataset_validator.formats import detect
from tools.dataset_validator.hygiene import Placeholders, RecordIndex
from tools.dataset_validator.kinds import Format
from tools.dataset_validator.lane_batch import LaneBatch, offsets_of
from tools.dataset_validator.pair_lane import PairLane
from tools.dataset_validator.readers import LineBatch, ReadError, parse_record


class Lanes:
    def __init__(self, config: FormatsConfig, index: RecordIndex, placeholders: Placeholders):
        self._chat = ChatLane(config, index, placeholders)
        self._lanes: tuple[ChatLane | PairLane, ...] = (
            self._chat,
            PairLane(config, index, placeholders, conversational=False),
            PairLane(config, index, placeholders, conversational=True),
        )

    def read(self, batch: LineBatch) -> LaneBatch:
        """The batch as the lane its first record fits reads it, or every line parsed."""
        lane = self._lane_for(batch)
        return lane.read(batch) if lane is not None else _parsed(batch)

    def _lane_for(self, batch: LineBatch) -> ChatLane | PairLane | None:
        for _, raw in batch.items:
            if type(raw) is ReadError:
                continue
            for lane in self._lanes:
                if lane.fits(raw):
                    return lane
            value = parse_record(raw)
            if type(value) is dict:  # the first record: chat lenient, or none of the lanes
                return self._chat if detect(value) is Format.CHAT else None
        return None


def _parsed(batch: LineBatch) -> LaneBatch:
    """A batch no lane reads: every line parsed, for the record path."""
    others: list[tuple[int, Any]] = [
        (position, raw if type(raw) is ReadError else parse_record(raw))
        for position, (_, raw) in enumerate(batch.items)
    ]
    return LaneBatch(
        format=Format.CHAT,
        sequences=1,
        conversational=True,
        rows=np.zeros(0, dtype=np.int64),
        tags=[],
        texts=[],
        offsets=offsets_of([]),
        prompt_turns=None,
        digests=[],
        placeholders=[],
        others=others,
    )
