"""What the surfaces share about a draft's steps: the facts earlier steps give a later one, and
one way to record a step's result and say where the draft stands."""

from typing import Any, TypeVar

from mcp.server.mcpserver import Context
from pydantic import BaseModel, ValidationError

from server.drafts import DraftPackage, StepName, StepSection, StepStatus
from server.state import save_step
from tools import deployment_estimator
from tools.deployment_estimator import DeploymentConfig
from tools.model_browser import Architecture
from tools.template_loader import CrossStepFacts, ModelFacts, TargetFacts

R = TypeVar("R", bound=BaseModel)


async def record_step(
    ctx: Context,
    draft: DraftPackage,
    step: StepName,
    section: StepSection,
    answer: BaseModel | dict[str, Any],
    result: type[R],
) -> R:
    """Save `section` as the draft's `step`, and return `answer` as the tool's `result` model
    with the draft's id, uri and next action (those of them the model declares)."""
    saved = await save_step(ctx, draft, step, section)
    fields = dict(answer) if isinstance(answer, BaseModel) else answer
    return result(**fields, draft_id=saved.id, draft_uri=saved.uri, next_action=saved.next_action)


def draft_sections(draft: DraftPackage | None) -> "deployment_estimator.DraftSections":
    """The payloads of the draft's first three steps, as the deployment estimate reads them."""
    if draft is None:
        return deployment_estimator.DraftSections()
    return deployment_estimator.DraftSections(
        model=draft.model.payload, config=draft.config.payload, datasets=draft.datasets.payload
    )


def facts_from_draft(draft: DraftPackage, deployment: DeploymentConfig) -> CrossStepFacts:
    """The other steps' valid results, as the checks need them; a step not done stays None."""
    return CrossStepFacts(
        model=_model_facts(_valid_payload(draft, StepName.MODEL)),
        dataset_formats=_dataset_formats(_valid_payload(draft, StepName.DATASETS)),
        target=_target_facts(_valid_payload(draft, StepName.DEPLOYMENT), deployment),
    )


def _valid_payload(draft: DraftPackage, step: StepName) -> dict[str, Any] | None:
    section = draft.section(step)
    return section.payload if section.status is StepStatus.VALID else None


def _model_facts(payload: dict[str, Any] | None) -> ModelFacts | None:
    if not payload or not payload.get("model_id"):
        return None
    architecture = None
    raw = payload.get("architecture")
    if isinstance(raw, dict):
        known = {k: v for k, v in raw.items() if k in Architecture.model_fields}
        try:
            architecture = Architecture.model_validate(known)
        except ValidationError:
            architecture = None
    context = architecture.context_length if architecture else payload.get("context_length")
    params = payload.get("params")
    return ModelFacts(
        model_id=payload["model_id"],
        params=params if isinstance(params, int) and params > 0 else None,
        context_length=context if isinstance(context, int) and context > 0 else None,
        architecture=architecture,
    )


def _dataset_formats(payload: dict[str, Any] | None) -> list[str] | None:
    if not payload or not isinstance(payload.get("datasets"), list):
        return None
    formats = [d.get("format") for d in payload["datasets"] if isinstance(d, dict)]
    return [f for f in formats if isinstance(f, str)] or None


def _target_facts(
    payload: dict[str, Any] | None, deployment: DeploymentConfig
) -> TargetFacts | None:
    """The option the user selected, else the recommended one (an option or its target name)."""
    if not payload:
        return None
    option = payload.get("selected") or payload.get("recommended")
    if isinstance(option, str):
        named = [o for o in payload.get("options") or [] if isinstance(o, dict)]
        option = next((o for o in named if o.get("target") == option), None)
    if not isinstance(option, dict) or not isinstance(option.get("gpu"), str):
        return None
    gpu = deployment.gpus.get(option["gpu"])
    count = option.get("gpu_count")
    return TargetFacts(
        target=str(option.get("target") or option.get("hardware") or option["gpu"]),
        gpu=option["gpu"],
        gpu_count=count if isinstance(count, int) and count > 0 else 1,
        supports_bf16=gpu.bf16 if gpu else None,
    )
