"""launch_training, training_status, cancel_training and package://calibration: the tools, on
the training_launcher service, server.launch_checks (may this draft run, where, with whose
token) and server.launch_records (the draft's record of its run).

Nothing starts without the user's yes (elicitation, or confirm=true once they agreed), nothing
runs without a time limit, and the draft keeps the run so that status and cancel find it
again, after a restart too.
"""

import json
from functools import partial
from typing import Annotated, Literal

import anyio.to_thread
from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver import Context, Elicit, MCPServer, Resolve
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from server.drafts.model import utc_now
from server.errors import resource_errors, tool_errors
from server.launch_checks import (
    hub_endpoint,
    launch_question,
    owner_hash,
    ready_to_launch,
    token_for_run,
    withheld_from_local_runs,
)
from server.launch_records import (
    after_stop,
    calibrate,
    claim_run,
    keep_run,
    keep_started,
    launched_run,
    note_progress,
    status_next,
)
from server.logging import get_logger
from server.state import app_state, caller, client_can_elicit, load_draft
from tools import training_launcher
from tools.errors import UserError
from tools.training_launcher import RunStatus

CALIBRATION_URI = "package://calibration"
log = get_logger(__name__)


class LaunchResult(BaseModel):
    launched: bool
    where: Literal["hub", "local"]
    target: str
    estimated_hours: float
    estimated_cost_usd: float
    usd_per_hour: float
    timeout_hours: float = Field(description="The run is stopped after this long.")
    max_cost_usd: float = Field(description="What the run costs at most (its time limit).")
    question: str | None = Field(default=None, description="Ask the user this first.")
    job_id: str | None = None
    pid: int | None = None
    url: str | None = None
    model_repo: str | None = None
    draft_uri: str
    next_action: str


class StatusResult(RunStatus):
    notice: str = Field(default=training_launcher.UNTRUSTED_LOG_NOTICE)
    draft_uri: str
    next_action: str


class CancelResult(BaseModel):
    canceled: bool
    stage: str
    hours: float | None
    cost_usd: float | None
    draft_uri: str
    next_action: str


class LaunchApproval(BaseModel):
    launch: bool = Field(description="Start the training run and pay for it.")


async def launch_decision(
    ctx: Context, draft_id: str, confirm: bool = False, resume: bool = False
) -> LaunchApproval | Elicit[LaunchApproval]:
    """The user is asked when the client can ask and the launch passes its checks; where
    nobody can be asked, the caller's confirm (the user's yes, relayed) decides, and without it
    the body reports why or asks for confirm. confirm never skips a user who can be asked: the
    run spends their money."""
    if not client_can_elicit(ctx):
        return LaunchApproval(launch=confirm)
    try:
        ready = await ready_to_launch(ctx, draft_id, resume)
    except UserError:
        return LaunchApproval(launch=False)  # the tool body reports the problem
    return Elicit(launch_question(ready, app_state(ctx), resume), LaunchApproval)


def register(mcp: MCPServer) -> None:
    @mcp.tool(
        title="Launch training",
        description=(
            "Run a finalized package as a Hugging Face Job on its flavor (your token pays), or "
            "locally. Asks the user first; returns once started."
        ),
        annotations=ToolAnnotations(
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=False,
            open_world_hint=True,
        ),
    )
    @tool_errors
    async def launch_training(
        ctx: Context,
        draft_id: Annotated[str, Field(description="The finalized draft.")],
        decision: Annotated[ElicitationResult[LaunchApproval], Resolve(launch_decision)],
        confirm: Annotated[
            bool, Field(description="The user agreed to the cost (clients that cannot ask).")
        ] = False,
        resume: Annotated[bool, Field(description="Go on from the last run's checkpoint.")] = False,
    ) -> LaunchResult:
        state = app_state(ctx)
        ready = await ready_to_launch(ctx, draft_id, resume)
        package, timeout = ready.package, ready.timeout_hours(state)
        figures = {
            "where": ready.where,
            "target": package.target,
            "estimated_hours": package.estimated_hours,
            "estimated_cost_usd": package.estimated_cost_usd,
            "usd_per_hour": ready.usd_per_hour,
            "timeout_hours": timeout,
            "max_cost_usd": round(timeout * ready.usd_per_hour, 2),
            "draft_uri": ready.draft.uri,
        }
        approved = isinstance(decision, AcceptedElicitation) and decision.data.launch
        if not approved:
            asked = client_can_elicit(ctx)
            again = f'launch_training(draft_id="{draft_id}", confirm=true' + (
                ", resume=true)" if resume else ")"
            )
            return LaunchResult(
                launched=False,
                question=None if asked else launch_question(ready, state, resume),
                next_action=(
                    "The user chose not to launch; nothing was started."
                    if asked
                    else f"Ask the user this question; only if they agree, call {again}."
                ),
                **figures,
            )
        now = utc_now()
        config = state.settings.launch
        if ready.plan is not None and ready.token is not None:
            labels = {
                "app": state.settings.server.name,
                "draft": ready.draft.id,
                "owner": owner_hash(caller(ctx)),
            }
            start = partial(
                training_launcher.launch_on_hub,
                package,
                ready.plan,
                ready.token,
                hub_endpoint(state),
                config,
                labels=labels,
                resume=resume,
                now=now,
            )
        else:
            start = partial(
                training_launcher.launch_locally,
                package,
                config,
                resume=resume,
                now=now,
                withheld=withheld_from_local_runs(state),
                hub_login=state.transport != "http",
            )
        claimed = await claim_run(ctx, ready, now, timeout, resume)
        try:
            record = await anyio.to_thread.run_sync(start)
        except Exception:
            await keep_run(ctx, claimed, ready.draft.launch)  # nothing started: as before
            raise
        record = record.model_copy(update={"package_path": str(package.folder)})
        saved = await keep_started(ctx, claimed, record)
        if saved is None:  # canceled while it was being started: stopped now, and recorded
            stop = partial(
                training_launcher.cancel_run,
                record,
                ready.token,
                hub_endpoint(state),
                config,
                utc_now(),
            )
            stopped = await anyio.to_thread.run_sync(stop)
            await keep_run(ctx, await load_draft(ctx, draft_id), stopped)
            log.info("training.canceled_at_start", draft_id=draft_id, where=record.where)
            return LaunchResult(
                launched=False,
                job_id=record.job_id,
                pid=record.pid,
                url=record.url,
                next_action=(
                    "cancel_training was called while this run was being started: it was "
                    "stopped as soon as it started. Launch again only if the user asks."
                ),
                **figures,
            )
        log.info("training.launched", draft_id=saved.id, where=record.where, target=record.target)
        return LaunchResult(
            launched=True,
            job_id=record.job_id,
            pid=record.pid,
            url=record.url,
            model_repo=record.model_repo,
            next_action=f'training_status(draft_id="{saved.id}") shows how it goes',
            **figures,
        )

    @mcp.tool(
        title="Training status",
        description="Stage, elapsed time, cost so far, progress and loss, the log's last lines.",
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=True),
    )
    @tool_errors
    async def training_status(
        ctx: Context, draft_id: Annotated[str, Field(description="The launched draft.")]
    ) -> StatusResult:
        state = app_state(ctx)
        draft = await load_draft(ctx, draft_id)
        record = launched_run(draft)
        now, config = utc_now(), state.settings.launch
        if record.where == "hub":
            token = token_for_run(state)
            find = partial(
                training_launcher.hub_status, record, token, hub_endpoint(state), config, now
            )
        else:
            find = partial(training_launcher.local_status, record, config, now)
        updated, status = await anyio.to_thread.run_sync(find)
        if updated.stage == "completed" and not updated.calibrated:
            draft = await calibrate(ctx, draft, updated, now)
        elif updated != record:
            draft = await note_progress(ctx, draft, updated)
        return StatusResult(
            **status.model_dump(),
            draft_uri=draft.uri,
            next_action=status_next(draft.id, updated, status.progress),
        )

    @mcp.tool(
        title="Cancel training",
        description="Stop the draft's run (the Job, or the local process) and record it.",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=False
        ),
    )
    @tool_errors
    async def cancel_training(
        ctx: Context, draft_id: Annotated[str, Field(description="The launched draft.")]
    ) -> CancelResult:
        state = app_state(ctx)
        draft = await load_draft(ctx, draft_id)
        record = launched_run(draft)
        token = token_for_run(state) if record.job_id is not None else None
        stop = partial(
            training_launcher.cancel_run,
            record,
            token,
            hub_endpoint(state),
            state.settings.launch,
            utc_now(),
        )
        stopped = await anyio.to_thread.run_sync(stop)
        draft = await keep_run(ctx, draft, stopped)
        log.info("training.canceled", draft_id=draft.id, where=record.where)
        look = partial(
            training_launcher.resumable, stopped, token, hub_endpoint(state), state.settings.launch
        )
        try:
            can_resume = await anyio.to_thread.run_sync(look)
        except UserError:  # the Hub did not say: a resume looks again before it starts
            can_resume = True
        return CancelResult(
            canceled=True,
            stage=stopped.stage,
            hours=stopped.hours,
            cost_usd=stopped.cost_usd,
            draft_uri=draft.uri,
            next_action=after_stop(draft.id, can_resume),
        )

    @mcp.resource(
        CALIBRATION_URI + "{?limit}",
        title="Estimates against runs",
        description="Your completed runs: estimated vs actual hours, cost and peak memory.",
        mime_type="application/json",
    )
    @resource_errors
    async def calibration(ctx: Context, limit: int | None = None) -> str:
        state = app_state(ctx)
        most = state.settings.launch.calibration.rows_shown
        shown = min(limit, most) if limit and limit > 0 else most
        rows = await state.store.calibration(caller(ctx), shown)
        return json.dumps(
            [{**row.model_dump(mode="json"), "hours_ratio": row.hours_ratio} for row in rows],
            indent=2,
        )
