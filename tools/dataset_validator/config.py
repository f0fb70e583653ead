"""configs/datasets.yaml: where datasets may come from and what every record must satisfy."""

import re
from itertools import pairwise
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from tools.config_base import ConfigModel
from tools.dataset_validator.kinds import (
    MEDIA_KINDS,
    TARGET_FIELDS,
    FileType,
    Format,
    PartKind,
    Role,
)

PositiveSeconds = Annotated[float, Field(gt=0)]
GZIP_SUFFIX = ".gz"


class SplitConfig(ConfigModel):
    default_validation_split: Annotated[float, Field(ge=0, lt=1)]
    min_validation_split: Annotated[float, Field(ge=0, lt=1)]
    max_validation_split: Annotated[float, Field(gt=0, lt=1)]
    seed: int

    @model_validator(mode="after")
    def _default_in_range(self) -> "SplitConfig":
        lo, hi = self.min_validation_split, self.max_validation_split
        if lo > hi:
            raise ValueError(f"min_validation_split ({lo}) exceeds max_validation_split ({hi})")
        if self.default_validation_split and not lo <= self.default_validation_split <= hi:
            raise ValueError(f"default_validation_split is outside [{lo}, {hi}]")
        return self


class LimitsConfig(ConfigModel):
    min_datasets: Annotated[int, Field(ge=1)]
    max_datasets: Annotated[int, Field(ge=1)]
    min_records_per_dataset: Annotated[int, Field(ge=1)]
    max_line_bytes: Annotated[int, Field(ge=1024)]
    examples_per_error_code: Annotated[int, Field(ge=1, le=100)]
    preview_records: Annotated[int, Field(ge=0, le=50)]
    preview_max_chars: Annotated[int, Field(ge=16)]
    max_quoted_chars: Annotated[int, Field(ge=16)]
    max_download_bytes: Annotated[int, Field(ge=1)]
    max_files_per_dataset: Annotated[int, Field(ge=1)]
    max_decompressed_bytes_per_file: Annotated[int, Field(ge=1)]
    max_decompressed_bytes_per_call: Annotated[int, Field(ge=1)]
    max_compression_ratio: Annotated[float, Field(gt=1)]
    compression_ratio_after_bytes: Annotated[int, Field(ge=0)]
    max_parquet_column_chunk_bytes: Annotated[int, Field(ge=1)]

    @model_validator(mode="after")
    def _min_below_max(self) -> "LimitsConfig":
        if self.min_datasets > self.max_datasets:
            raise ValueError(
                f"min_datasets ({self.min_datasets}) exceeds max_datasets ({self.max_datasets})"
            )
        return self

    @model_validator(mode="after")
    def _byte_bounds_nest(self) -> "LimitsConfig":
        """A record must fit in a Parquet column chunk, a chunk in a file, a file in a call."""
        nested = [
            "max_line_bytes",
            "max_parquet_column_chunk_bytes",
            "max_decompressed_bytes_per_file",
            "max_decompressed_bytes_per_call",
        ]
        for smaller, larger in pairwise(nested):
            low, high = getattr(self, smaller), getattr(self, larger)
            if low > high:
                raise ValueError(f"{smaller} ({low}) exceeds {larger} ({high})")
        return self


class ReadingConfig(ConfigModel):
    """How files are read: buffer sizes and how often a long scan reports and checks in."""

    buffer_bytes: Annotated[int, Field(ge=4096)]
    batch_bytes: Annotated[int, Field(ge=4096)]
    parquet_batch_rows: Annotated[int, Field(ge=1)]
    progress_interval_s: PositiveSeconds
    check_every_records: Annotated[int, Field(ge=1)]
    sniff_bytes: Annotated[int, Field(ge=256)]
    sniff_records: Annotated[int, Field(ge=1)]
    wrapper_keys: Annotated[list[str], Field(min_length=1)] = Field(
        description="Keys of a .json object whose list holds the records, first match read."
    )


class RatioBand(ConfigModel):
    min: Annotated[float, Field(gt=0)]
    max: Annotated[float, Field(gt=0)]

    @model_validator(mode="after")
    def _ordered(self) -> "RatioBand":
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) exceeds max ({self.max})")
        return self


class WarningsConfig(ConfigModel):
    length_outlier_zscore: Annotated[float, Field(gt=0)]
    max_share_without_system: Annotated[float, Field(ge=0, le=1)]
    placeholder_pattern: str = Field(description="A regular expression for template leftovers.")
    kto_weighted_ratio: RatioBand = Field(
        description="Where desirable_weight x desirable / (undesirable_weight x undesirable) "
        "should lie."
    )

    @field_validator("placeholder_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value


class TokensConfig(ConfigModel):
    """How tokens are counted: the model's tokenizer when it can be had, else an estimate."""

    chars_per_token: Annotated[float, Field(gt=0)]
    tokens_per_message: Annotated[int, Field(ge=0)]
    default_max_seq_length: Annotated[int, Field(ge=1)]
    length_histogram_bounds: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1)]
    batch_records: Annotated[int, Field(ge=1)]
    download_tokenizer: bool

    @field_validator("length_histogram_bounds")
    @classmethod
    def _ascending(cls, value: list[int]) -> list[int]:
        if any(a >= b for a, b in pairwise(value)):
            raise ValueError("bounds must rise strictly")
        return value


class MediaField(ConfigModel):
    """A record-level media column: what its files are, and the tag each has in the text."""

    kind: PartKind
    tag: Annotated[str, Field(min_length=1)]

    @field_validator("kind")
    @classmethod
    def _media(cls, value: PartKind) -> PartKind:
        if value not in MEDIA_KINDS:
            raise ValueError(f"{value} is not media; use one of {', '.join(sorted(MEDIA_KINDS))}")
        return value


class FormatsConfig(ConfigModel):
    """Role names and content part types each layout uses, and the formats each method trains on."""

    chat_roles: Annotated[dict[str, Role], Field(min_length=1)]
    sharegpt_roles: Annotated[dict[str, Role], Field(min_length=1)]
    sharegpt_call_tags: list[str] = Field(
        description="ShareGPT tags whose value is a tool call as JSON (assistant turns)."
    )
    content_parts: Annotated[dict[str, PartKind], Field(min_length=1)]
    media_fields: dict[str, MediaField]
    method_formats: Annotated[
        dict[str, Annotated[list[Format], Field(min_length=1)]], Field(min_length=1)
    ]

    @model_validator(mode="after")
    def _call_tags_are_assistant_turns(self) -> "FormatsConfig":
        odd = [
            t for t in self.sharegpt_call_tags if self.sharegpt_roles.get(t) is not Role.ASSISTANT
        ]
        if odd:
            raise ValueError(
                f"sharegpt_call_tags {', '.join(odd)} must be assistant sharegpt_roles"
            )
        return self


class ColumnsConfig(ConfigModel):
    """How the columns of records no format knows are matched to a format's fields."""

    synonyms: dict[str, list[str]] = Field(description="Per field, the names people give it.")
    similarity_cutoff: Annotated[float, Field(gt=0, le=1)]
    max_columns_matched: Annotated[int, Field(ge=1)]

    @field_validator("synonyms")
    @classmethod
    def _known_fields(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = sorted(set(value) - TARGET_FIELDS)
        if unknown:
            raise ValueError(f"no format reads {', '.join(unknown)}: use {sorted(TARGET_FIELDS)}")
        return {field: [name.lower() for name in names] for field, names in value.items()}


class ListingConfig(ConfigModel):
    max_depth: Annotated[int, Field(ge=0)]
    max_files: Annotated[int, Field(ge=1)]
    skip_dirs: list[str]


class HubDatasetsConfig(ConfigModel):
    default_split: Annotated[str, Field(min_length=1)]


class SupabaseConfig(ConfigModel):
    """Names and bounds only: the URL and key come from SUPABASE_URL and SUPABASE_KEY."""

    catalog_table: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
    storage_bucket: Annotated[str, Field(min_length=1)]
    timeout_s: PositiveSeconds
    signed_url_expires_s: Annotated[int, Field(ge=1)]
    list_limit: Annotated[int, Field(ge=1, le=1000)]


class DatasetsConfig(ConfigModel):
    roots: list[Path] | None = Field(
        description="Directories local datasets may be read from; None: the working directory "
        "over stdio, none over HTTP."
    )
    bundled_samples: bool = Field(description="Also offer the datasets shipped in samples/.")
    file_extensions: Annotated[list[str], Field(min_length=1)]
    split: SplitConfig
    limits: LimitsConfig
    reading: ReadingConfig
    warnings: WarningsConfig
    tokens: TokensConfig
    formats: FormatsConfig
    columns: ColumnsConfig
    listing: ListingConfig
    hub: HubDatasetsConfig
    supabase: SupabaseConfig

    @field_validator("file_extensions")
    @classmethod
    def _known_extensions(cls, value: list[str]) -> list[str]:
        known = {f".{t.value}" for t in FileType}
        bad = [e for e in value if e.lower().removesuffix(GZIP_SUFFIX) not in known]
        if bad:
            raise ValueError(
                f"unsupported extensions {', '.join(bad)}: use {', '.join(sorted(known))}, "
                f"each optionally followed by {GZIP_SUFFIX}"
            )
        return [e.lower() for e in value]
