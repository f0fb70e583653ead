"""The words config, readers, checks and reports share: formats, roles, error and warning codes."""

from enum import StrEnum
from typing import Literal

Conversion = Literal["sft"]
"""What validate_datasets can make of preference data when asked (convert: "sft")."""


class Format(StrEnum):
    """Record layouts, named as TRL's dataset_formats.md, LLaMA-Factory, Alpaca and OpenAI's
    fine-tuning guides name them."""

    CHAT = "chat"
    SHAREGPT = "sharegpt"
    ALPACA = "alpaca"
    PROMPT_COMPLETION = "prompt_completion"
    PREFERENCE = "preference"
    UNPAIRED_PREFERENCE = "unpaired_preference"
    TEXT = "text"
    SHAREGPT_PREFERENCE = "sharegpt_preference"
    """LLaMA-Factory's ranking layout: the prompt turns, then `chosen` and `rejected` messages."""
    SHAREGPT_UNPAIRED = "sharegpt_unpaired"
    """LLaMA-Factory's KTO layout: a ShareGPT conversation and a boolean `kto_tag`."""
    CHAT_UNPAIRED = "chat_unpaired"
    """`messages` and a boolean `label` (or `kto_tag`): the label judges the last answer."""
    OPENAI_PREFERENCE = "openai_preference"
    """OpenAI preference fine-tuning: `input`, `preferred_output`, `non_preferred_output`."""


class Role(StrEnum):
    """The canonical turn roles every conversational format is mapped onto."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class PartKind(StrEnum):
    """What a typed content part holds (formats.content_parts maps each `type` to one)."""

    TEXT = "text"
    REASONING = "reasoning"
    TOOL_CALL = "tool_call"
    TOOLS = "tools"
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"


MEDIA_KINDS = frozenset({PartKind.IMAGE, PartKind.AUDIO, PartKind.VIDEO})
"""What the text-only trainers packaged here cannot take."""
MEDIA_NAMES = {PartKind.IMAGE: "images", PartKind.AUDIO: "audio", PartKind.VIDEO: "videos"}


class FileType(StrEnum):
    JSONL = "jsonl"
    JSON = "json"
    CSV = "csv"
    PARQUET = "parquet"


class ErrorCode(StrEnum):
    """Why a record (or a whole dataset) cannot be used for training."""

    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    EMPTY_CONTENT = "empty_content"
    UNKNOWN_ROLE = "unknown_role"
    NO_ASSISTANT_TURN = "no_assistant_turn"
    ROLE_ORDER = "role_order"
    LINE_TOO_LONG = "line_too_long"
    ENCODING_ERROR = "encoding_error"
    IDENTICAL_PAIR = "identical_pair"
    MIXED_FORMAT = "mixed_format"
    INVALID_CSV = "invalid_csv"
    UNREADABLE_FILE = "unreadable_file"
    FILE_TOO_LARGE = "file_too_large"
    EMPTY_DATASET = "empty_dataset"
    TOO_FEW_RECORDS = "too_few_records"
    FORMAT_VS_METHOD = "format_vs_method"
    SINGLE_LABEL = "single_label"
    UNKNOWN_COLUMNS = "unknown_columns"
    INVALID_TOOL = "invalid_tool"
    HAS_MEDIA = "has_media"


class WarningCode(StrEnum):
    """What will train, but probably not the way the user wants."""

    DUPLICATE = "duplicate"
    DUPLICATE_ACROSS_DATASETS = "duplicate_across_datasets"
    TRAIN_VALIDATION_OVERLAP = "train_validation_overlap"
    TOO_LONG = "too_long"
    PLACEHOLDER = "placeholder"
    LENGTH_OUTLIER = "length_outlier"
    NO_SYSTEM_MESSAGE = "no_system_message"
    EMPTY_VALIDATION = "empty_validation"
    BLANK_LINES = "blank_lines"
    LABEL_RATIO = "label_ratio"
    NOTHING_CONVERTED = "nothing_converted"
    MEDIA_DROPPED = "media_dropped"
    UNTRAINED_TURNS = "untrained_turns"


FORMAT_FIELDS: dict[Format, tuple[tuple[str, ...], tuple[str, ...]]] = {
    Format.CHAT: (("messages",), ("tools",)),
    Format.SHAREGPT: (("conversations",), ("system", "tools")),
    Format.ALPACA: (("instruction", "output"), ("input", "system", "history")),
    Format.PROMPT_COMPLETION: (("prompt", "completion"), ()),
    Format.PREFERENCE: (("chosen", "rejected"), ("prompt",)),
    Format.UNPAIRED_PREFERENCE: (("prompt", "completion", "label"), ()),
    Format.TEXT: (("text",), ()),
    Format.SHAREGPT_PREFERENCE: (("conversations", "chosen", "rejected"), ("system", "tools")),
    Format.SHAREGPT_UNPAIRED: (("conversations", "kto_tag"), ("system", "tools")),
    Format.CHAT_UNPAIRED: (("messages", "label"), ("tools",)),
    Format.OPENAI_PREFERENCE: (("input", "preferred_output", "non_preferred_output"), ()),
}
"""Each format's top-level fields, (required, optional), as formats.FormatChecker reads them:
what columns a user's may be mapped to (validate_datasets' `columns`)."""
TARGET_FIELDS = frozenset(f for fields in FORMAT_FIELDS.values() for group in fields for f in group)
