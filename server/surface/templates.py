"""apply_template (step 2) and the package://templates resource.

The surface reads the other steps' results from the draft into CrossStepFacts, so the service
checks the configuration against the chosen model, data and GPU without knowing about drafts.
"""

from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations
from pydantic import Field, ValidationError

from server.drafts import DraftPackage, StepName, StepSection, StepStatus
from server.errors import resource_errors, tool_errors
from server.state import app_state, load_draft, save_step
from tools.deployment_estimator.config import DeploymentConfig
from tools.issues import Issue
from tools.model_browser.config import Architecture
from tools.template_loader.facts import CrossStepFacts, ModelFacts, TargetFacts
from tools.template_loader.service import (
    TemplateResult,
    apply_template,
    describe_templates,
    merge_overrides,
)

TEMPLATES_URI = "package://templates"


class ApplyTemplateResult(TemplateResult):
    draft_id: str | None = None
    draft_uri: str | None = None
    next_action: str | None = None


def register(mcp: MCPServer) -> None:
    @mcp.tool(
        name="apply_template",
        title="Apply a training template",
        description=(
            "Step 2: a template plus overrides -> a checked config with provenance, errors and "
            "warnings with fixes, derived figures. With draft_id: checked against its model, "
            "data and GPU, and recorded."
        ),
        annotations=ToolAnnotations(
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=True,
            open_world_hint=False,
        ),
    )
    @tool_errors
    async def apply_template_tool(
        ctx: Context,
        template: Annotated[str, Field(description="Template id: lora, qlora, full or dpo.")],
        overrides: Annotated[
            dict[str, Any] | None,
            Field(
                description='Keys to change, e.g. {"learning_rate": 1e-4}; null reverts a key '
                "to the template."
            ),
        ] = None,
        draft_id: Annotated[
            str | None, Field(description="Draft to check against and record in.")
        ] = None,
        keep_overrides: Annotated[
            bool,
            Field(description="Keep the draft's earlier overrides (false: start over)."),
        ] = True,
    ) -> ApplyTemplateResult:
        settings = app_state(ctx).settings
        overrides = overrides or {}
        if draft_id is None:
            result = apply_template(settings.templates, template, overrides)
            return ApplyTemplateResult(**result.model_dump())
        draft = await load_draft(ctx, draft_id)
        previous = draft.config.payload.get("overrides", {}) if keep_overrides else {}
        merged = merge_overrides(settings.templates, previous, overrides)
        facts = facts_from_draft(draft, settings.deployment)
        result = apply_template(settings.templates, template, merged, facts)
        saved = await save_step(ctx, draft, StepName.CONFIG, _section(result))
        return ApplyTemplateResult(
            **result.model_dump(),
            draft_id=saved.id,
            draft_uri=saved.uri,
            next_action=saved.next_action,
        )

    @mcp.resource(
        TEMPLATES_URI + "{?template}",
        title="Training templates",
        description="The templates with their descriptions and defaults, and every key's rule.",
        mime_type="application/json",
    )
    @resource_errors
    async def templates(ctx: Context, template: str | None = None) -> str:
        # A URI template (its query optional), as package://drafts: static resources get no
        # Context, and the templates come from the settings.
        catalog = describe_templates(app_state(ctx).settings.templates, template)
        return catalog.model_dump_json(indent=2, exclude_none=True)


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


def _section(result: TemplateResult) -> StepSection:
    issues = [
        Issue(severity=issue.severity, code=issue.code, message=issue.message, fix=issue.fix)
        for issue in [*result.errors, *result.warnings]
    ]
    return StepSection(
        status=StepStatus.VALID if result.valid else StepStatus.INVALID,
        payload=result.model_dump(mode="json"),
        issues=issues,
    )
