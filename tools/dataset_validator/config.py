"""configs/datasets.yaml: where datasets may come from and what every record must satisfy."""

from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator

from tools.config_base import ConfigModel


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


class SupabaseConfig(ConfigModel):
    """Names only: the URL and key come from SUPABASE_URL and SUPABASE_KEY."""

    catalog_table: str
    storage_bucket: str


class WarningsConfig(ConfigModel):
    length_outlier_zscore: Annotated[float, Field(gt=0)]
    max_share_without_system: Annotated[float, Field(ge=0, le=1)]


class DatasetsConfig(ConfigModel):
    roots: list[Path] = Field(description="Directories local datasets may be read from.")
    file_extensions: Annotated[list[str], Field(min_length=1)]
    split: SplitConfig
    limits: LimitsConfig
    warnings: WarningsConfig
    supabase: SupabaseConfig
