"""create_draft and the draft resources."""

import json
from datetime import UTC, datetime
from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from server.drafts import StepName
from server.drafts.model import DRAFTS_URI
from server.errors import resource_errors, tool_errors
from server.state import announce, app_state, caller
from tools.errors import UserError


class CreateDraftResult(BaseModel):
    draft_id: str
    uri: str = Field(description="Read this resource for the draft as JSON.")
    title: str
    next_step: StepName | None
    next_action: str


def register(mcp: MCPServer) -> None:
    @mcp.tool(
        title="Create a draft package",
        description=(
            "Start a new training package draft. Every later step records its result in it; "
            "read its uri for the current state and the next step."
        ),
        annotations=ToolAnnotations(
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=False,
            open_world_hint=False,
        ),
    )
    @tool_errors
    async def create_draft(
        ctx: Context,
        title: Annotated[
            str | None, Field(description="A name for the draft, e.g. 'support-bot v1'.")
        ] = None,
    ) -> CreateDraftResult:
        state = app_state(ctx)
        limit = state.settings.server.limits.max_title_chars
        title = (title or "").strip() or f"Draft {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
        if len(title) > limit:
            raise UserError(f"The title has {len(title)} characters; keep it to {limit}.")
        draft = await state.store.create(caller(ctx), title)
        await announce(ctx, draft)
        return CreateDraftResult(
            draft_id=draft.id,
            uri=draft.uri,
            title=draft.title,
            next_step=draft.next_step,
            next_action=draft.next_action,
        )

    @mcp.resource(
        DRAFTS_URI + "/{draft_id}",
        title="Draft package",
        description="One draft: every step's status, payload and issues, and the next step.",
        mime_type="application/json",
    )
    @resource_errors
    async def draft(draft_id: str, ctx: Context) -> str:
        found = await app_state(ctx).store.get(draft_id, caller(ctx))
        return found.model_dump_json(indent=2)

    @mcp.resource(
        DRAFTS_URI + "{?limit}",
        title="Your drafts",
        description="Your draft packages, most recently changed first (at most `limit`).",
        mime_type="application/json",
    )
    @resource_errors
    async def drafts(ctx: Context, limit: int | None = None) -> str:
        # A URI template (its query part optional) rather than a static resource: static
        # resources get no Context, and the list depends on who is asking.
        state = app_state(ctx)
        cap = state.settings.server.limits.drafts_list_limit
        summaries = await state.store.list(caller(ctx))
        shown = summaries[: max(1, min(limit or cap, cap))]
        return json.dumps(
            {
                "count": len(summaries),
                "shown": len(shown),
                "drafts": [s.model_dump(mode="json") for s in shown],
            },
            indent=2,
        )
