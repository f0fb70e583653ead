"""What apply_template and the templates resource return."""

from typing import Any

from pydantic import BaseModel, Field

from tools.template_loader.derived import Derived
from tools.template_loader.issues import ConfigIssue
from tools.template_loader.keys import KeyRule, Value
from tools.template_loader.rules import Provenance


class TemplateResult(BaseModel):
    template: str
    method: str
    valid: bool
    config: dict[str, Value]
    provenance: dict[str, Provenance] = Field(
        description="Per key: template, override, default, or implied by another key's value."
    )
    errors: list[ConfigIssue]
    warnings: list[ConfigIssue]
    derived: Derived
    overrides: dict[str, Any]
    notes: list[str] = Field(
        description="What your overrides replaced or implied, and earlier overrides carried "
        "over from another template (ask the user about those)."
    )
    pending: list[str] = Field(description="Checks that wait for another step.")


class TemplateSummary(BaseModel):
    id: str
    name: str
    description: str
    method: str
    adapter: str
    defaults: dict[str, Value]


class TemplateCatalog(BaseModel):
    templates: list[TemplateSummary]
    keys: dict[str, KeyRule] = Field(description="Every key an override may set, with its rule.")
