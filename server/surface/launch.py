"""launch_training, training_status, cancel_training and package://calibration, on the
training_launcher service.

Who pays decides what runs: over stdio the server works for one person and launches with their
own Hugging Face token (HF_TOKEN, else their stored login); over HTTP its only token is the
operator's, so Hub launches (and runs on the server's machine) are refused unless the operator
turned them on in configs/launch.yaml. Nothing starts without the user's yes (elicitation, or
confirm=true once they agreed), nothing runs without a time limit, and the draft keeps the run
so that status and cancel find it again, after a restart too.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Annotated, Literal

import anyio.to_thread
from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver import Context, Elicit, MCPServer, Resolve
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from server.drafts import DraftConflictError, DraftPackage, StepName, StepStatus
from server.drafts.model import utc_now
from server.errors import resource_errors, tool_errors
from server.logging import get_logger
from server.paths import user_data_dir
from server.state import AppState, announce, app_state, caller, client_can_elicit, load_draft
from tools import hub_http, training_launcher
from tools.deployment_estimator.catalog import LOCAL
from tools.errors import UserError
from tools.training_launcher import LaunchRecord, PackageFacts, RunStatus

CALIBRATION_URI = "package://calibration"
# A run's record is saved even when the draft changed meanwhile (the run exists either way):
# read again and saved again, this many times, before the conflict is reported.
_RECORD_TRIES = 3

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


@dataclass(frozen=True)
class _Ready:
    """A launch checked end to end, before anyone is asked to pay for it."""

    draft: DraftPackage
    package: PackageFacts
    where: Literal["hub", "local"]
    token: str | None
    plan: "training_launcher.HubPlan | None"

    @property
    def usd_per_hour(self) -> float:
        return self.plan.usd_per_hour if self.plan else self.package.usd_per_hour

    def timeout_hours(self, state: AppState) -> float:
        if self.plan:
            return self.plan.timeout_hours
        return training_launcher.timeout_hours(self.package.estimated_hours, state.settings.launch)


def hub_token(state: AppState) -> str | None:
    """The token Hub runs are paid with: over stdio the user's own (HF_TOKEN or their stored
    login); over HTTP the operator's HF_TOKEN, used only where the operator allowed it."""
    if state.secrets.hf_token is not None:
        return state.secrets.hf_token.get_secret_value()
    if state.transport == "stdio":
        from huggingface_hub import get_token

        return get_token()
    return None


def _endpoint(state: AppState) -> str | None:
    hub = state.settings.models.hub
    hub_http.install(hub)  # the retrying client, as for every Hub call
    return str(hub.endpoint).rstrip("/") if hub.endpoint else None


def _refuse_over_http(state: AppState, where: Literal["hub", "local"]) -> None:
    sharing = state.settings.launch.sharing
    if state.transport != "http":
        return
    if where == "hub" and not sharing.hub_launches_over_http:
        raise UserError(
            "This shared server does not launch Hugging Face Jobs: its only token is the "
            "operator's, which would pay for everyone's runs. Launch from your own machine "
            "(the server over stdio with your HF_TOKEN), or train the package as its README "
            "says. (Operators: sharing.hub_launches_over_http in configs/launch.yaml.)"
        )
    if where == "local" and not sharing.local_runs_over_http:
        raise UserError(
            "This shared server does not run training on its own machine. Run the package "
            "where you are (its README says how), or pick a Hugging Face flavor. (Operators: "
            "sharing.local_runs_over_http in configs/launch.yaml.)"
        )


async def _ready(ctx: Context, draft_id: str, resume: bool) -> _Ready:
    """The draft's package, where it runs and, on the Hub, the token's plan; UserError with the
    reason and the fix for each refusal."""
    state = app_state(ctx)
    draft = await load_draft(ctx, draft_id)
    if draft.next_step is not None or draft.package is None:
        stale = [s.value for s in StepName if draft.section(s).status is StepStatus.STALE]
        why = f"the {', '.join(stale)} step(s) are stale" if stale else "it is not finalized"
        raise UserError(
            f"Draft {draft.id} cannot be launched: {why}, so no package matches it. Nothing "
            f"stale is launched. Next: {draft.next_action}."
        )
    running = draft.launch
    if running is not None and not running.finished:
        raise UserError(
            f"Draft {draft.id} has a run {running.stage} on {running.target}: follow it with "
            f'training_status(draft_id="{draft.id}") or stop it with cancel_training first.'
        )
    if resume and running is None:
        raise UserError(f"Draft {draft.id} has no earlier run to resume: launch without resume.")
    folder = Path(draft.package.path)
    package = await anyio.to_thread.run_sync(training_launcher.read_package, folder)
    if (package.draft_id, package.draft_version) != (draft.id, draft.package.draft_version):
        raise UserError(
            f"The package in {folder} was not written from this version of draft {draft.id}. "
            f'Run finalize_package(draft_id="{draft.id}") again, then launch.'
        )
    settings = state.settings
    if package.target == LOCAL:
        _refuse_over_http(state, "local")
        config = settings.launch
        await anyio.to_thread.run_sync(training_launcher.local_python, package, config)
        return _Ready(draft, package, "local", None, None)
    if package.target not in settings.deployment.flavors:
        raise UserError(
            f"The package's target '{package.target}' is a GPU you name, not hardware this "
            "server can start: train it there as its README says, or select a Hugging Face "
            f'flavor or "local" with estimate_deployment(draft_id="{draft.id}", select=...) '
            "and finalize again."
        )
    _refuse_over_http(state, "hub")
    token = hub_token(state)
    if token is None:
        raise UserError(
            "No Hugging Face token: set HF_TOKEN to a token with write access "
            "(https://huggingface.co/settings/tokens) or run `hf auth login`, then launch again. "
            "The run is paid by that token's account."
        )
    plan = await anyio.to_thread.run_sync(
        training_launcher.plan_hub_launch, package, token, _endpoint(state), settings.launch
    )
    return _Ready(draft, package, "hub", token, plan)


def _question(ready: _Ready, state: AppState, resume: bool) -> str:
    package, hours = ready.package, ready.timeout_hours(state)
    where = (
        f"Hugging Face Jobs ({package.target}, paid by {ready.plan.account.name})"
        if ready.plan
        else "this machine"
    )
    action = "Resume" if resume else "Start"
    return (
        f"{action} training '{ready.draft.title}' on {where}? Estimated "
        f"{package.estimated_hours:.2f} h and ${package.estimated_cost_usd:.2f} at "
        f"${ready.usd_per_hour:.2f}/h; it is stopped after {hours:.2f} h, so it costs at "
        f"most ${hours * ready.usd_per_hour:.2f}."
    )


async def launch_decision(
    ctx: Context, draft_id: str, confirm: bool = False, resume: bool = False
) -> LaunchApproval | Elicit[LaunchApproval]:
    """Yes when the caller confirmed; otherwise the user is asked when the client can ask and
    the launch passes its checks, else no (the body then reports why, or asks for confirm)."""
    if confirm:
        return LaunchApproval(launch=True)
    if not client_can_elicit(ctx):
        return LaunchApproval(launch=False)
    try:
        ready = await _ready(ctx, draft_id, resume)
    except UserError:
        return LaunchApproval(launch=False)  # the tool body reports the problem
    return Elicit(_question(ready, app_state(ctx), resume), LaunchApproval)


def _owner_hash(owner: str) -> str:
    return hashlib.sha256(owner.encode()).hexdigest()[:16]


async def _claim(
    ctx: Context, ready: _Ready, now: datetime, timeout: float, resume: bool
) -> DraftPackage:
    """Mark the draft as starting a run, compare-and-set on the version the checks read: of two
    launches at once (two tabs, two replicas) one starts, the other is refused."""
    package = ready.package
    claim = LaunchRecord(
        where=ready.where,
        target=package.target,
        stage="scheduling",
        started_at=now,
        package_path=str(package.folder),
        usd_per_hour=ready.usd_per_hour,
        estimated_hours=package.estimated_hours,
        estimated_cost_usd=package.estimated_cost_usd,
        timeout_hours=timeout,
        resumed=resume,
    )
    try:
        return await app_state(ctx).store.update(ready.draft.launched(claim))
    except DraftConflictError as exc:
        raise UserError(
            f"Draft {ready.draft.id} changed while this launch was being prepared (another "
            f'launch, or an edit); nothing was started. See training_status(draft_id="'
            f'{ready.draft.id}") before launching again.'
        ) from exc


async def _keep_run(ctx: Context, draft: DraftPackage, record: LaunchRecord | None) -> DraftPackage:
    """Save the run in the draft, reading it again if it changed meanwhile."""
    store = app_state(ctx).store
    for _ in range(_RECORD_TRIES - 1):
        try:
            saved = await store.update(draft.launched(record))
            break
        except DraftConflictError:
            draft = await load_draft(ctx, draft.id)
    else:
        saved = await store.update(draft.launched(record))
    await announce(ctx, saved)
    return saved


async def _note_progress(ctx: Context, draft: DraftPackage, record: LaunchRecord) -> DraftPackage:
    """Save what a status call learnt, unless the draft changed meanwhile (a cancel, another
    status call): their record stands, and the next status call reads the run again."""
    try:
        saved = await app_state(ctx).store.update(draft.launched(record))
    except DraftConflictError:
        return await load_draft(ctx, draft.id)
    await announce(ctx, saved)
    return saved


def _status_next(draft_id: str, record: LaunchRecord) -> str:
    call = f'draft_id="{draft_id}"'
    if not record.finished:
        return f"ask again later with training_status({call}); cancel_training({call}) stops it"
    if record.stage == "completed" and record.model_repo:
        return f"done: the trained model is in {record.model_repo}"
    if record.stage == "completed" and record.where == "local":
        return f"done: the trained model is in {record.package_path}/output"
    if record.stage == "completed":
        return "done, but train.py pushed no model (its log says why): nothing left the Job"
    return (
        f"read the log lines (untrusted) with the user; then launch_training({call}, "
        "resume=true) goes on from the last checkpoint"
    )


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
        ready = await _ready(ctx, draft_id, resume)
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
            asked = client_can_elicit(ctx) and not confirm
            again = f'launch_training(draft_id="{draft_id}", confirm=true' + (
                ", resume=true)" if resume else ")"
            )
            return LaunchResult(
                launched=False,
                question=None if asked else _question(ready, state, resume),
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
                "owner": _owner_hash(caller(ctx)),
            }
            start = partial(
                training_launcher.launch_on_hub,
                package,
                ready.plan,
                ready.token,
                _endpoint(state),
                config,
                labels=labels,
                resume=resume,
                now=now,
            )
        else:
            start = partial(
                training_launcher.launch_locally, package, config, resume=resume, now=now
            )
        claimed = await _claim(ctx, ready, now, timeout, resume)
        try:
            record = await anyio.to_thread.run_sync(start)
        except Exception:
            await _keep_run(ctx, claimed, ready.draft.launch)  # nothing started: as before
            raise
        record = record.model_copy(update={"package_path": str(package.folder)})
        saved = await _keep_run(ctx, claimed, record)
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
        record = _launched(draft)
        now, config = utc_now(), state.settings.launch
        if record.where == "hub":
            token = _token_for_run(state)
            find = partial(
                training_launcher.hub_status, record, token, _endpoint(state), config, now
            )
        else:
            find = partial(training_launcher.local_status, record, config, now)
        updated, status = await anyio.to_thread.run_sync(find)
        if updated.stage == "completed" and not updated.calibrated:
            draft = await _calibrate(ctx, draft, updated, now)
        elif updated != record:
            draft = await _note_progress(ctx, draft, updated)
        return StatusResult(
            **status.model_dump(), draft_uri=draft.uri, next_action=_status_next(draft.id, updated)
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
        record = _launched(draft)
        token = _token_for_run(state) if record.job_id is not None else None
        stop = partial(
            training_launcher.cancel_run,
            record,
            token,
            _endpoint(state),
            state.settings.launch,
            utc_now(),
        )
        stopped = await anyio.to_thread.run_sync(stop)
        draft = await _keep_run(ctx, draft, stopped)
        log.info("training.canceled", draft_id=draft.id, where=record.where)
        return CancelResult(
            canceled=True,
            stage=stopped.stage,
            hours=stopped.hours,
            cost_usd=stopped.cost_usd,
            draft_uri=draft.uri,
            next_action=(
                f'launch_training(draft_id="{draft.id}", resume=true) goes on from the last '
                "checkpoint"
            ),
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
        read = partial(
            training_launcher.read_rows, _calibration_path(state), _owner_hash(caller(ctx)), shown
        )
        rows = await anyio.to_thread.run_sync(read)
        return json.dumps(
            [
                {**row.model_dump(mode="json", exclude={"owner"}), "hours_ratio": row.hours_ratio}
                for row in rows
            ],
            indent=2,
        )


def _launched(draft: DraftPackage) -> LaunchRecord:
    if draft.launch is None:
        raise UserError(f"Draft {draft.id} has not been launched. Next: {draft.next_action}.")
    return draft.launch


def _token_for_run(state: AppState) -> str:
    """The token a Hub run is followed or stopped with (the one that launched it, as a rule)."""
    _refuse_over_http(state, "hub")
    token = hub_token(state)
    if token is None:
        raise UserError(
            "No Hugging Face token to reach the Job with: set HF_TOKEN (the token that "
            "launched it) or run `hf auth login`."
        )
    return token


def _calibration_path(state: AppState) -> Path:
    return state.settings.launch.calibration.path or user_data_dir() / "calibration.jsonl"


async def _calibrate(
    ctx: Context, draft: DraftPackage, record: LaunchRecord, now: datetime
) -> DraftPackage:
    """Record the completed run, and add its row to the calibration log once: the row is
    written only by the call whose compare-and-set marked the run calibrated, so two status
    calls at once do not both add it (the loser reads the draft again)."""
    marked = record.model_copy(update={"calibrated": True})
    try:
        saved = await app_state(ctx).store.update(draft.launched(marked))
    except DraftConflictError:
        return await load_draft(ctx, draft.id)  # the next status call settles it
    await announce(ctx, saved)
    state = app_state(ctx)
    try:
        package = await anyio.to_thread.run_sync(
            training_launcher.read_package, Path(record.package_path or "")
        )
    except UserError:
        return saved  # the package is gone: no estimate to compare with
    row = training_launcher.calibration_row(marked, package, _owner_hash(caller(ctx)), now)
    await anyio.to_thread.run_sync(training_launcher.append_row, _calibration_path(state), row)
    return saved
