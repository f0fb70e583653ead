"""Token counts per record: the selected model's own tokenizer when it can be had, else an estimate.

Either way a conversational record also gets `tokens_per_message` for the chat template's framing
of each turn (role markers, separators), which the bare text does not contain.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import Protocol

import numpy as np
from tokenizers import Tokenizer

from tools.dataset_validator.config import TokensConfig
from tools.dataset_validator.conversation import Turn
from tools.dataset_validator.formats import Example
from tools.dataset_validator.hub import HubAccess, tokenizer_file
from tools.dataset_validator.results import TokenizerInfo


class TokenCounter(Protocol):
    info: TokenizerInfo

    def measure(self, examples: list[Example]) -> list[tuple[int, int]]:
        """Per example: (its longest sequence, the tokens an epoch processes for it)."""
        ...

    def measure_conversations(self, batch: "Conversations") -> np.ndarray:
        """The tokens of each conversation of a batch."""
        ...


@dataclass(frozen=True, slots=True)
class Conversations:
    """Conversations as their turns end to end: conversation i is turns offsets[i]..offsets[i+1];
    `chars` holds each turn's length in characters, `texts` gives the turns' texts on demand
    (a tokenizer needs them, the estimate does not). `framed`: the turns are messages a chat
    template frames (not plain strings)."""

    offsets: np.ndarray
    chars: np.ndarray
    texts: Callable[[], list[str]]
    framed: bool = True

    def per_conversation(self, per_turn: np.ndarray) -> np.ndarray:
        """Sum a value per turn into one per conversation."""
        summed = np.concatenate(([0], np.cumsum(per_turn, dtype=np.int64)))
        return summed[self.offsets[1:]] - summed[self.offsets[:-1]]

    def framing(self, per_message: int) -> np.ndarray:
        return (per_message if self.framed else 0) * np.diff(self.offsets).astype(np.int64)


_text = itemgetter(1)


def _framing(example: Example, turns: int, per_message: int) -> int:
    return per_message * turns if example.conversational else 0


class EstimatedTokens:
    """characters / chars_per_token, rounded up, plus the per-message framing."""

    def __init__(self, config: TokensConfig, reason: str) -> None:
        self._chars_per_token = config.chars_per_token
        self._per_message = config.tokens_per_message
        self.info = TokenizerInfo(
            kind="estimate",
            detail=f"estimated as characters / {config.chars_per_token:g} + "
            f"{config.tokens_per_message} per message (OpenAI's rule of thumb), because "
            f"{reason}",
        )

    def measure(self, examples: list[Example]) -> list[tuple[int, int]]:
        measured = []
        for example in examples:
            if example.rejected is None:
                length = self._length(example, example.turns)
                measured.append((length, length))
            else:
                lengths = [self._length(example, turns) for turns in example.sequences()]
                measured.append((max(lengths), sum(lengths)))
        return measured

    def measure_conversations(self, batch: Conversations) -> np.ndarray:
        chars = batch.per_conversation(batch.chars)
        return np.ceil(chars / self._chars_per_token).astype(np.int64) + batch.framing(
            self._per_message
        )

    def _length(self, example: Example, turns: list[Turn]) -> int:
        chars = sum(map(len, map(_text, turns))) + len(example.tools_text())
        return math.ceil(chars / self._chars_per_token) + _framing(
            example, len(turns), self._per_message
        )


class ModelTokens:
    """The model's tokenizer.json through `tokenizers`, a batch of records at a time."""

    def __init__(self, tokenizer: Tokenizer, config: TokensConfig, model_id: str, source: str):
        self._tokenizer = tokenizer
        self._per_message = config.tokens_per_message
        self.info = TokenizerInfo(
            kind="model",
            model_id=model_id,
            detail=f"{source}; plus {config.tokens_per_message} per message for the chat template",
        )

    def measure(self, examples: list[Example]) -> list[tuple[int, int]]:
        """Each sequence's turns, and the tools' schemas its chat template renders with it."""
        texts: list[str] = []
        for example in examples:
            tools = example.tools_text()
            for turns in example.sequences():
                texts += map(_text, turns)
                if tools:
                    texts.append(tools)
        counts = iter(
            len(encoding)
            for encoding in self._tokenizer.encode_batch(texts, add_special_tokens=False)
        )
        measured = []
        for example in examples:
            pieces = int(bool(example.tools))
            lengths = [
                sum(next(counts) for _ in range(len(turns) + pieces))
                + _framing(example, len(turns), self._per_message)
                for turns in example.sequences()
            ]
            measured.append((max(lengths), sum(lengths)))
        return measured

    def measure_conversations(self, batch: Conversations) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(batch.texts(), add_special_tokens=False)
        tokens = np.fromiter(map(len, encodings), np.int64, len(encodings))
        return batch.per_conversation(tokens) + batch.framing(self._per_message)


def token_counter(
    model_id: str | None, revision: str | None, hub: HubAccess, config: TokensConfig
) -> TokenCounter:
    """The model's tokenizer when the draft names a model and its tokenizer can be loaded."""
    if not model_id:
        return EstimatedTokens(config, "no model is selected in the draft")
    path, source = tokenizer_file(model_id, revision, hub, config.download_tokenizer)
    if path is None:
        return EstimatedTokens(config, source)
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # the Rust side raises a bare Exception for any parse failure
        return EstimatedTokens(config, f"{model_id}'s tokenizer.json could not be loaded ({exc})")
    return ModelTokens(tokenizer, config, model_id, source)
