"""What estimate_deployment returns (and records as the draft's deployment section).

The JSON schema of these models is published in tools/list, so they are kept lean: titles are
dropped (the field names say it) and only fields whose meaning is not obvious are described.
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


def _drop_titles(schema: dict[str, Any]) -> None:
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)


class _Lean(BaseModel):
    model_config = ConfigDict(json_schema_extra=_drop_titles)


class DeploymentOption(_Lean):
    model_config = ConfigDict(frozen=True)

    target: str = Field(description="Pass to `targets` or `select`.")
    hardware: str
    gpu: str
    gpu_count: int
    fits: bool
    compatible: bool = Field(description="Runs the config as it is (bf16 needs Ampere or newer).")
    peak_memory_gb: float = Field(description="Per GPU (GiB).")
    usable_memory_gb: float
    hours: float = Field(description="Cloud: start-up and download included.")
    cost_usd: float = Field(description="Cloud: billed minutes; own GPU: electricity.")
    within_budget: bool
    tokens_per_second: float
    notes: list[str] = Field(default_factory=list)


class Suggestion(_Lean):
    changes: list[str] = Field(description="One change a line, all applied together.")
    training: dict[str, Any] = Field(description="Training keys to change.")
    target: str
    peak_memory_gb: float
    hours: float
    cost_usd: float
    within_budget: bool


class DeploymentEstimate(_Lean):
    model_config = ConfigDict(frozen=True)

    options: list[DeploymentOption] = Field(description="Fitting first, then cost, then time.")
    recommended: str | None
    selected: DeploymentOption | None = None
    budget_usd: float
    memory_gb: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Parts of the peak per GPU ({targets, weights, gradients, ...}), once for "
        "the targets that share them; gradients vs activations+logits: the larger counts.",
    )
    inputs: dict[str, Any]
    suggestions: list[Suggestion] = Field(default_factory=list)
    prices: str
    notes: list[str] = Field(default_factory=list)


BudgetAnswer = Literal["raise_budget", "take_cheapest", "keep"]
"""What the user answers when every option that fits is over budget."""


class BudgetQuestion(_Lean):
    """What the user must decide when every option that fits is over budget."""

    question: str
    cheapest: str
    cheapest_cost_usd: float
    how: str = Field(description="How to answer without elicitation.")


class DeploymentAnswer(DeploymentEstimate):
    """The estimate as a caller reads it: the options worth choosing between in full, a line
    for each other, the chosen one, and the budget question nobody could be asked."""

    others: list[str] = Field(
        default_factory=list,
        description="Other targets, a line each: beaten on cost and time, or out. Name them in "
        "`targets` for details.",
    )
    budget_question: BudgetQuestion | None = None
