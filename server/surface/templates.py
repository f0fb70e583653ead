"""apply_template (step 2) and the package://templates resource.

The other steps' results come from the draft as CrossStepFacts (server.steps), so the service
checks the configuration against the chosen model, data and GPU without knowing about drafts.
"""

from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from server.drafts import StepName
from server.errors import resource_errors, tool_errors
from server.state import app_state, load_draft
from server.steps import config_section, facts_from_draft, record_step
from tools.template_loader import (
    ConfigIssue,
    Derived,
    Provenance,
    TemplateResult,
    Value,
    apply_template,
    carried_overrides,
    describe_templates,
    merge_overrides,
)

TEMPLATES_URI = "package://templates"


class ApplyTemplateResult(BaseModel):
    """The checked config as the user needs to hear it; the draft keeps all of it (each key's
    provenance and the overrides as given among it)."""

    template: str
    method: str
    valid: bool
    config: dict[str, Value] = Field(description="Every key's value, as the trainer gets it.")
    provenance: dict[str, Provenance] = Field(
        description="The keys not taken from the template: override, default or implied."
    )
    errors: list[ConfigIssue]
    warnings: list[ConfigIssue]
    derived: Derived = Field(description="Figures that follow: effective batch, trainable share.")
    notes: list[str] = Field(
        description="What your overrides replaced or implied, and earlier overrides carried "
        "over from another template (ask the user about those)."
    )
    pending: list[str] = Field(description="Checks that wait for another step.")
    draft_id: str | None = None
    draft_uri: str | None = None
    next_action: str | None = None
    changes: list[str] = Field(
        default_factory=list,
        description="What this call did to later steps: redone (and how it came out) or stale.",
    )


def _answer(result: TemplateResult) -> dict[str, Any]:
    """The result without what only the draft needs: the template's own provenance entries."""
    given = {key: source for key, source in result.provenance.items() if source != "template"}
    return {**dict(result), "provenance": given}


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
        template: Annotated[str, Field(description="Template id: lora, qlora, full, dpo or kto.")],
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
            return ApplyTemplateResult(**_answer(result))
        draft = await load_draft(ctx, draft_id)
        previous = draft.config.payload.get("overrides", {}) if keep_overrides else {}
        merged = merge_overrides(settings.templates, previous, overrides)
        earlier = draft.config.payload.get("template")
        carried = carried_overrides(settings.templates, earlier, template, previous, overrides)
        facts = facts_from_draft(draft, settings.deployment)
        result = apply_template(settings.templates, template, merged, facts, carried)
        return await record_step(
            ctx,
            draft,
            StepName.CONFIG,
            config_section(result),
            _answer(result),
            ApplyTemplateResult,
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
