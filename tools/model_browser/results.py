"""What the model browser returns: search results and the details of one chosen model."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from tools.model_browser.config import Architecture

Source = Literal["hub", "cache", "popular", "offline"]


class ModelSummary(BaseModel):
    """One search hit, with what a user weighs when choosing."""

    id: str
    params_b: float | None = Field(description="Billions of parameters (safetensors total).")
    downloads: int | None = None
    likes: int | None = None
    pipeline_tag: str | None = None
    license: str | None = None
    gated: bool = False
    size_gb: float | None = Field(default=None, description="bf16 weights, in GB.")
    last_modified: datetime | None = None
    warnings: list[str] = Field(default_factory=list)


class SearchResult(BaseModel):
    models: list[ModelSummary]
    source: Source = Field(
        description="hub: live; cache: a recent answer; popular: the curated list (empty query); "
        "offline: the Hub could not be reached, curated and locally cached models instead."
    )
    stale: bool = Field(description="True when served past the cache's time-to-live.")
    notice: str | None = Field(default=None, description="One line to tell the user, if any.")
    next_action: str = "call select_model with the chosen id"


class ModelDetails(BaseModel):
    """The chosen model: what the later steps need, and what the user must know."""

    model_id: str
    revision: str | None = None
    params: int
    params_b: float
    params_source: Literal["safetensors", "config", "catalog"]
    architecture: Architecture
    context_length: int
    license: str | None = None
    gated: bool = False
    gated_action: str | None = None
    pipeline_tag: str | None = None
    size_gb: float
    source: Literal["hub", "offline"]
    warnings: list[str] = Field(default_factory=list)
