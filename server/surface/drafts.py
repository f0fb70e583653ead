"""create_draft and the draft resources."""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from server.drafts import StepName
from server.drafts.model import DRAFTS_URI
from server.drafts.summary import DraftState, draft_state
from server.errors import resource_errors, tool_errors
from server.places import owner_package_folders
from server.state import announce, app_state, caller
from tools.errors import UserError
from tools.package_builder import remove_package


class DeleteDraftResult(BaseModel):
    deleted: str
    package: str | None = None
    package_removed: bool = False
    next_action: str


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

    @mcp.tool(
        title="Delete a draft",
        description="Delete a draft for good (ask first); its package stays unless asked.",
        annotations=ToolAnnotations(
            read_only_hint=False,
            destructive_hint=True,
            idempotent_hint=False,
            open_world_hint=False,
        ),
    )
    @tool_errors
    async def delete_draft(
        ctx: Context,
        draft_id: Annotated[str, Field(description="The draft to delete.")],
        delete_package: Annotated[bool, Field(description="Also remove its package.")] = False,
    ) -> DeleteDraftResult:
        state = app_state(ctx)
        owner = caller(ctx)
        draft = await state.store.get(draft_id, owner)
        package = Path(draft.package.path) if draft.package else None
        removed = False
        if package is not None and delete_package:
            removed = await anyio.to_thread.run_sync(
                remove_package, package, owner_package_folders(state.settings, owner)
            )
        await state.store.delete(draft.id, owner)
        await announce(ctx, draft)
        if package is None:
            kept = ""
        elif removed:
            kept = " Its package folder was removed too."
        else:
            kept = f" Its package stays in {package}."
        return DeleteDraftResult(
            deleted=draft.id,
            package=str(package) if package else None,
            package_removed=removed,
            next_action=f"Draft {draft.id} is deleted.{kept} create_draft starts a new one.",
        )

    @mcp.tool(
        title="Where a draft stands",
        description=(
            "A draft in a few lines: each step's status (valid, invalid, stale, empty) with "
            "what it holds and why it is stale, the open issues, and the next call."
        ),
        annotations=ToolAnnotations(
            read_only_hint=True,
            destructive_hint=False,
            idempotent_hint=True,
            open_world_hint=False,
        ),
    )
    @tool_errors
    async def get_draft(
        ctx: Context, draft_id: Annotated[str, Field(description="The draft.")]
    ) -> DraftState:
        state = app_state(ctx)
        draft = await state.store.get(draft_id, caller(ctx))
        return draft_state(draft, state.settings.server.limits.draft_issue_lines)

    @mcp.resource(
        DRAFTS_URI + "/{draft_id}",
        title="Draft package",
        description="One draft: every step's status, payload and issues, and the next step.",
        mime_type="application/json",
    )
    @resource_errors
    async def draft(draft_id: str, ctx: Context) -> str:
        found = await app_state(ctx).store.get(draft_id, caller(ctx))
        return found.model_dump_json(indent=2, exclude={"launch": {"run_key"}})

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
