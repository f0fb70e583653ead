"""configs/templates.yaml: the training templates, the per-key rules and the cross-field bands."""

from typing import Annotated, Literal

from pydantic import Field, model_validator

from tools.config_base import ConfigModel

Scalar = bool | int | float | str
Value = Scalar | list[str] | None
KeyType = Literal["int", "float", "bool", "str", "list[str]", "str|list[str]"]


class KeyRule(ConfigModel):
    """What one configuration key may hold; `default` fills keys a template leaves out."""

    description: str
    type: KeyType
    default: Value = None
    min: float | None = None
    max: float | None = None
    warn_below: float | None = None
    warn_above: float | None = None
    recommended: Value = None
    enum: list[Scalar] | None = None

    @model_validator(mode="after")
    def _bounds_ordered(self) -> "KeyRule":
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class Band(ConfigModel):
    """A range outside which a derived figure earns a warning."""

    warn_below: float
    warn_above: float

    @model_validator(mode="after")
    def _ordered(self) -> "Band":
        if self.warn_below > self.warn_above:
            raise ValueError(
                f"warn_below ({self.warn_below}) exceeds warn_above ({self.warn_above})"
            )
        return self


class CrossFieldConfig(ConfigModel):
    lora_alpha_over_r: Band
    effective_batch_size: Band


class Template(ConfigModel):
    name: str
    description: Annotated[str, Field(min_length=20)]
    method: Literal["sft", "dpo"]
    defaults: dict[str, Value]


class TemplatesConfig(ConfigModel):
    keys: dict[str, KeyRule]
    cross_field: CrossFieldConfig
    templates: dict[str, Template]

    @model_validator(mode="after")
    def _defaults_name_known_keys(self) -> "TemplatesConfig":
        for template_id, template in self.templates.items():
            unknown = sorted(set(template.defaults) - set(self.keys))
            if unknown:
                raise ValueError(
                    f"template {template_id!r} sets keys that have no rule in `keys`: "
                    f"{', '.join(unknown)}"
                )
        return self
