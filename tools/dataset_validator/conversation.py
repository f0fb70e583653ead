"""Conversations as every layout writes them: message lists read into turns, checked for
roles, content and order.

Layouts differ in their keys (OpenAI and TRL `role`/`content`, ShareGPT `from`/`value`) and
role names (formats.chat_roles and sharegpt_roles in configs/datasets.yaml); a Dialect says
which. The order rule is kept three ways that the tests hold to one another: _order_problem
words it, ALLOWED_ORDER checks it a pair of turns at a time, WELL_ORDERED a whole conversation
at once. What a message's content holds (typed parts, tool calls, media) is content.py's part.
"""

import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from operator import itemgetter
from typing import Any

from tools.dataset_validator.config import FormatsConfig
from tools.dataset_validator.content import (
    PART_REASONING_FIELD,
    REASONING_FIELDS,
    WEIGHT_FIELDS,
    ContentReader,
    Reading,
    TurnDetail,
    calls_text,
)
from tools.dataset_validator.kinds import ErrorCode, Role
from tools.quoting import quote

Turn = tuple[Role, str]


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
ROLE_SEQUENCES_CACHED = 4096  # verdicts and seeds kept: a dataset has few role sequences


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


def well_ordered(tags: str) -> bool:
    """Whether role letters hold an assistant turn, in an allowed order."""
    return _ASSISTANT_TAG in tags and WELL_ORDERED.fullmatch(tags) is not None


def well_formed(tags: str, texts: list[str], ordered: Callable[[str], bool] = well_ordered) -> bool:
    """Whether turns with these role letters and string texts break no rule: none blank, an
    assistant turn, a well-ordered conversation. The record path and the lanes all ask; a lane
    passes its run's cached `ordered` (cached_order): a dataset repeats few role sequences, and
    the match costs as much as the rest of the check."""
    return bool(texts) and all(texts) and not any(map(str.isspace, texts)) and ordered(tags)


def cached_order() -> Callable[[str], bool]:
    """well_ordered kept per role sequence, for one run (a long sequence is a long key)."""
    return lru_cache(ROLE_SEQUENCES_CACHED)(well_ordered)


CHAT_KEYS, SHAREGPT_KEYS = ("role", "content"), ("from", "value")


class Dialect:
    """How a layout writes a message: its keys (CHAT_KEYS or SHAREGPT_KEYS), its role names."""

    __slots__ = (
        "call_tags",
        "content_key",
        "fast_roles",
        "fast_tags",
        "role_key",
        "roles",
        "sharegpt",
    )

    def __init__(
        self, keys: tuple[str, str], roles: Mapping[str, Role], call_tags: frozenset[str]
    ) -> None:
        """`call_tags`: role names whose content is a tool call as JSON (ShareGPT function_call)."""
        (self.role_key, self.content_key), self.roles = keys, roles
        self.call_tags = call_tags
        self.sharegpt = keys == SHAREGPT_KEYS
        self.fast_roles = {name: r for name, r in roles.items() if name not in call_tags}
        """The names a plain string turn may have on the fast path."""
        self.fast_tags = {name: ROLE_TAGS[role] for name, role in self.fast_roles.items()}


class Conversation:
    """Turns being collected, with the state the alternation rule needs."""

    __slots__ = ("details", "has_assistant", "has_system", "prev", "turns")

    def __init__(self) -> None:
        self.turns: list[Turn] = []
        self.prev: Role | None = None
        self.has_system = False
        self.has_assistant = False
        self.details: dict[int, TurnDetail] | None = None
        """Tool calls, tool results' ids, reasoning: by turn index, where a turn has them."""

    def copy(self) -> "Conversation":
        other = Conversation()
        other.turns, other.prev = list(self.turns), self.prev
        other.has_system, other.has_assistant = self.has_system, self.has_assistant
        other.details = dict(self.details) if self.details else None
        return other


class MessageReader:
    """Reads message lists in either dialect into Conversations, quoting at most `max_quoted`
    characters of a value from the file in a message."""

    def __init__(self, config: FormatsConfig, max_quoted: int, content: ContentReader) -> None:
        self._max_quoted = max_quoted
        self._content = content
        self.chat = Dialect(CHAT_KEYS, config.chat_roles, frozenset())
        self.sharegpt = Dialect(
            SHAREGPT_KEYS, config.sharegpt_roles, frozenset(config.sharegpt_call_tags)
        )

    def read(
        self,
        value: Any,
        path: str,
        conversation: Conversation,
        dialect: Dialect,
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
        self, message: Any, where: str, dialect: Dialect, reading: Reading
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
        self, message: dict[str, Any], where: str, name: str, dialect: Dialect, reading: Reading
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

    def plain_turns(self, messages: Any, dialect: Dialect, start: str = "") -> list[Turn] | None:
        """The turns of a list of plain messages with nothing wrong, checked in a few C-level
        passes; None sends it through read(), which finds and words each problem (most
        records have none, and this is the hot path of a large scan)."""
        try:
            tags = start + "".join(
                map(dialect.fast_tags.__getitem__, map(itemgetter(dialect.role_key), messages))
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
