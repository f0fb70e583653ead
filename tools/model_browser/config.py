"""configs/models.yaml: how the browser reaches the Hub, what it returns, what it knows offline."""

from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator

from tools.config_base import ConfigModel
from tools.hub_http import HubConfig

PositiveSeconds = Annotated[float, Field(gt=0)]


class SearchConfig(ConfigModel):
    default_limit: Annotated[int, Field(ge=1)]
    max_limit: Annotated[int, Field(ge=1, le=1000)]
    fetch_limit: Annotated[int, Field(ge=1, le=1000)] = Field(
        description="How many models to ask the Hub for before local filters narrow them."
    )
    allowed_tasks: Annotated[list[str], Field(min_length=1)]
    min_downloads: Annotated[int, Field(ge=0)]
    min_likes: Annotated[int, Field(ge=0)]
    size_warning_params_b: Annotated[float, Field(gt=0)]

    @model_validator(mode="after")
    def _default_within_cap(self) -> "SearchConfig":
        if self.default_limit > self.max_limit:
            raise ValueError(
                f"default_limit ({self.default_limit}) exceeds max_limit ({self.max_limit})"
            )
        if self.fetch_limit < self.max_limit:
            raise ValueError(
                f"fetch_limit ({self.fetch_limit}) is below max_limit ({self.max_limit})"
            )
        return self


class CacheConfig(ConfigModel):
    ttl_s: PositiveSeconds
    max_entries: Annotated[int, Field(ge=1)]
    disk_max_entries: Annotated[int, Field(ge=0)]
    disk_path: Path | None = Field(
        default=None, description="None: model-search-cache.json in the user's data directory."
    )


class Architecture(ConfigModel):
    """The config.json fields the later steps need (memory, time, context checks)."""

    model_type: str
    num_hidden_layers: Annotated[int, Field(ge=1)]
    hidden_size: Annotated[int, Field(ge=1)]
    intermediate_size: Annotated[int, Field(ge=1)]
    num_attention_heads: Annotated[int, Field(ge=1)]
    num_key_value_heads: Annotated[int, Field(ge=1)]
    head_dim: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="None: hidden_size / num_attention_heads."
    )
    vocab_size: Annotated[int, Field(ge=1)]
    context_length: Annotated[int, Field(ge=1)]
    tie_word_embeddings: bool
    num_experts: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="Experts per MoE layer; None for a dense model."
    )

    @property
    def resolved_head_dim(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads


class PopularModel(ConfigModel):
    """A well-known model the wizard can offer without a network."""

    id: Annotated[str, Field(pattern=r"^[\w.-]+/[\w.-]+$")]
    params: Annotated[int, Field(ge=1)]
    pipeline_tag: str
    license: str
    gated: bool
    architecture: Architecture


class ModelsConfig(ConfigModel):
    hub: HubConfig
    search: SearchConfig
    cache: CacheConfig
    popular: Annotated[list[PopularModel], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique_popular_ids(self) -> "ModelsConfig":
        ids = [m.id for m in self.popular]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"popular lists these ids more than once: {', '.join(duplicates)}")
        return self
