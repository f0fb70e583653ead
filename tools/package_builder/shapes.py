"""The record layouts TRL trains on, and how each validated format is written in one of them.

A package holds its data already in the layout the trainer reads (TRL's dataset_formats.md), so
train.py maps nothing: chat, ShareGPT and Alpaca records become `messages` conversations (ShareGPT
roles human/gpt as user/assistant, as the validator maps them), prompt-completion records keep
their layout, every preference layout (TRL's, LLaMA-Factory's, OpenAI's) becomes TRL's
prompt/chosen/rejected (strings, or message lists when conversational), text stays text, and
every unpaired layout takes TRL's KTO layout {prompt, completion, label}: the completion is the
final assistant turn(s), the prompt what comes before.
Records are written from the validator's own Example, in its canonical roles: messages keep
their tool calls, tool_call_id, name and reasoning, and a record its `tools`, as TRL's "Tool
Calling" section lays them out, so the chat template renders them as the model expects.
"""

from enum import StrEnum
from typing import Any

from tools.dataset_validator.content import TurnDetail
from tools.dataset_validator.conversation import Turn
from tools.dataset_validator.formats import Example
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
    Format.SHAREGPT_UNPAIRED: Shape.UNPAIRED,
    Format.CHAT_UNPAIRED: Shape.UNPAIRED,
    Format.SHAREGPT_PREFERENCE: Shape.PREFERENCE,
    Format.OPENAI_PREFERENCE: Shape.PREFERENCE,
}
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


def trl_record(shape: Shape, example: Example) -> dict[str, Any]:
    """A validated record (checked into `example`) as a record of `shape`."""
    turns = example.turns
    if shape is Shape.TEXT:
        return {"text": turns[0][1]}
    if not example.conversational:
        if shape is Shape.MESSAGES:
            return {"messages": messages(turns, None)}
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
    conversation = messages(turns, example.details)
    if shape is Shape.MESSAGES:
        record: dict[str, Any] = {"messages": conversation}
    elif shape is Shape.PROMPT_COMPLETION:
        split = example.prompt_turns or 0
        record = {"prompt": conversation[:split], "completion": conversation[split:]}
    elif shape is Shape.UNPAIRED:
        split = example.prompt_turns
        if split is None:
            split = _completion_start(turns)
        record = {
            "prompt": conversation[:split],
            "completion": conversation[split:],
            "label": example.label,
        }
    else:
        rejected = example.rejected or []
        split = example.prompt_turns
        if split is None:
            split = _shared_prefix(turns, rejected)
        record = {
            "prompt": conversation[:split],
            "chosen": conversation[split:],
            "rejected": messages(rejected, example.rejected_details)[split:],
        }
    if example.tools:
        record["tools"] = example.tools
    return record


def messages(turns: list[Turn], details: dict[int, TurnDetail] | None) -> list[dict[str, Any]]:
    """The turns as chat messages in canonical roles; a turn with `details` is written with its
    own content and its chat-template fields (tool calls, tool_call_id, name, reasoning)."""
    if not details:
        return [{"role": str(role), "content": text} for role, text in turns]
    written = []
    for index, (role, text) in enumerate(turns):
        detail = details.get(index)
        if detail is None:
            written.append({"role": str(role), "content": text})
        else:
            written.append({"role": str(role), "content": detail.content, **detail.fields})
    return written


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
