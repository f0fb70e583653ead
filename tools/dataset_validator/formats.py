"""Recognise each record's format and check it against that format's rules.

A record's format follows from its fields (the TRL, LLaMA-Factory, Alpaca and OpenAI layouts).
Each checker returns the record in one common shape, an Example, or the problems that keep it
out of training, each with a code, the JSON path of the field in the layout's own names
(`conversations[2].from`, `chosen.value`, `input.messages[1].role`) and a message that says
what to change. How messages are read and ordered is conversation.py's part, what their
content holds (parts, tool calls, media) content.py's.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from tools.dataset_validator.config import FormatsConfig
from tools.dataset_validator.content import (
    REASONING_FIELDS,
    WEIGHT_FIELDS,
    ContentReader,
    Problem,
    Reading,
    TurnDetail,
)
from tools.dataset_validator.conversation import (
    ROLE_TAGS,
    Conversation,
    Dialect,
    MessageReader,
    Turn,
    bare,
    same_answers,
)
from tools.dataset_validator.kinds import MEDIA_NAMES, ErrorCode, Format, PartKind, Role
from tools.quoting import quote

LABEL_FIELDS = ("label", "kto_tag")
"""An unpaired record's boolean feedback: TRL's `label`, LLaMA-Factory's `kto_tag`."""
PAIR_FIELDS = ("chosen", "rejected")
V1_PAIR_FIELDS = ("chosen_messages", "rejected_messages")
"""LLaMA-Factory v1's DPOSample: both whole conversations (an implicit prompt)."""
OPENAI_PAIR_FIELDS = ("preferred_output", "non_preferred_output")
MESSAGE_FIELDS = ("tool_calls", "function_call", "tool_call_id", "name")
MESSAGE_FIELDS += (*REASONING_FIELDS, *WEIGHT_FIELDS)
"""What the record path reads of a chat message besides role and content: what the package
keeps, and the weights it warns about."""
KNOWN_FIELDS = ("messages", "conversations", "chosen", "rejected", "prompt", "completion")
KNOWN_FIELDS += ("label", "instruction", "output", "text", "preferred_output")


@dataclass(slots=True)
class Example:
    """A record in the common chat shape every format is mapped onto."""

    format: Format
    turns: list[Turn]
    rejected: list[Turn] | None = None
    label: bool | None = None
    conversational: bool = True
    has_system: bool = False
    prompt_turns: int | None = None
    """How many leading turns are the prompt, where the layout says (an explicit prompt)."""
    details: dict[int, TurnDetail] | None = None
    """Tool calls, tool results' ids, reasoning: by turn index, for the turns that have them."""
    rejected_details: dict[int, TurnDetail] | None = None
    tools: list[dict[str, Any]] | None = None
    media: dict[PartKind, int] | None = None
    """Media taken out of the record (drop_media), by kind."""
    untrained: int = 0
    """Assistant turns the record marks not to train on, which TRL trains on all the same."""

    def sequences(self) -> list[list[Turn]]:
        """What the trainer tokenizes: one sequence, or chosen and rejected for a pair."""
        return [self.turns] if self.rejected is None else [self.turns, self.rejected]

    def tools_text(self) -> str:
        """The tools' schemas as the chat template renders them into every sequence ("" if none)."""
        return orjson.dumps(self.tools).decode() if self.tools else ""


def _has_label(record: Mapping[str, Any]) -> bool:
    return LABEL_FIELDS[0] in record or LABEL_FIELDS[1] in record


def detect(record: Mapping[str, Any]) -> Format | None:
    """The format a record's fields mark it as, or None when it has none of them.

    The first match wins (a record with `messages` is chat even if it also has `text`);
    unpaired preference needs a label beside `completion`, `output` or a conversation, so a
    classification-style {"text", "label"} record stays plain text. Beside `messages`, chosen
    and rejected are LLaMA-Factory's ranking layout when they are message objects, and TRL's
    pairs when they are lists (as UltraFeedback's, which also has the chosen `messages`).
    """
    if "messages" in record or "conversations" in record:
        if len(record) == 1:  # the common case, decided at once
            return Format.CHAT if "messages" in record else Format.SHAREGPT
        if "chosen" in record or "rejected" in record:
            side = record.get("chosen", record.get("rejected"))
            if "conversations" in record or type(side) is dict:
                return Format.SHAREGPT_PREFERENCE
            return Format.PREFERENCE
        if "messages" in record:
            return Format.CHAT_UNPAIRED if _has_label(record) else Format.CHAT
        return Format.SHAREGPT_UNPAIRED if _has_label(record) else Format.SHAREGPT
    if OPENAI_PAIR_FIELDS[0] in record or OPENAI_PAIR_FIELDS[1] in record:
        return Format.OPENAI_PREFERENCE
    if any(key in record for key in (*PAIR_FIELDS, *V1_PAIR_FIELDS)):
        return Format.PREFERENCE
    if "completion" in record and _has_label(record):
        return Format.UNPAIRED_PREFERENCE
    if "prompt" in record or "completion" in record:
        return Format.PROMPT_COMPLETION
    if "instruction" in record or "output" in record:
        return Format.UNPAIRED_PREFERENCE if _has_label(record) else Format.ALPACA
    if "text" in record:
        return Format.TEXT
    return None


class FormatChecker:
    """Checks records of every format; holds the role names and content part types the config
    accepts, how much of a value from the file a message may quote (limits.max_quoted_chars),
    and whether media is dropped (drop_media) or refused."""

    def __init__(
        self, config: FormatsConfig, max_quoted_chars: int, *, drop_media: bool = False
    ) -> None:
        self._max_quoted = max_quoted_chars
        self._content = ContentReader(config, max_quoted_chars, drop_media)
        self._media_fields = frozenset(config.media_fields)
        reader = MessageReader(config, max_quoted_chars, self._content)
        self._messages, self._plain_turns = reader.read, reader.plain_turns
        self._chat, self._sharegpt = reader.chat, reader.sharegpt

    def check(self, fmt: Format, record: Mapping[str, Any]) -> tuple[Example | None, list[Problem]]:
        """The record as an Example when it has no problem, else None and every problem."""
        reading = Reading()
        if not self._media_fields.isdisjoint(record):
            self._content.media_fields(record, reading)
        if "tools" in record:
            reading.add_tools(self._content.tools(record["tools"], "tools", reading))
        example = _CHECKS[fmt](self, record, reading)
        if reading.media and not self._content.drop_media:
            kinds = " and ".join(MEDIA_NAMES[kind] for kind in sorted(reading.media))
            reading.add(
                ErrorCode.HAS_MEDIA,
                reading.media_at or "",
                f"this data has {kinds}; the selected model and the packaged trainers are "
                "text-only",
            )
        if reading.problems:
            return None, reading.problems
        example.tools = reading.tools
        example.media = dict(reading.media) if reading.media else None
        example.untrained = reading.untrained
        return example, []

    def _string(
        self, record: Mapping[str, Any], key: str, reading: Reading, *, required: bool = True
    ) -> str | None:
        """A string field; when required: present, not null and not blank."""
        if key not in record:
            if required:
                reading.add(ErrorCode.MISSING_FIELD, key, f"the record has no '{key}'")
            return None
        value = record[key]
        if value is None:
            if required:
                reading.add(ErrorCode.EMPTY_CONTENT, key, f"'{key}' is null")
            return None
        if type(value) is not str:
            reading.add(ErrorCode.WRONG_TYPE, key, f"'{key}' must be a string")
            return None
        value = reading.clean(value)
        if required and (not value or value.isspace()):
            reading.add(ErrorCode.EMPTY_CONTENT, key, f"'{key}' is empty")
        return value

    def _require(
        self, record: Mapping[str, Any], keys: tuple[str, ...], fmt: Format, reading: Reading
    ) -> bool:
        missing = [k for k in keys if k not in record]
        for key in missing:
            reading.add(
                ErrorCode.MISSING_FIELD,
                key,
                f"the record has no '{key}'; a {fmt} record needs {', '.join(keys)}",
            )
        return not missing

    def _identical(self, chosen: str | None, rejected: str | None, reading: Reading) -> None:
        if chosen is not None and rejected is not None and bare(chosen) == bare(rejected):
            reading.add(
                ErrorCode.IDENTICAL_PAIR,
                "rejected",
                "'chosen' and 'rejected' are the same text, whitespace aside",
            )

    def _no_assistant(self, conversation: Conversation, path: str, reading: Reading) -> None:
        if not conversation.has_assistant:
            reading.add(
                ErrorCode.NO_ASSISTANT_TURN, path, f"{path} has no assistant turn to learn from"
            )

    def _label(self, record: Mapping[str, Any], reading: Reading) -> bool:
        """An unpaired record's feedback: true (a good answer) or false."""
        key = next(k for k in LABEL_FIELDS if k in record)
        label = record[key]
        if type(label) is not bool:
            reading.add(
                ErrorCode.WRONG_TYPE,
                key,
                f"'{key}' must be true or false, not {quote(label, self._max_quoted)}",
            )
        return label is True

    def _judged(self, conversation: Conversation, path: str, reading: Reading) -> int:
        """Where an unpaired conversation's judged answer starts: its final assistant turns,
        as LLaMA-Factory's KTO layout takes the last turn; the turns before are the prompt."""
        turns = conversation.turns
        start = len(turns)
        while start and turns[start - 1][0] is Role.ASSISTANT:
            start -= 1
        if start == len(turns) and not reading.problems:
            reading.add(
                ErrorCode.NO_ASSISTANT_TURN,
                path,
                f"{path} must end with the assistant's answer that the label judges",
            )
        return start

    def _sharegpt_turns(
        self, record: Mapping[str, Any], key: str, dialect: Dialect, reading: Reading
    ) -> Conversation:
        """The `system` column as the first turn, then the `key` conversation's turns."""
        conversation = Conversation()
        system = self._string(record, "system", reading, required=False)
        if system and not system.isspace():
            conversation.turns.append((Role.SYSTEM, system))
            conversation.prev, conversation.has_system = Role.SYSTEM, True
        self._messages(record[key], key, conversation, dialect, reading)
        return conversation

    def _instruction(self, record: Mapping[str, Any], reading: Reading) -> Conversation:
        """Alpaca's prompt as turns: system, history's pairs, then instruction and input."""
        conversation = Conversation()
        instruction = self._string(record, "instruction", reading)
        extra = self._string(record, "input", reading, required=False)
        system = self._string(record, "system", reading, required=False)
        if system and not system.isspace():
            conversation.turns.append((Role.SYSTEM, system))
            conversation.has_system = True
        history = record.get("history")
        if history:
            if type(history) is not list or not all(
                type(p) is list and len(p) == 2 and all(type(t) is str for t in p) for p in history
            ):
                reading.add(
                    ErrorCode.WRONG_TYPE,
                    "history",
                    "'history' must be a list of [instruction, response] string pairs",
                )
            else:
                for query, response in history:
                    conversation.turns += [(Role.USER, query), (Role.ASSISTANT, response)]
        prompt = instruction or ""
        if extra and not extra.isspace():
            prompt = f"{prompt}\n\n{extra}"
        conversation.turns.append((Role.USER, prompt))
        return conversation

    # --- one checker per format -----------------------------------------------------------

    def _chat_records(self, record: Mapping[str, Any], reading: Reading) -> Example:
        if not reading.tags:
            turns = self._plain_turns(record["messages"], self._chat)
            if turns is not None:
                return Example(Format.CHAT, turns, has_system=turns[0][0] is Role.SYSTEM)
        conversation = Conversation()
        self._messages(record["messages"], "messages", conversation, self._chat, reading)
        if not reading.problems:
            self._no_assistant(conversation, "messages", reading)
        return _example(conversation, Format.CHAT)

    def _chat_unpaired(self, record: Mapping[str, Any], reading: Reading) -> Example:
        label = self._label(record, reading)
        conversation = Conversation()
        self._messages(record["messages"], "messages", conversation, self._chat, reading)
        start = self._judged(conversation, "messages", reading)
        return _example(conversation, Format.CHAT_UNPAIRED, label=label, prompt_turns=start)

    def _sharegpt_records(self, record: Mapping[str, Any], reading: Reading) -> Example:
        system = record.get("system")
        if not reading.tags and not reading.problems and (system is None or type(system) is str):
            head = (Role.SYSTEM, system) if system and not system.isspace() else None
            start = ROLE_TAGS[Role.SYSTEM] if head else ""
            turns = self._plain_turns(record["conversations"], self._sharegpt, start)
            if turns is not None:
                turns = [head, *turns] if head else turns
                return Example(Format.SHAREGPT, turns, has_system=turns[0][0] is Role.SYSTEM)
        conversation = self._sharegpt_turns(record, "conversations", self._sharegpt, reading)
        if not reading.problems:
            self._no_assistant(conversation, "conversations", reading)
        return _example(conversation, Format.SHAREGPT)

    def _sharegpt_unpaired(self, record: Mapping[str, Any], reading: Reading) -> Example:
        label = self._label(record, reading)
        conversation = self._sharegpt_turns(record, "conversations", self._sharegpt, reading)
        start = self._judged(conversation, "conversations", reading)
        return _example(conversation, Format.SHAREGPT_UNPAIRED, label=label, prompt_turns=start)

    def _sharegpt_preference(self, record: Mapping[str, Any], reading: Reading) -> Example:
        """LLaMA-Factory's ranking layout: the prompt turns (`conversations`, or `messages` with
        role/content tags), then `chosen` and `rejected`, each one message object."""
        fmt = Format.SHAREGPT_PREFERENCE
        key, dialect = (
            ("conversations", self._sharegpt)
            if "conversations" in record
            else ("messages", self._chat)
        )
        if not self._require(record, (key, *PAIR_FIELDS), fmt, reading):
            return Example(fmt, [])
        prompt = self._sharegpt_turns(record, key, dialect, reading)
        for side in PAIR_FIELDS:
            if type(record[side]) is list:
                reading.add(
                    ErrorCode.WRONG_TYPE,
                    side,
                    f"'{side}' must be one message object {{\"{dialect.role_key}\": ..., "
                    f"\"{dialect.content_key}\": ...}} answering '{key}', not a list",
                )
        if reading.problems:
            return Example(fmt, [])
        return self._pair(fmt, prompt, record, PAIR_FIELDS, dialect, reading, single=True)

    def _openai_preference(self, record: Mapping[str, Any], reading: Reading) -> Example:
        fmt = Format.OPENAI_PREFERENCE
        if not self._require(record, ("input", *OPENAI_PAIR_FIELDS), fmt, reading):
            return Example(fmt, [])
        given = record["input"]
        if type(given) is not dict or "messages" not in given:
            reading.add(
                ErrorCode.MISSING_FIELD,
                "input.messages",
                "'input' must be an object holding 'messages' (and, optionally, 'tools')",
            )
            return Example(fmt, [])
        if "tools" in given:
            reading.add_tools(self._content.tools(given["tools"], "input.tools", reading))
        prompt = Conversation()
        self._messages(given["messages"], "input.messages", prompt, self._chat, reading)
        return self._pair(fmt, prompt, record, OPENAI_PAIR_FIELDS, self._chat, reading)

    def _pair(
        self,
        fmt: Format,
        prompt: Conversation,
        record: Mapping[str, Any],
        keys: tuple[str, str],
        dialect: Dialect,
        reading: Reading,
        *,
        single: bool = False,
        explicit: bool = True,
    ) -> Example:
        """Two answers to one prompt: each side read after the prompt's turns (`single`: each
        one message object); `explicit`: the prompt is the record's own field."""
        chosen, rejected = prompt.copy(), prompt.copy()
        self._messages(record[keys[0]], keys[0], chosen, dialect, reading, single=single)
        self._messages(record[keys[1]], keys[1], rejected, dialect, reading, single=single)
        if reading.problems:
            return Example(fmt, [])
        self._no_assistant(chosen, keys[0], reading)
        self._no_assistant(rejected, keys[1], reading)
        start = len(prompt.turns)
        if same_answers(chosen.turns[start:], rejected.turns[start:]):
            reading.add(
                ErrorCode.IDENTICAL_PAIR,
                keys[1],
                f"'{keys[0]}' and '{keys[1]}' are the same, whitespace aside",
            )
        return Example(
            fmt,
            chosen.turns,
            rejected=rejected.turns,
            has_system=chosen.has_system,
            prompt_turns=start if explicit else None,
            details=chosen.details,
            rejected_details=rejected.details,
        )

    def _alpaca(self, record: Mapping[str, Any], reading: Reading) -> Example:
        conversation = self._instruction(record, reading)
        start = len(conversation.turns)
        output = self._string(record, "output", reading)
        conversation.turns.append((Role.ASSISTANT, output or ""))
        return _example(conversation, Format.ALPACA, prompt_turns=start)

    def _prompt_and_completion(
        self, record: Mapping[str, Any], reading: Reading
    ) -> tuple[Conversation, bool]:
        """Prompt then completion, both strings or both message lists; (turns, conversational)."""
        prompt, completion = record["prompt"], record["completion"]
        conversation = Conversation()
        if type(prompt) is list or type(completion) is list:
            if type(prompt) is not list or type(completion) is not list:
                reading.add(
                    ErrorCode.WRONG_TYPE,
                    "prompt",
                    "'prompt' and 'completion' must both be strings or both be lists of messages",
                )
                return conversation, True
            self._messages(prompt, "prompt", conversation, self._chat, reading)
            self._messages(completion, "completion", conversation, self._chat, reading)
            if not reading.problems:
                self._no_assistant(conversation, "completion", reading)
            return conversation, True
        prompt_text = self._string(record, "prompt", reading)
        completion_text = self._string(record, "completion", reading)
        conversation.turns += [
            (Role.USER, prompt_text or ""),
            (Role.ASSISTANT, completion_text or ""),
        ]
        return conversation, False

    def _prompt_completion(self, record: Mapping[str, Any], reading: Reading) -> Example:
        fmt = Format.PROMPT_COMPLETION
        if not self._require(record, ("prompt", "completion"), fmt, reading):
            return Example(fmt, [])
        conversation, chat = self._prompt_and_completion(record, reading)
        start = _prompt_length(record["prompt"], chat)
        return _example(conversation, fmt, conversational=chat, prompt_turns=start)

    def _unpaired_preference(self, record: Mapping[str, Any], reading: Reading) -> Example:
        """TRL's prompt/completion/label, or LLaMA-Factory's Alpaca KTO layout (instruction,
        input, output and kto_tag)."""
        fmt = Format.UNPAIRED_PREFERENCE
        label = self._label(record, reading)
        if "completion" not in record:
            conversation = self._instruction(record, reading)
            start = len(conversation.turns)
            output = self._string(record, "output", reading)
            conversation.turns.append((Role.ASSISTANT, output or ""))
            return _example(conversation, fmt, label=label, prompt_turns=start)
        if not self._require(record, ("prompt", "completion"), fmt, reading):
            return Example(fmt, [])
        conversation, chat = self._prompt_and_completion(record, reading)
        start = _prompt_length(record["prompt"], chat)
        return _example(conversation, fmt, label=label, conversational=chat, prompt_turns=start)

    def _preference(self, record: Mapping[str, Any], reading: Reading) -> Example:
        fmt = Format.PREFERENCE
        keys = V1_PAIR_FIELDS if not any(k in record for k in PAIR_FIELDS) else PAIR_FIELDS
        if not self._require(record, keys, fmt, reading):
            return Example(fmt, [])
        if type(record[keys[0]]) is list or type(record[keys[1]]) is list:
            return self._conversational_pair(record, keys, reading)
        if "instruction" in record and "prompt" not in record:
            return self._instruction_pair(record, reading)
        prompt = self._string(record, "prompt", reading, required=False)
        chosen_text = self._string(record, "chosen", reading)
        rejected_text = self._string(record, "rejected", reading)
        self._identical(chosen_text, rejected_text, reading)
        head: list[Turn] = [(Role.USER, prompt)] if prompt else []
        return Example(
            fmt,
            [*head, (Role.ASSISTANT, chosen_text or "")],
            rejected=[*head, (Role.ASSISTANT, rejected_text or "")],
            conversational=False,
            prompt_turns=len(head),
        )

    def _instruction_pair(self, record: Mapping[str, Any], reading: Reading) -> Example:
        """LLaMA-Factory's Alpaca ranking layout: instruction and input, chosen and rejected."""
        prompt = self._instruction(record, reading)
        chosen_text = self._string(record, "chosen", reading)
        rejected_text = self._string(record, "rejected", reading)
        self._identical(chosen_text, rejected_text, reading)
        return Example(
            Format.PREFERENCE,
            [*prompt.turns, (Role.ASSISTANT, chosen_text or "")],
            rejected=[*prompt.turns, (Role.ASSISTANT, rejected_text or "")],
            has_system=prompt.has_system,
            prompt_turns=len(prompt.turns),
        )

    def _conversational_pair(
        self, record: Mapping[str, Any], keys: tuple[str, str], reading: Reading
    ) -> Example:
        """Chosen and rejected message lists, after a shared prompt (explicit or implicit)."""
        fmt = Format.PREFERENCE
        if type(record[keys[0]]) is not list or type(record[keys[1]]) is not list:
            reading.add(
                ErrorCode.WRONG_TYPE,
                keys[1],
                f"'{keys[0]}' and '{keys[1]}' must both be strings or both be lists of messages",
            )
            return Example(fmt, [])
        prompt = Conversation()
        explicit = type(record.get("prompt")) is list  # TRL's maybe_extract_prompt: a string
        if explicit:  # prompt beside conversational answers is implicit in them, and ignored
            self._messages(record["prompt"], "prompt", prompt, self._chat, reading)
        return self._pair(fmt, prompt, record, keys, self._chat, reading, explicit=explicit)

    def _text(self, record: Mapping[str, Any], reading: Reading) -> Example:
        text = self._string(record, "text", reading)
        return Example(Format.TEXT, [(Role.ASSISTANT, text or "")], conversational=False)


def _example(conversation: Conversation, fmt: Format, **fields: Any) -> Example:
    """The turns read as a record of `fmt`."""
    return Example(
        fmt,
        conversation.turns,
        has_system=conversation.has_system,
        details=conversation.details,
        **fields,
    )


def _prompt_length(prompt: Any, conversational: bool) -> int:
    """How many turns a prompt-completion record's prompt is: its messages, or one string."""
    return len(prompt) if conversational and type(prompt) is list else 1


_CHECKS = {
    Format.CHAT: FormatChecker._chat_records,
    Format.CHAT_UNPAIRED: FormatChecker._chat_unpaired,
    Format.SHAREGPT: FormatChecker._sharegpt_records,
    Format.SHAREGPT_UNPAIRED: FormatChecker._sharegpt_unpaired,
    Format.SHAREGPT_PREFERENCE: FormatChecker._sharegpt_preference,
    Format.OPENAI_PREFERENCE: FormatChecker._openai_preference,
    Format.ALPACA: FormatChecker._alpaca,
    Format.PROMPT_COMPLETION: FormatChecker._prompt_completion,
    Format.UNPAIRED_PREFERENCE: FormatChecker._unpaired_preference,
    Format.PREFERENCE: FormatChecker._preference,
    Format.TEXT: FormatChecker._text,
}
