"""A message's content as chat templates take it: text, reasoning, tool calls, tools and media.

Layouts hold these differently: a string (OpenAI, TRL, ShareGPT); typed parts, OpenAI's
{"type": "text", "text": ...} and image_url / input_audio parts or LLaMA-Factory v1's
{"type": ..., "value": ...} (text, reasoning, tool_call, tools, *_url); OpenAI's `tool_calls`
(arguments a JSON string) or legacy `function_call`; a ShareGPT function_call turn holding
{"name", "arguments"} as JSON; a `tools` list, or that list as a JSON string (LLaMA-Factory).
Each is read into what transformers' chat templates render: the text, `reasoning_content` (what
Qwen3- and DeepSeek-R1-style templates read, and what LLaMA-Factory v1 makes of reasoning parts),
`tool_calls` as [{"type": "function", "function": {"name", "arguments": {...}}}] and `tools` as
[{"type": "function", "function": {...}}] (TRL dataset_formats.md "Tool Calling": arguments an
object, tools JSON schemas). Media (image, audio, video parts; LLaMA-Factory's `images`,
`videos`, `audios` columns and their <image> tags) is counted, and removed only when asked.
"""

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from tools.dataset_validator.config import FormatsConfig
from tools.dataset_validator.kinds import MEDIA_KINDS, ErrorCode, PartKind
from tools.quoting import quote

Problem = tuple[ErrorCode, str, str]
"""(code, JSON path of the field, message)."""

REASONING_FIELDS = ("reasoning_content", "thinking")
"""A message's reasoning, kept under its own name: reasoning_content (Qwen3, DeepSeek-R1 chat
templates), thinking (TRL dataset_formats.md "Harmony", gpt-oss)."""
PART_REASONING_FIELD = REASONING_FIELDS[0]
"""Where reasoning parts go: LLaMA-Factory v1 renders them as reasoning_content too."""
WEIGHT_FIELDS = ("weight", "loss_weight")
"""Whether an assistant turn is trained on: OpenAI chat fine-tuning's `weight` (0 or 1),
LLaMA-Factory v1's `loss_weight`. TRL has no per-turn weight: 0 is warned about, not honoured."""
_FAILED: Any = object()  # JSON text that did not parse (its problem is recorded)


@dataclass(frozen=True, slots=True)
class TurnDetail:
    """What a package writes for a turn besides its role: the message's own text (the turn's text
    also holds its reasoning and tool calls, which count and make it distinct) and the
    chat-template fields (tool_calls, tool_call_id, name, reasoning)."""

    content: str
    fields: dict[str, Any]


class Reading:
    """One record being read: its problems, the tools it declares and the media it holds."""

    __slots__ = ("media", "media_at", "problems", "tags", "tools", "untrained")

    def __init__(self) -> None:
        """Only the problems list up front: most records declare no tools and hold no media,
        and a scan makes one Reading per record."""
        self.problems: list[Problem] = []
        self.tools: list[dict[str, Any]] | None = None
        self.media: Counter[PartKind] | None = None
        self.media_at: str | None = None
        self.tags: tuple[str, ...] = ()
        """Media tags to take out of every text (the record's media is being dropped)."""
        self.untrained = 0
        """Assistant turns the record marks not to train on (WEIGHT_FIELDS at 0)."""

    def add(self, code: ErrorCode, path: str, message: str) -> None:
        self.problems.append((code, path, message))

    def add_tools(self, tools: list[dict[str, Any]] | None) -> None:
        if tools:
            self.tools = [*(self.tools or []), *tools]

    def found_media(self, kind: PartKind, where: str, count: int = 1) -> None:
        if self.media is None:
            self.media, self.media_at = Counter(), where
        self.media[kind] += count

    def clean(self, text: str) -> str:
        """`text` without the tags of media being dropped."""
        for tag in self.tags:
            text = text.replace(tag, "")
        return text


@dataclass(frozen=True, slots=True)
class Parts:
    """A message's content once read: its text, reasoning and tool calls."""

    text: str
    reasoning: str = ""
    calls: list[dict[str, Any]] | None = None
    had_media: bool = False


def calls_text(calls: list[dict[str, Any]]) -> str:
    """Tool calls as the text a turn counts and is compared by."""
    return orjson.dumps(calls).decode()


class ContentReader:
    """Reads content, tool calls, tools and media, with the part types the config names."""

    def __init__(self, config: FormatsConfig, max_quoted: int, drop_media: bool) -> None:
        self._parts = config.content_parts
        self._media_fields = config.media_fields
        self._max_quoted = max_quoted
        self.drop_media = drop_media

    def media_fields(self, record: Mapping[str, Any], reading: Reading) -> None:
        """Count the files of the record's media columns; when dropping, their tags go too."""
        tags = []
        for key, field in self._media_fields.items():
            value = record.get(key)
            files = len(value) if isinstance(value, list) else int(bool(value))
            if files:
                reading.found_media(field.kind, key, files)
                tags.append(field.tag)
        if self.drop_media:
            reading.tags = tuple(tags)

    def content(self, value: Any, where: str, reading: Reading) -> Parts | None:
        """A message's content: a string, null (a tool-calling turn), or typed parts."""
        if type(value) is str:
            text = reading.clean(value)
            return Parts(text, had_media=len(text) != len(value))
        if value is None:
            return Parts("")
        if type(value) is not list:
            reading.add(
                ErrorCode.WRONG_TYPE, where, f"{where} must be a string or a list of content parts"
            )
            return None
        texts: list[str] = []
        reasoning: list[str] = []
        calls: list[dict[str, Any]] = []
        before, media = len(reading.problems), False
        for index, part in enumerate(value):
            at = f"{where}[{index}]"
            kind = self._kind(part, at, reading)
            if kind is None:
                continue
            if kind in MEDIA_KINDS:
                reading.found_media(kind, at)
                media = True
                continue
            text = part["text"] if "text" in part else part.get("value")
            if type(text) is not str:
                reading.add(
                    ErrorCode.WRONG_TYPE, at, f"{at} ({kind}) needs a string 'text' or 'value'"
                )
            elif kind is PartKind.TEXT:
                texts.append(reading.clean(text))
            elif kind is PartKind.REASONING:
                reasoning.append(text)
            elif kind is PartKind.TOOL_CALL:
                calls += self.call_json(text, f"{at}.value", reading) or []
            else:
                reading.add_tools(self.tools(text, f"{at}.value", reading))
        if len(reading.problems) > before:
            return None
        return Parts("".join(texts), "".join(reasoning), calls or None, media)

    def _kind(self, part: Any, at: str, reading: Reading) -> PartKind | None:
        name = part.get("type") if type(part) is dict else None
        kind = self._parts.get(name) if type(name) is str else None
        if kind is None:
            if type(part) is not dict or name is None:
                reading.add(ErrorCode.WRONG_TYPE, at, f"{at} must be an object with a 'type'")
            else:
                reading.add(
                    ErrorCode.WRONG_TYPE,
                    f"{at}.type",
                    f"{at}.type is {quote(name, self._max_quoted)}; use one of "
                    f"{', '.join(self._parts)}",
                )
        return kind

    # --- tool calls and tools -------------------------------------------------------------------

    def tool_calls(self, value: Any, where: str, reading: Reading) -> list[dict[str, Any]] | None:
        """OpenAI's `tool_calls`: [{"id", "type": "function", "function": {"name", "arguments"}}]"""
        if type(value) is not list:
            reading.add(ErrorCode.INVALID_TOOL, where, f"{where} must be a list of tool calls")
            return None
        calls = []
        for index, call in enumerate(value):
            at = f"{where}[{index}]"
            function = call.get("function") if type(call) is dict else None
            if type(function) is not dict:
                reading.add(
                    ErrorCode.INVALID_TOOL,
                    at,
                    f'{at} must be {{"type": "function", "function": {{"name", "arguments"}}}}',
                )
                continue
            if call.get("type", "function") != "function":
                reading.add(
                    ErrorCode.INVALID_TOOL,
                    f"{at}.type",
                    f"{at}.type is {quote(call['type'], self._max_quoted)}; only function calls "
                    "are rendered by chat templates",
                )
                continue
            normal = self._call(function, f"{at}.function", reading)
            if normal is not None:
                if "id" in call:
                    normal["id"] = call["id"]
                calls.append(normal)
        return calls if len(calls) == len(value) else None

    def function_call(
        self, value: Any, where: str, reading: Reading
    ) -> list[dict[str, Any]] | None:
        """OpenAI's legacy `function_call` {"name", "arguments"}, as a one-call list."""
        if type(value) is not dict:
            reading.add(ErrorCode.INVALID_TOOL, where, f'{where} must be {{"name", "arguments"}}')
            return None
        call = self._call(value, where, reading)
        return None if call is None else [call]

    def call_json(self, text: str, where: str, reading: Reading) -> list[dict[str, Any]] | None:
        """A tool call written as JSON text (ShareGPT function_call, LLaMA-Factory v1 tool_call):
        {"name", "arguments"}, or a list of them."""
        value = self._json(text, where, reading)
        if value is _FAILED:
            return None
        listed = value if type(value) is list else [value]
        calls = []
        for index, call in enumerate(listed):
            at = f"{where}[{index}]" if type(value) is list else where
            if type(call) is not dict:
                reading.add(ErrorCode.INVALID_TOOL, at, f'{at} must be {{"name", "arguments"}}')
                continue
            normal = self._call(call, at, reading)
            if normal is not None:
                calls.append(normal)
        return calls if calls and len(calls) == len(listed) else None

    def _call(
        self, function: dict[str, Any], where: str, reading: Reading
    ) -> dict[str, Any] | None:
        """{"name", "arguments"} in TRL's layout: arguments an object (OpenAI sends JSON text)."""
        name, arguments = function.get("name"), function.get("arguments")
        if type(name) is not str or not name.strip():
            reading.add(ErrorCode.INVALID_TOOL, f"{where}.name", f"{where} has no function name")
            return None
        if type(arguments) is str:
            arguments = self._json(arguments, f"{where}.arguments", reading)
            if arguments is _FAILED:
                return None
        if type(arguments) is not dict:
            reading.add(
                ErrorCode.INVALID_TOOL,
                f"{where}.arguments",
                f"{where}.arguments must be a JSON object (or a string holding one)",
            )
            return None
        return {"type": "function", "function": {"name": name, "arguments": arguments}}

    def tools(self, value: Any, where: str, reading: Reading) -> list[dict[str, Any]] | None:
        """A `tools` list (or its JSON text) as function schemas; a bare {"name", ...} schema, as
        LLaMA-Factory's glaive data has, is wrapped as {"type": "function", "function": ...}."""
        if type(value) is str:
            if not value.strip():
                return []
            value = self._json(value, where, reading)
            if value is _FAILED:
                return None
        if value is None:
            return []
        listed = value if type(value) is list else [value]
        tools = []
        for index, tool in enumerate(listed):
            at = f"{where}[{index}]" if type(value) is list else where
            function = tool.get("function", tool) if type(tool) is dict else None
            name = function.get("name") if type(function) is dict else None
            if type(name) is not str or not name.strip():
                reading.add(
                    ErrorCode.INVALID_TOOL,
                    at,
                    f'{at} must be {{"type": "function", "function": {{"name", "description", '
                    '"parameters"}}',
                )
            elif "function" in tool and tool.get("type", "function") != "function":
                reading.add(
                    ErrorCode.INVALID_TOOL,
                    f"{at}.type",
                    f"{at}.type is {quote(tool['type'], self._max_quoted)}; use function",
                )
            else:
                tools.append(tool if "function" in tool else {"type": "function", "function": tool})
        return tools if len(tools) == len(listed) else None

    def _json(self, text: str, where: str, reading: Reading) -> Any:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            reading.add(ErrorCode.INVALID_TOOL, where, f"{where} is not valid JSON ({exc})")
            return _FAILED
