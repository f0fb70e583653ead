"""What the other wizard steps have settled, as far as the configuration's checks need it.

Every field is None until its step has a valid result; the checks that need it wait until then.
"""

from typing import Annotated

from pydantic import Field

from tools.config_base import ConfigModel
from tools.model_browser.config import Architecture


class ModelFacts(ConfigModel):
    """Step 1: the base model."""

    model_id: str
    params: Annotated[int, Field(ge=1)] | None = None
    context_length: Annotated[int, Field(ge=1)] | None = None
    architecture: Architecture | None = None


class TargetFacts(ConfigModel):
    """Step 4: where the run will happen."""

    target: str = Field(description="The deployment option's name, e.g. a Hugging Face flavor.")
    gpu: str
    gpu_count: Annotated[int, Field(ge=1)] = 1
    supports_bf16: bool | None = Field(default=None, description="None: the GPU is not known.")


class CrossStepFacts(ConfigModel):
    model: ModelFacts | None = None
    target: TargetFacts | None = None
