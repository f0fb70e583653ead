"""The record layouts TRL trains on, and how each validated format is written in one of them.

A package holds its data already in the layout the trainer reads (TRL's dataset_formats.md), so
train.py maps nothing: chat, ShareGPT and Alpaca records become `messages` conversations (ShareGPT
roles human/gpt as user/assistant, as the validator maps them), prompt-completion and preference
records keep their layout (strings, or message lists when conversational), text stays text, and
unpaired examples take TRL's KTO layout {prompt, completion, label}: the completion is the final
assistant turn(s), the prompt what comes before.
Records come from the validator's own checker, in its canonical roles; chat messages keep their
tool calls, so the chat template renders them as the model expects.
"""

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from tools.dataset_validator.formats import Example, Turn
from tools.dataset_validator.kinds import Format, Role
from tools.errors import UserError


class Shape(StrEnum):
    """TRL's dataset types, by the columns a record has."""

    MESSAGES = "messages"
    PROMPT_COMPLETION = "prompt_completion"
    TEXT = "text"
    PREFERENCE = "preference"
    UNPAIRED = "unpaired_preference"


SHAPE_OF_FORMAT = {
    Format.CHAT: Shape.MESSAGES,
    Format.SHAREGPT: Shape.MESSAGES,
    Format.ALPACA: Shape.MESSAGES,
    Format.PROMPT_COMPLETION: Shape.PROMPT_COMPLETION,
    Format.TEXT: Shape.TEXT,
    Format.PREFERENCE: Shape.PREFERENCE,
    Format.UNPAIRED_PREFERENCE: Shape.UNPAIRED,
}
# What a message keeps besides its role: the chat-template fields of tool use (OpenAI / TRL).
_MESSAGE_KEYS = ("tool_calls", "tool_call_id", "name")
# Shapes that train together, and the one they are written in: a prompt-completion record is
# one conversation (prompt turns, then completion turns) among other conversations.
_COMBINED = {frozenset({Shape.MESSAGES, Shape.PROMPT_COMPLETION}): Shape.MESSAGES}


def package_shape(formats: list[Format]) -> Shape:
    """The one layout the package's datasets are written in; UserError when they have none."""
    unsupported = sorted({f for f in formats if f not in SHAPE_OF_FORMAT})
    if unsupported:
        known = ", ".join(SHAPE_OF_FORMAT)
        raise UserError(
            f"{', '.join(unsupported)} data has no layout a packaged trainer reads; validate "
            f"data of these formats instead: {known}."
        )
    shapes = frozenset(SHAPE_OF_FORMAT[f] for f in formats)
    if len(shapes) == 1:
        return next(iter(shapes))
    combined = _COMBINED.get(shapes)
    if combined is None:
        raise UserError(
            f"The datasets are {', '.join(sorted(set(formats)))}: one training run cannot mix "
            f"{' and '.join(sorted(shapes))} records. Package them separately: validate_datasets "
            "with the datasets of one kind."
        )
    return combined


def trl_record(shape: Shape, example: Example, record: Mapping[str, Any]) -> dict[str, Any]:
    """The validated `record` (checked into `example`) as a record of `shape`."""
    turns = example.turns
    if shape is Shape.TEXT:
        return {"text": turns[0][1]}
    if not example.conversational:
        if shape is Shape.MESSAGES:
            return {"messages": _messages(turns, None)}
        prompt = turns[0][1] if len(turns) > 1 else ""  # none: an implicit-prompt pair
        if shape is Shape.PROMPT_COMPLETION:
            return {"prompt": prompt, "completion": turns[-1][1]}
        if shape is Shape.UNPAIRED:
            return {"prompt": prompt, "completion": turns[-1][1], "label": example.label}
        return {
            "prompt": prompt,
            "chosen": turns[-1][1],
            "rejected": (example.rejected or [])[-1][1],
        }
    given = record.get("prompt")
    head = given if isinstance(given, list) else []
    if example.format is Format.CHAT:
        conversation = _messages(turns, record["messages"])
    elif example.format in (Format.PROMPT_COMPLETION, Format.UNPAIRED_PREFERENCE):
        conversation = _messages(turns, [*head, *record["completion"]])
    elif example.format is Format.PREFERENCE:
        conversation = _messages(turns, [*head, *record["chosen"]])
    else:
        conversation = _messages(turns, None)
    if shape is Shape.MESSAGES:
        return {"messages": conversation}
    if shape is Shape.PROMPT_COMPLETION:
        return {"prompt": conversation[: len(head)], "completion": conversation[len(head) :]}
    if shape is Shape.UNPAIRED:
        split = len(head) if isinstance(given, list) else _completion_start(turns)
        return {
            "prompt": conversation[:split],
            "completion": conversation[split:],
            "label": example.label,
        }
    rejected = _messages(example.rejected or [], [*head, *record["rejected"]])
    split = len(head) if isinstance(given, list) else _shared_prefix(turns, example.rejected or [])
    return {
        "prompt": conversation[:split],
        "chosen": conversation[split:],
        "rejected": rejected[split:],
    }


def _messages(turns: list[Turn], raw: list[Any] | None) -> list[dict[str, Any]]:
    """The turns as chat messages in canonical roles; with the `raw` messages they were read
    from (one per turn), each keeps its tool calls, and its text where it had no parts."""
    if raw is None:
        return [{"role": str(role), "content": text} for role, text in turns]
    messages = []
    for (role, text), message in zip(turns, raw, strict=True):
        content = message.get("content")
        calls_tools = content is None and "tool_calls" in message
        kept = {key: message[key] for key in _MESSAGE_KEYS if key in message}
        content = content if isinstance(content, str) or calls_tools else text
        messages.append({"role": str(role), "content": content, **kept})
    return messages


def _completion_start(turns: list[Turn]) -> int:
    """Where the final assistant turn(s) begin: what an unpaired example without a prompt of
    its own (a conversation and a label) is judged on; the turns before are its prompt."""
    start = len(turns)
    while start > 1 and turns[start - 1][0] is Role.ASSISTANT:
        start -= 1
    return start


def _shared_prefix(chosen: list[Turn], rejected: list[Turn]) -> int:
    """Turns an implicit-prompt pair shares (TRL's extract_prompt), leaving each one answer."""
    limit = min(len(chosen), len(rejected)) - 1
    shared = 0
    while shared < limit and chosen[shared] == rejected[shared]:
        shared += 1
    return shared
