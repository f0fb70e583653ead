"""The four steps a package is built from, as the typed results each step's service returned.

A draft stores each step's result as JSON; these models read it back with the services' own
types, so a package is built from checked values, never from loose dictionaries.
"""

from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tools.dataset_validator.results import DatasetReport, SplitReport, TokenizerInfo
from tools.deployment_estimator.config import Gpu
from tools.deployment_estimator.results import DeploymentEstimate, DeploymentOption
from tools.errors import UserError
from tools.model_browser.results import ModelDetails
from tools.template_loader.results import TemplateResult

M = TypeVar("M", bound=BaseModel)


class ValidatedDatasets(BaseModel):
    """validate_datasets' report as the draft records it (everything but the preview)."""

    model_config = ConfigDict(extra="ignore")

    datasets: list[DatasetReport]
    split: SplitReport
    train_tokens: int
    max_seq_length: int
    tokenizer: TokenizerInfo
    columns: dict[str, str] = Field(default_factory=dict)
    """Fields renamed as the records were read: the package reads them the same way."""
    drop_invalid: bool = False
    """Invalid records were left out: the package leaves out the same ones."""
    drop_media: bool = False
    """Media was removed from the records: the package removes it the same way."""


@dataclass(frozen=True)
class Deployment:
    """The chosen deployment option, the estimate it came from, and its GPU's catalog entry."""

    estimate: DeploymentEstimate
    selected: DeploymentOption
    gpu: Gpu | None


@dataclass(frozen=True)
class PackageInputs:
    """Everything a package is made of: the four steps' results, and the draft they belong to.

    `config` is the template applied again against the other three steps as they are now, so
    every cross-step rule sees the final choices.
    """

    draft_id: str
    title: str
    draft_version: int
    model: ModelDetails
    config: TemplateResult
    datasets: ValidatedDatasets
    deployment: Deployment


def step_result(model: type[M], payload: dict[str, Any], step: str, tool: str) -> M:
    """A step's recorded payload as `model`; UserError naming the tool to run again if not."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        fields = ", ".join(sorted({".".join(map(str, e["loc"])) for e in exc.errors()})[:5])
        raise UserError(
            f"The draft's {step} step was recorded in a form this server no longer reads "
            f"({fields}). Run {tool} again for this draft, then finalize_package."
        ) from exc


def deployment_choice(estimate: DeploymentEstimate, gpus: dict[str, Gpu]) -> Deployment:
    """The selected option with its GPU; UserError when none is selected."""
    if estimate.selected is None:
        target = f"select='{estimate.recommended}'" if estimate.recommended else "select"
        raise UserError(
            f"No deployment target is chosen: call estimate_deployment with the draft_id and "
            f"{target}."
        )
    return Deployment(estimate, estimate.selected, gpus.get(estimate.selected.gpu))
