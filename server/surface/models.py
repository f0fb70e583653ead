"""Step 1 on MCP: search_models and select_model."""

from typing import Annotated, Literal

import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from server.drafts import StepName, StepSection, StepStatus
from server.errors import resource_errors, tool_errors
from server.state import app_state, load_draft
from server.steps import record_step
from tools import model_browser
from tools.errors import NotFoundError
from tools.issues import Issue
from tools.model_browser import SearchResult


class SelectModelResult(BaseModel):
    """What the user must know of the chosen model; the draft keeps every detail (the
    architecture the later steps use among them)."""

    model_id: str
    revision: str | None = Field(default=None, description="The commit the draft pins.")
    params_b: float = Field(description="Parameters, in billions.")
    context_length: int = Field(description="Longest sequence the model takes, in tokens.")
    license: str | None = None
    gated: bool = Field(default=False, description="The Hub asks users to accept its terms.")
    gated_action: str | None = Field(default=None, description="What the user must do for it.")
    size_gb: float = Field(description="Weights in bf16, GB.")
    source: Literal["hub", "offline"] = Field(description="offline: from the curated catalog.")
    warnings: list[str] = Field(default_factory=list)
    draft_uri: str
    next_action: str
    changes: list[str] = Field(
        default_factory=list,
        description="What this call did to later steps: redone (and how it came out) or stale.",
    )


def register(mcp: MCPServer) -> None:
    @mcp.tool(
        title="Search base models",
        description=(
            "Find base models on the Hugging Face Hub. An empty query lists popular, "
            "well-tested models. Works offline from a cache and a curated list."
        ),
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=True),
    )
    @tool_errors
    async def search_models(
        ctx: Context,
        query: Annotated[str, Field(description="Words in the model id, e.g. 'qwen 7b'.")] = "",
        task: Annotated[
            str | None, Field(description="Pipeline tag, e.g. text-generation.")
        ] = None,
        author: Annotated[str | None, Field(description="Owner, e.g. meta-llama.")] = None,
        library: Annotated[str | None, Field(description="Library tag, e.g. transformers.")] = None,
        sort: Annotated[
            Literal["downloads", "likes", "trending", "recent"], Field(description="Order.")
        ] = "downloads",
        max_params_b: Annotated[
            float | None, Field(gt=0, description="Largest size, in billions of parameters.")
        ] = None,
        limit: Annotated[int | None, Field(ge=1, description="How many models to return.")] = None,
    ) -> SearchResult:
        request = model_browser.SearchRequest(
            query=query,
            task=task,
            author=author,
            library=library,
            sort=sort,
            max_params_b=max_params_b,
            limit=limit,
        )
        models = app_state(ctx).models
        if (answer := models.answer_at_once(request)) is not None:
            return answer  # curated or freshly cached: no thread hop
        return await anyio.to_thread.run_sync(models.search, request)

    @mcp.resource(
        "package://models/{+model_id}",
        title="A model, as known offline",
        description="A curated or recently searched model's summary, without a Hub call.",
        mime_type="application/json",
    )
    @resource_errors
    async def known_model(model_id: str, ctx: Context) -> str:
        summary = app_state(ctx).models.known(model_id)
        if summary is None:
            raise NotFoundError(
                f"{model_id} is neither curated nor in a recent search; search_models finds it."
            )
        return summary.model_dump_json(indent=2)

    @mcp.tool(
        title="Select the base model",
        description=(
            "Fetch a model's details (size, architecture, context length, licence, gating) "
            "and record it as the draft's base model."
        ),
        annotations=ToolAnnotations(
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=True,
            open_world_hint=True,
        ),
    )
    @tool_errors
    async def select_model(
        ctx: Context,
        draft_id: Annotated[str, Field(description="The draft to record the choice in.")],
        model_id: Annotated[str, Field(description="Hub id, e.g. Qwen/Qwen2.5-0.5B-Instruct.")],
        revision: Annotated[
            str | None, Field(description="Branch, tag or commit; default: the latest.")
        ] = None,
    ) -> SelectModelResult:
        draft = await load_draft(ctx, draft_id)
        details = await anyio.to_thread.run_sync(app_state(ctx).models.details, model_id, revision)
        section = StepSection(
            status=StepStatus.VALID,
            payload=details.model_dump(mode="json"),
            issues=[Issue(severity="warning", code="model", message=w) for w in details.warnings],
        )
        return await record_step(
            ctx, draft, StepName.MODEL, section, details.model_dump(), SelectModelResult
        )
