"""Recognise each record's format and check it against that format's rules.

A record's format follows from its fields (the TRL, LLaMA-Factory and Alpaca conventions). Each
checker returns the record in one common shape, an Example, or the problems that keep it out of
training, each with a code, the JSON path of the field and a message that says what to change.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import orjson

from tools.dataset_validator.config import FormatsConfig
from tools.dataset_validator.kinds import ErrorCode, Format, Role
from tools.quoting import quote

Turn = tuple[Role, str]
Problem = tuple[ErrorCode, str, str]
"""(code, JSON path of the field, message)."""

KNOWN_FIELDS = ("messages", "conversations", "chosen", "rejected", "prompt", "completion")
KNOWN_FIELDS += ("label", "instruction", "output", "text")
TOOL_CALL_KEYS = ("tool_calls", "function_call")


@dataclass(slots=True)
class Example:
    """A record in the common chat shape every format is mapped onto."""

    format: Format
    turns: list[Turn]
    rejected: list[Turn] | None = None
    label: bool | None = None
    conversational: bool = True
    has_system: bool = False

    def sequences(self) -> list[list[Turn]]:
        """What the trainer tokenizes: one sequence, or chosen and rejected for a pair."""
        return [self.turns] if self.rejected is None else [self.turns, self.rejected]


def detect(record: Mapping[str, Any]) -> Format | None:
    """The format a record's fields mark it as, or None when it has none of them.

    The first match wins (a record with `messages` is chat even if it also has `text`);
    unpaired preference needs both `completion` and `label`, so a classification-style
    {"text", "label"} record stays plain text.
    """
    if "messages" in record:
        return Format.CHAT
    if "conversations" in record:
        return Format.SHAREGPT
    if "chosen" in record or "rejected" in record:
        return Format.PREFERENCE
    if "completion" in record and "label" in record:
        return Format.UNPAIRED_PREFERENCE
    if "prompt" in record or "completion" in record:
        return Format.PROMPT_COMPLETION
    if "instruction" in record or "output" in record:
        return Format.ALPACA
    if "text" in record:
        return Format.TEXT
    return None


class _Conversation:
    """Turns being collected, with the state the alternation rule needs."""

    __slots__ = ("has_assistant", "has_system", "prev", "turns")

    def __init__(self, turns: list[Turn] | None = None, prev: Role | None = None) -> None:
        self.turns: list[Turn] = turns if turns is not None else []
        self.prev = prev
        self.has_system = False
        self.has_assistant = False

    def copy(self) -> "_Conversation":
        other = _Conversation(list(self.turns), self.prev)
        other.has_system, other.has_assistant = self.has_system, self.has_assistant
        return other


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
_STR_ONLY = {str}
_UNKNOWN: Any = object()  # the role before a turn that could not be read


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


def _text_of(content: Any, message: Mapping[str, Any], role: Role) -> str | None:
    """A message's text: a string, text parts, or (for an assistant) its tool calls."""
    if type(content) is str:
        return content
    if content is None:
        if role is Role.ASSISTANT:
            for key in TOOL_CALL_KEYS:
                if message.get(key):
                    return orjson.dumps(message[key]).decode()
        return ""
    if type(content) is list:
        texts = [p.get("text") for p in content if type(p) is dict and p.get("type") == "text"]
        if all(type(t) is str for t in texts):
            media = len(texts) < len(content)
            joined = "".join(texts)
            return joined if joined.strip() or not media else f"[{len(content)} parts]"
    return None


class FormatChecker:
    """Checks records of every format; holds the role names the config accepts and how much of
    a value from the file a message may quote (limits.max_quoted_chars)."""

    def __init__(self, config: FormatsConfig, max_quoted_chars: int) -> None:
        self._max_quoted = max_quoted_chars
        self._chat_roles = config.chat_roles
        self._sharegpt_roles = config.sharegpt_roles
        self._chat_tags = {name: ROLE_TAGS[r] for name, r in config.chat_roles.items()}
        self._sharegpt_tags = {name: ROLE_TAGS[r] for name, r in config.sharegpt_roles.items()}

    def check(self, fmt: Format, record: Mapping[str, Any]) -> tuple[Example | None, list[Problem]]:
        """The record as an Example when it has no problem, else None and every problem."""
        problems: list[Problem] = []
        example = _CHECKS[fmt](self, record, problems)
        return (None, problems) if problems else (example, problems)

    # --- conversational pieces ------------------------------------------------------------

    def _messages(
        self,
        value: Any,
        path: str,
        conversation: _Conversation,
        problems: list[Problem],
        *,
        sharegpt: bool = False,
    ) -> None:
        """Append a message list's turns to `conversation`, checking roles, content, order.

        The loop is the hot path of a scan: a well-formed message costs a few lookups; only a
        faulty one pays for building messages.
        """
        role_key, content_key = ("from", "value") if sharegpt else ("role", "content")
        roles = self._sharegpt_roles if sharegpt else self._chat_roles
        if type(value) is not list:
            problems.append((ErrorCode.WRONG_TYPE, path, f"{path} must be a list of messages"))
            return
        if not value:
            problems.append((ErrorCode.EMPTY_CONTENT, path, f"{path} has no messages"))
            return
        turns, append = conversation.turns, conversation.turns.append
        prev, has_assistant = conversation.prev, conversation.has_assistant
        for index, message in enumerate(value):
            if type(message) is dict:
                name = message.get(role_key)
                role = roles.get(name) if type(name) is str else None
                text = message.get(content_key)
            else:
                role = text = None
            if role is None or type(text) is not str or not text or text.isspace():
                text = self._odd_message(
                    message, f"{path}[{index}]", role, roles, sharegpt, problems
                )
                if text is None:
                    prev = _UNKNOWN  # the next turn's order cannot be judged
                    continue
            if (prev, role) not in ALLOWED_ORDER and prev is not _UNKNOWN:
                where = f"{path}[{index}]"
                problems.append(
                    (ErrorCode.ROLE_ORDER, where, f"{where} ({role}): {_order_problem(prev, role)}")
                )
            prev = role
            if role is Role.ASSISTANT:
                has_assistant = True
            append((role, text))
        conversation.prev, conversation.has_assistant = prev, has_assistant
        conversation.has_system = bool(turns) and turns[0][0] is Role.SYSTEM

    def _odd_message(
        self,
        message: Any,
        where: str,
        role: Role | None,
        roles: Mapping[str, Role],
        sharegpt: bool,
        problems: list[Problem],
    ) -> str | None:
        """The slow path of a message that is not a plain, non-empty string turn: its text
        (tool calls, text parts; empty still counted) or None when it cannot be a turn."""
        role_key, content_key = ("from", "value") if sharegpt else ("role", "content")
        if type(message) is not dict:
            problems.append(
                (
                    ErrorCode.WRONG_TYPE,
                    where,
                    f"{where} must be an object with '{role_key}' and '{content_key}'",
                )
            )
            return None
        name = message.get(role_key)
        if role is None:
            if name is None:
                problems.append(
                    (ErrorCode.MISSING_FIELD, f"{where}.{role_key}", f"{where} has no '{role_key}'")
                )
            else:
                problems.append(
                    (
                        ErrorCode.UNKNOWN_ROLE,
                        f"{where}.{role_key}",
                        f"{where}.{role_key} is {quote(name, self._max_quoted)}; use one of "
                        f"{', '.join(roles)}",
                    )
                )
            return None
        calls_tool = role is Role.ASSISTANT and any(message.get(k) for k in TOOL_CALL_KEYS)
        if content_key not in message and not calls_tool:
            problems.append(
                (
                    ErrorCode.MISSING_FIELD,
                    f"{where}.{content_key}",
                    f"{where} has no '{content_key}'",
                )
            )
            return None
        text = _text_of(message.get(content_key), message, role)
        if text is None:
            problems.append(
                (
                    ErrorCode.WRONG_TYPE,
                    f"{where}.{content_key}",
                    f"{where}.{content_key} must be a string or a list of text parts",
                )
            )
            return None
        if not text or text.isspace():
            problems.append(
                (
                    ErrorCode.EMPTY_CONTENT,
                    f"{where}.{content_key}",
                    f"{where} ({name}) has empty {content_key}",
                )
            )
        return text

    def _string(
        self, record: Mapping[str, Any], key: str, problems: list[Problem], *, required: bool = True
    ) -> str | None:
        """A string field; when required: present, not null and not blank."""
        if key not in record:
            if required:
                problems.append((ErrorCode.MISSING_FIELD, key, f"the record has no '{key}'"))
            return None
        value = record[key]
        if value is None:
            if required:
                problems.append((ErrorCode.EMPTY_CONTENT, key, f"'{key}' is null"))
            return None
        if type(value) is not str:
            problems.append((ErrorCode.WRONG_TYPE, key, f"'{key}' must be a string"))
            return None
        if required and (not value or value.isspace()):
            problems.append((ErrorCode.EMPTY_CONTENT, key, f"'{key}' is empty"))
        return value

    def _require(
        self, record: Mapping[str, Any], keys: tuple[str, ...], fmt: Format, problems: list[Problem]
    ) -> bool:
        missing = [k for k in keys if k not in record]
        for key in missing:
            problems.append(
                (
                    ErrorCode.MISSING_FIELD,
                    key,
                    f"the record has no '{key}'; a {fmt} record needs {' and '.join(keys)}",
                )
            )
        return not missing

    def _no_assistant(
        self, conversation: _Conversation, path: str, problems: list[Problem]
    ) -> None:
        if not conversation.has_assistant:
            problems.append(
                (ErrorCode.NO_ASSISTANT_TURN, path, f"{path} has no assistant turn to learn from")
            )

    # --- one checker per format -----------------------------------------------------------

    def _well_formed(
        self,
        messages: Any,
        tags_by_name: dict[str, str],
        role_key: str,
        content_key: str,
        start: str = "",
    ) -> list[Turn] | None:
        """The turns of a message list with nothing wrong, checked in a few C-level passes;
        None sends it through _messages, which finds and words each problem (most records
        have none, and this is the hot path of a large scan)."""
        try:
            tags = start + "".join(
                map(tags_by_name.__getitem__, map(itemgetter(role_key), messages))
            )
            texts = list(map(itemgetter(content_key), messages))
        except (TypeError, KeyError):  # not a list of objects, a missing key, an unknown role
            return None
        if set(map(type, texts)) != _STR_ONLY or not well_formed(tags, texts):
            return None
        return list(zip(map(ROLE_OF_TAG.__getitem__, tags[len(start) :]), texts, strict=True))

    def _chat(self, record: Mapping[str, Any], problems: list[Problem]) -> Example:
        turns = self._well_formed(record["messages"], self._chat_tags, "role", "content")
        if turns is not None:
            return Example(Format.CHAT, turns, has_system=turns[0][0] is Role.SYSTEM)
        conversation = _Conversation()
        self._messages(record["messages"], "messages", conversation, problems)
        if not problems:
            self._no_assistant(conversation, "messages", problems)
        return Example(Format.CHAT, conversation.turns, has_system=conversation.has_system)

    def _sharegpt(self, record: Mapping[str, Any], problems: list[Problem]) -> Example:
        conversation = _Conversation()
        system = self._string(record, "system", problems, required=False)
        if system and not system.isspace():
            conversation.turns.append((Role.SYSTEM, system))
            conversation.prev, conversation.has_system = Role.SYSTEM, True
        start = ROLE_TAGS[Role.SYSTEM] if conversation.turns else ""
        turns = self._well_formed(
            record["conversations"], self._sharegpt_tags, "from", "value", start
        )
        if turns is not None and not problems:
            turns = conversation.turns + turns
            return Example(Format.SHAREGPT, turns, has_system=turns[0][0] is Role.SYSTEM)
        self._messages(
            record["conversations"], "conversations", conversation, problems, sharegpt=True
        )
        if not problems:
            self._no_assistant(conversation, "conversations", problems)
        return Example(Format.SHAREGPT, conversation.turns, has_system=conversation.has_system)

    def _alpaca(self, record: Mapping[str, Any], problems: list[Problem]) -> Example:
        instruction = self._string(record, "instruction", problems)
        extra = self._string(record, "input", problems, required=False)
        output = self._string(record, "output", problems)
        system = self._string(record, "system", problems, required=False)
        has_system = bool(system) and not system.isspace()
        turns: list[Turn] = [(Role.SYSTEM, system)] if has_system else []
        history = record.get("history")
        if history:
            if type(history) is not list or not all(
                type(p) is list and len(p) == 2 and all(type(t) is str for t in p) for p in history
            ):
                problems.append(
                    (
                        ErrorCode.WRONG_TYPE,
                        "history",
                        "'history' must be a list of [instruction, response] string pairs",
                    )
                )
            else:
                for query, response in history:
                    turns += [(Role.USER, query), (Role.ASSISTANT, response)]
        prompt = instruction or ""
        if extra and not extra.isspace():
            prompt = f"{prompt}\n\n{extra}"
        turns += [(Role.USER, prompt), (Role.ASSISTANT, output or "")]
        return Example(Format.ALPACA, turns, has_system=has_system)

    def _prompt_and_completion(
        self, record: Mapping[str, Any], fmt: Format, problems: list[Problem]
    ) -> tuple[list[Turn], bool, bool]:
        """Prompt then completion, both strings or both message lists; (turns, chat?, system?)."""
        prompt, completion = record["prompt"], record["completion"]
        if type(prompt) is list or type(completion) is list:
            if type(prompt) is not list or type(completion) is not list:
                problems.append(
                    (
                        ErrorCode.WRONG_TYPE,
                        "prompt",
                        "'prompt' and 'completion' must both be "
                        "strings or both be lists of messages",
                    )
                )
                return [], True, False
            conversation = _Conversation()
            self._messages(prompt, "prompt", conversation, problems)
            self._messages(completion, "completion", conversation, problems)
            if not problems:
                self._no_assistant(conversation, "completion", problems)
            return conversation.turns, True, conversation.has_system
        prompt_text = self._string(record, "prompt", problems)
        completion_text = self._string(record, "completion", problems)
        turns = [(Role.USER, prompt_text or ""), (Role.ASSISTANT, completion_text or "")]
        return turns, False, False

    def _prompt_completion(self, record: Mapping[str, Any], problems: list[Problem]) -> Example:
        fmt = Format.PROMPT_COMPLETION
        if not self._require(record, ("prompt", "completion"), fmt, problems):
            return Example(fmt, [])
        turns, chat, system = self._prompt_and_completion(record, fmt, problems)
        return Example(fmt, turns, conversational=chat, has_system=system)

    def _unpaired_preference(self, record: Mapping[str, Any], problems: list[Problem]) -> Example:
        fmt = Format.UNPAIRED_PREFERENCE
        if not self._require(record, ("prompt", "completion", "label"), fmt, problems):
            return Example(fmt, [])
        label = record["label"]
        if type(label) is not bool:
            problems.append(
                (
                    ErrorCode.WRONG_TYPE,
                    "label",
                    f"'label' must be true or false, not {quote(label, self._max_quoted)}",
                )
            )
        turns, chat, system = self._prompt_and_completion(record, fmt, problems)
        return Example(fmt, turns, label=label is True, conversational=chat, has_system=system)

    def _preference(self, record: Mapping[str, Any], problems: list[Problem]) -> Example:
        fmt = Format.PREFERENCE
        if not self._require(record, ("chosen", "rejected"), fmt, problems):
            return Example(fmt, [])
        chosen, rejected = record["chosen"], record["rejected"]
        if type(chosen) is list or type(rejected) is list:
            return self._conversational_pair(record, problems)
        prompt = self._string(record, "prompt", problems, required=False)
        chosen_text = self._string(record, "chosen", problems)
        rejected_text = self._string(record, "rejected", problems)
        if chosen_text is not None and chosen_text.split() == (rejected_text or "").split():
            problems.append(
                (ErrorCode.IDENTICAL_PAIR, "rejected", "'chosen' and 'rejected' are the same text")
            )
        head: list[Turn] = [(Role.USER, prompt)] if prompt else []
        return Example(
            fmt,
            [*head, (Role.ASSISTANT, chosen_text or "")],
            rejected=[*head, (Role.ASSISTANT, rejected_text or "")],
            conversational=False,
        )

    def _conversational_pair(self, record: Mapping[str, Any], problems: list[Problem]) -> Example:
        """Chosen and rejected message lists, after a shared prompt (explicit or implicit)."""
        fmt = Format.PREFERENCE
        if type(record["chosen"]) is not list or type(record["rejected"]) is not list:
            problems.append(
                (
                    ErrorCode.WRONG_TYPE,
                    "rejected",
                    "'chosen' and 'rejected' must both be strings or both be lists of messages",
                )
            )
            return Example(fmt, [])
        prompt = _Conversation()
        if "prompt" in record and record["prompt"] is not None:
            self._messages(record["prompt"], "prompt", prompt, problems)
        chosen, rejected = prompt.copy(), prompt.copy()
        self._messages(record["chosen"], "chosen", chosen, problems)
        self._messages(record["rejected"], "rejected", rejected, problems)
        if problems:
            return Example(fmt, [])
        self._no_assistant(chosen, "chosen", problems)
        self._no_assistant(rejected, "rejected", problems)
        start = len(prompt.turns)
        if _squashed(chosen.turns[start:]) == _squashed(rejected.turns[start:]):
            problems.append(
                (ErrorCode.IDENTICAL_PAIR, "rejected", "'chosen' and 'rejected' are the same")
            )
        return Example(fmt, chosen.turns, rejected=rejected.turns, has_system=chosen.has_system)

    def _text(self, record: Mapping[str, Any], problems: list[Problem]) -> Example:
        text = self._string(record, "text", problems)
        return Example(Format.TEXT, [(Role.ASSISTANT, text or "")], conversational=False)


def _squashed(turns: list[Turn]) -> list[tuple[Role, list[str]]]:
    return [(role, text.split()) for role, text in turns]


_CHECKS = {
    Format.CHAT: FormatChecker._chat,
    Format.SHAREGPT: FormatChecker._sharegpt,
    Format.ALPACA: FormatChecker._alpaca,
    Format.PROMPT_COMPLETION: FormatChecker._prompt_completion,
    Format.UNPAIRED_PREFERENCE: FormatChecker._unpaired_preference,
    Format.PREFERENCE: FormatChecker._preference,
    Format.TEXT: FormatChecker._text,
}
