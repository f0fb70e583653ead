"""Recognise each record's format and check it against that format's rules.

A record's format follows from its fields (the TRL, LLaMA-Factory, Alpaca and OpenAI layouts).
Each checker returns the record in one common shape, an Example, or the problems that keep it
out of training, each with a code, the JSON path of the field in the layout's own names
(`conversations[2].from`, `chosen.value`, `input.messages[1].role`) and a message that says
what to change. How a message's content, tool calls and media are read is content.py's part.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import orjson

from tools.dataset_validator.config import FormatsConfig
from tools.dataset_validator.content import (
    PART_REASONING_FIELD,
    REASONING_FIELDS,
    WEIGHT_FIELDS,
    ContentReader,
    Problem,
    Reading,
    TurnDetail,
    calls_text,
)
from tools.dataset_validator.kinds import MEDIA_NAMES, ErrorCode, Format, PartKind, Role
from tools.quoting import quote

Turn = tuple[Role, str]

LABEL_FIELDS = ("label", "kto_tag")
"""An unpaired record's boolean feedback: TRL's `label`, LLaMA-Factory's `kto_tag`."""
PAIR_FIELDS = ("chosen", "rejected")
V1_PAIR_FIELDS = ("chosen_messages", "rejected_messages")
"""LLaMA-Factory v1's DPOSample: both whole conversations (an implicit prompt)."""
OPENAI_PAIR_FIELDS = ("preferred_output", "non_preferred_output")
MESSAGE_FIELDS = ("tool_calls", "function_call", "tool_call_id", "name", *REASONING_FIELDS)
MESSAGE_FIELDS += WEIGHT_FIELDS
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


@dataclass(frozen=True, slots=True)
class _Dialect:
    """How a layout writes a message: its keys, its role names."""

    role_key: str
    content_key: str
    roles: Mapping[str, Role]
    fast_roles: Mapping[str, Role]
    """The names a plain string turn may have on the fast path (not tool-call tags)."""
    call_tags: frozenset[str]
    """Names whose content is a tool call as JSON (ShareGPT function_call)."""
    sharegpt: bool

    @property
    def fast_tags(self) -> dict[str, str]:
        return {name: ROLE_TAGS[role] for name, role in self.fast_roles.items()}


class _Conversation:
    """Turns being collected, with the state the alternation rule needs."""

    __slots__ = ("details", "has_assistant", "has_system", "prev", "turns")

    def __init__(self) -> None:
        self.turns: list[Turn] = []
        self.prev: Role | None = None
        self.has_system = False
        self.has_assistant = False
        self.details: dict[int, TurnDetail] | None = None

    def copy(self) -> "_Conversation":
        other = _Conversation()
        other.turns, other.prev = list(self.turns), self.prev
        other.has_system, other.has_assistant = self.has_system, self.has_assistant
        other.details = dict(self.details) if self.details else None
        return other

    def example(self, fmt: Format, **fields: Any) -> Example:
        return Example(fmt, self.turns, has_system=self.has_system, details=self.details, **fields)


def _order_problem(prev: Role | None, role: Role) -> str | None:
    """Why `role` may not follow `prev`: after an optional system turn, user and assistant
    alternate, starting with user; tool turns answer the assistant turn that called them."""
    if role is Role.SYSTEM:
        return None if prev is None else "a system turn may only come first"
    if role is Role.USER:
        if prev is Role.USER:
            return "two user turns in a row; merge them or put the assistant's reply between"
        if prev is Role.TOOL:
            return "a tool result must be followed by an assistant turn, not a user turn"
        return None
    if role is Role.ASSISTANT:
        if prev is None or prev is Role.SYSTEM:
            return "the conversation must start with a user turn (after an optional system turn)"
        if prev is Role.ASSISTANT:
            return "two assistant turns in a row; merge them or put a user turn between"
        return None
    if prev is not Role.ASSISTANT and prev is not Role.TOOL:
        return "a tool turn must follow the assistant turn that called the tool"
    return None


# The same rule as a set of allowed (previous, next) pairs, for the hot path.
ALLOWED_ORDER = frozenset(
    (prev, role) for prev in (None, *Role) for role in Role if _order_problem(prev, role) is None
)
# And as a regular expression over one letter per role, for a whole conversation at once
# (the tests hold it to _order_problem for every sequence of up to 7 turns).
ROLE_TAGS = {Role.SYSTEM: "s", Role.USER: "u", Role.ASSISTANT: "a", Role.TOOL: "t"}
ROLE_OF_TAG = {tag: role for role, tag in ROLE_TAGS.items()}
_ASSISTANT_TAG = ROLE_TAGS[Role.ASSISTANT]
WELL_ORDERED = re.compile(r"s?(?:ua(?:t+a)*)*(?:u|ua(?:t+a)*t+)?")
ASCII_WHITESPACE = b" \t\n\r\x0b\x0c"
_STR_ONLY = {str}
_ROLE_AND_CONTENT = 2  # a plain message's keys: its role and its content
_UNKNOWN: Any = object()  # the role before a turn that could not be read


def bare(text: str) -> bytes:
    """The text as UTF-8 without ASCII whitespace: what duplicates and identical pairs compare,
    so spacing, line breaks and indentation cannot hide a copy (and it is quick: one C pass)."""
    try:
        data = text.encode()
    except UnicodeEncodeError:  # a lone surrogate (a CSV or Parquet cell may hold one)
        data = text.encode("utf-8", "surrogatepass")
    return data.translate(None, ASCII_WHITESPACE)


def same_answers(chosen: list[Turn], rejected: list[Turn]) -> bool:
    """Whether two answers are the same turns, whitespace aside (an identical pair)."""
    return len(chosen) == len(rejected) and all(
        a[0] is b[0] and (a[1] == b[1] or bare(a[1]) == bare(b[1]))
        for a, b in zip(chosen, rejected, strict=True)
    )


def well_formed(tags: str, texts: list[str]) -> bool:
    """Whether turns with these role letters and string texts break no rule: none blank, an
    assistant turn, a well-ordered conversation. The record path and the chat lane both ask."""
    return (
        bool(texts)
        and all(texts)
        and not any(map(str.isspace, texts))
        and _ASSISTANT_TAG in tags
        and WELL_ORDERED.fullmatch(tags) is not None
    )


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
        calls = frozenset(config.sharegpt_call_tags)
        chat_roles, sharegpt_roles = config.chat_roles, config.sharegpt_roles
        self._chat = _Dialect("role", "content", chat_roles, chat_roles, frozenset(), False)
        plain = {name: r for name, r in sharegpt_roles.items() if name not in calls}
        self._sharegpt = _Dialect("from", "value", sharegpt_roles, plain, calls, True)
        self._chat_tags, self._sharegpt_tags = self._chat.fast_tags, self._sharegpt.fast_tags

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

    # --- conversational pieces ------------------------------------------------------------

    def _messages(
        self,
        value: Any,
        path: str,
        conversation: _Conversation,
        dialect: _Dialect,
        reading: Reading,
        *,
        single: bool = False,
    ) -> None:
        """Append a message list's turns (or, `single`, one message's) to `conversation`,
        checking roles, content, order.

        The loop is the hot path of a scan: a plain, well-formed message costs a few lookups;
        only another one (tool calls, parts, a fault) pays for reading it in full.
        """
        if single:
            value = [value]
        elif type(value) is not list:
            reading.add(ErrorCode.WRONG_TYPE, path, f"{path} must be a list of messages")
            return
        elif not value:
            reading.add(ErrorCode.EMPTY_CONTENT, path, f"{path} has no messages")
            return
        role_key, content_key, fast_roles = (
            dialect.role_key,
            dialect.content_key,
            dialect.fast_roles,
        )
        plain = not reading.tags  # media tags to remove: every turn is read in full
        turns, append = conversation.turns, conversation.turns.append
        prev, has_assistant = conversation.prev, conversation.has_assistant
        for index, message in enumerate(value):
            if plain and type(message) is dict and len(message) == 2:
                name = message.get(role_key)
                role = fast_roles.get(name) if type(name) is str else None
                text = message.get(content_key)
            else:
                role = text = None
            if role is None or type(text) is not str or not text or text.isspace():
                read = self._message(
                    message, path if single else f"{path}[{index}]", dialect, reading
                )
                if read is None:
                    prev = _UNKNOWN  # the next turn's order cannot be judged
                    continue
                role, text, detail = read
                if detail is not None:
                    conversation.details = conversation.details or {}
                    conversation.details[len(turns)] = detail
            if (prev, role) not in ALLOWED_ORDER and prev is not _UNKNOWN:
                where = path if single else f"{path}[{index}]"
                reading.add(
                    ErrorCode.ROLE_ORDER, where, f"{where} ({role}): {_order_problem(prev, role)}"
                )
            prev = role
            if role is Role.ASSISTANT:
                has_assistant = True
            append((role, text))
        conversation.prev, conversation.has_assistant = prev, has_assistant
        conversation.has_system = bool(turns) and turns[0][0] is Role.SYSTEM

    def _message(
        self, message: Any, where: str, dialect: _Dialect, reading: Reading
    ) -> tuple[Role, str, TurnDetail | None] | None:
        """The slow path of a message that is not a plain, non-empty string turn: its role, text
        (content, reasoning and tool calls; empty still counted) and detail, or None when it
        cannot be a turn."""
        role_key, content_key = dialect.role_key, dialect.content_key
        if type(message) is not dict:
            reading.add(
                ErrorCode.WRONG_TYPE,
                where,
                f"{where} must be an object with '{role_key}' and '{content_key}'",
            )
            return None
        name = message.get(role_key)
        role = dialect.roles.get(name) if type(name) is str else None
        if role is None:
            if name is None:
                reading.add(
                    ErrorCode.MISSING_FIELD, f"{where}.{role_key}", f"{where} has no '{role_key}'"
                )
            else:
                reading.add(
                    ErrorCode.UNKNOWN_ROLE,
                    f"{where}.{role_key}",
                    f"{where}.{role_key} is {quote(name, self._max_quoted)}; use one of "
                    f"{', '.join(dialect.roles)}",
                )
            return None
        if dialect.sharegpt:
            read = self._sharegpt_message(message, where, name, dialect, reading)
        else:
            read = self._chat_message(message, where, name, role, reading)
        if read is None:
            return None
        text, detail, dropped = read
        if not text or text.isspace():
            left = " once its media is dropped" if dropped else ""
            reading.add(
                ErrorCode.EMPTY_CONTENT,
                f"{where}.{content_key}",
                f"{where} ({name}) has empty {content_key}{left}",
            )
        return role, text, detail

    def _sharegpt_message(
        self, message: dict[str, Any], where: str, name: str, dialect: _Dialect, reading: Reading
    ) -> tuple[str, TurnDetail | None, bool] | None:
        """A ShareGPT turn: a string value; a function_call turn's value is its tool calls."""
        if "value" not in message:
            reading.add(ErrorCode.MISSING_FIELD, f"{where}.value", f"{where} has no 'value'")
            return None
        value = message["value"]
        if type(value) is not str:
            reading.add(ErrorCode.WRONG_TYPE, f"{where}.value", f"{where}.value must be a string")
            return None
        if name in dialect.call_tags:
            calls = self._content.call_json(value, f"{where}.value", reading)
            if calls is None:
                return None
            return calls_text(calls), TurnDetail("", {"tool_calls": calls}), False
        text = reading.clean(value)
        return text, None, len(text) != len(value)

    def _chat_message(
        self, message: dict[str, Any], where: str, name: str, role: Role, reading: Reading
    ) -> tuple[str, TurnDetail | None, bool] | None:
        """An OpenAI / TRL message: content (a string, null beside tool calls, typed parts),
        tool calls, a tool result's id and name, reasoning."""
        calls = None
        for key, read in (
            ("tool_calls", self._content.tool_calls),
            ("function_call", self._content.function_call),
        ):
            value = message.get(key)
            if not value:  # absent, null or empty, as exports write for a plain answer
                continue
            if role is not Role.ASSISTANT:
                reading.add(
                    ErrorCode.INVALID_TOOL,
                    f"{where}.{key}",
                    f"{where} ({name}) has {key}; only an assistant turn calls tools",
                )
                return None
            calls = read(value, f"{where}.{key}", reading)
            if calls is None:
                return None
            break
        if "content" not in message and calls is None:
            reading.add(ErrorCode.MISSING_FIELD, f"{where}.content", f"{where} has no 'content'")
            return None
        parts = self._content.content(message.get("content"), f"{where}.content", reading)
        if parts is None:
            return None
        fields: dict[str, Any] = {}
        for key in (*REASONING_FIELDS, "tool_call_id", "name"):
            value = message.get(key)
            if value is None:
                continue
            if type(value) is not str:
                reading.add(
                    ErrorCode.WRONG_TYPE, f"{where}.{key}", f"{where}.{key} must be a string"
                )
                return None
            if value:
                fields[key] = value
        if parts.reasoning:
            fields[PART_REASONING_FIELD] = fields.get(PART_REASONING_FIELD, "") + parts.reasoning
        if parts.calls:
            if role is not Role.ASSISTANT:
                reading.add(
                    ErrorCode.INVALID_TOOL,
                    f"{where}.content",
                    f"{where} ({name}) holds tool_call parts; only an assistant turn calls tools",
                )
                return None
            calls = [*(calls or []), *parts.calls]
        if calls:
            fields["tool_calls"] = calls
        if role is Role.ASSISTANT and any(message.get(key) == 0 for key in WEIGHT_FIELDS):
            reading.untrained += 1
        thoughts = [fields[key] for key in REASONING_FIELDS if key in fields]
        pieces = (*thoughts, parts.text, calls_text(calls) if calls else "")
        text = "\n".join(piece for piece in pieces if piece)
        return text, TurnDetail(parts.text, fields) if fields else None, parts.had_media

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

    def _no_assistant(self, conversation: _Conversation, path: str, reading: Reading) -> None:
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

    def _judged(self, conversation: _Conversation, path: str, reading: Reading) -> int:
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

    def _well_formed(
        self, messages: Any, dialect: _Dialect, tags_by_name: dict[str, str], start: str = ""
    ) -> list[Turn] | None:
        """The turns of a list of plain messages with nothing wrong, checked in a few C-level
        passes; None sends it through _messages, which finds and words each problem (most
        records have none, and this is the hot path of a large scan)."""
        try:
            tags = start + "".join(
                map(tags_by_name.__getitem__, map(itemgetter(dialect.role_key), messages))
            )
            texts = list(map(itemgetter(dialect.content_key), messages))
        except (TypeError, KeyError):  # not a list of objects, a missing key, an unknown role
            return None
        if (
            set(map(type, texts)) != _STR_ONLY
            or sum(map(len, messages)) != _ROLE_AND_CONTENT * len(messages)
            or not well_formed(tags, texts)
        ):
            return None
        return list(zip(map(ROLE_OF_TAG.__getitem__, tags[len(start) :]), texts, strict=True))

    def _sharegpt_turns(
        self, record: Mapping[str, Any], key: str, dialect: _Dialect, reading: Reading
    ) -> _Conversation:
        """The `system` column as the first turn, then the `key` conversation's turns."""
        conversation = _Conversation()
        system = self._string(record, "system", reading, required=False)
        if system and not system.isspace():
            conversation.turns.append((Role.SYSTEM, system))
            conversation.prev, conversation.has_system = Role.SYSTEM, True
        self._messages(record[key], key, conversation, dialect, reading)
        return conversation

    def _instruction(self, record: Mapping[str, Any], reading: Reading) -> _Conversation:
        """Alpaca's prompt as turns: system, history's pairs, then instruction and input."""
        conversation = _Conversation()
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
            turns = self._well_formed(record["messages"], self._chat, self._chat_tags)
            if turns is not None:
                return Example(Format.CHAT, turns, has_system=turns[0][0] is Role.SYSTEM)
        conversation = _Conversation()
        self._messages(record["messages"], "messages", conversation, self._chat, reading)
        if not reading.problems:
            self._no_assistant(conversation, "messages", reading)
        return conversation.example(Format.CHAT)

    def _chat_unpaired(self, record: Mapping[str, Any], reading: Reading) -> Example:
        label = self._label(record, reading)
        conversation = _Conversation()
        self._messages(record["messages"], "messages", conversation, self._chat, reading)
        start = self._judged(conversation, "messages", reading)
        return conversation.example(Format.CHAT_UNPAIRED, label=label, prompt_turns=start)

    def _sharegpt_records(self, record: Mapping[str, Any], reading: Reading) -> Example:
        system = record.get("system")
        if not reading.tags and not reading.problems and (system is None or type(system) is str):
            head = (Role.SYSTEM, system) if system and not system.isspace() else None
            start = ROLE_TAGS[Role.SYSTEM] if head else ""
            turns = self._well_formed(
                record["conversations"], self._sharegpt, self._sharegpt_tags, start
            )
            if turns is not None:
                turns = [head, *turns] if head else turns
                return Example(Format.SHAREGPT, turns, has_system=turns[0][0] is Role.SYSTEM)
        conversation = self._sharegpt_turns(record, "conversations", self._sharegpt, reading)
        if not reading.problems:
            self._no_assistant(conversation, "conversations", reading)
        return conversation.example(Format.SHAREGPT)

    def _sharegpt_unpaired(self, record: Mapping[str, Any], reading: Reading) -> Example:
        label = self._label(record, reading)
        conversation = self._sharegpt_turns(record, "conversations", self._sharegpt, reading)
        start = self._judged(conversation, "conversations", reading)
        return conversation.example(Format.SHAREGPT_UNPAIRED, label=label, prompt_turns=start)

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
        prompt = _Conversation()
        self._messages(given["messages"], "input.messages", prompt, self._chat, reading)
        return self._pair(fmt, prompt, record, OPENAI_PAIR_FIELDS, self._chat, reading)

    def _pair(
        self,
        fmt: Format,
        prompt: _Conversation,
        record: Mapping[str, Any],
        keys: tuple[str, str],
        dialect: _Dialect,
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
        return conversation.example(Format.ALPACA, prompt_turns=start)

    def _prompt_and_completion(
        self, record: Mapping[str, Any], reading: Reading
    ) -> tuple[_Conversation, bool]:
        """Prompt then completion, both strings or both message lists; (turns, conversational)."""
        prompt, completion = record["prompt"], record["completion"]
        conversation = _Conversation()
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
        return conversation.example(fmt, conversational=chat, prompt_turns=start)

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
            return conversation.example(fmt, label=label, prompt_turns=start)
        if not self._require(record, ("prompt", "completion"), fmt, reading):
            return Example(fmt, [])
        conversation, chat = self._prompt_and_completion(record, reading)
        start = _prompt_length(record["prompt"], chat)
        return conversation.example(fmt, label=label, conversational=chat, prompt_turns=start)

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
        prompt = _Conversation()
        explicit = type(record.get("prompt")) is list  # TRL's maybe_extract_prompt: a string
        if explicit:  # prompt beside conversational answers is implicit in them, and ignored
            self._messages(record["prompt"], "prompt", prompt, self._chat, reading)
        return self._pair(fmt, prompt, record, keys, self._chat, reading, explicit=explicit)

    def _text(self, record: Mapping[str, Any], reading: Reading) -> Example:
        text = self._string(record, "text", reading)
        return Example(Format.TEXT, [(Role.ASSISTANT, text or "")], conversational=False)


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
