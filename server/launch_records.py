"""The draft's record of its run: claimed before a launch starts (compare-and-set, so two
launches at once start one run), kept once it started, brought up to date by status calls, and
each completed run's row in the calibration log (the draft store's, beside the drafts)."""

from collections.abc import Callable
from datetime import datetime

from mcp.server.mcpserver import Context

from server.drafts import DraftConflictError, DraftPackage
from server.launch_checks import Ready
from server.logging import get_logger
from server.state import announce, app_state, load_draft
from tools import training_launcher
from tools.errors import UserError
from tools.training_launcher import LaunchRecord, Progress

# A run's record is saved even when the draft changed meanwhile (the run exists either way):
# read again and saved again, this many times, before the conflict is reported.
RECORD_TRIES = 3
log = get_logger(__name__)


async def claim_run(
    ctx: Context, ready: Ready, now: datetime, timeout: float, resume: bool
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


async def keep_run(ctx: Context, draft: DraftPackage, record: LaunchRecord | None) -> DraftPackage:
    """Save the run in the draft, reading it again if it changed meanwhile."""
    saved = await _save_run(ctx, draft, record, abandon=lambda _: False)
    assert saved is not None  # nothing abandons it
    return saved


async def keep_started(
    ctx: Context, claimed: DraftPackage, record: LaunchRecord
) -> DraftPackage | None:
    """Save the run that started over its claim; None when the user canceled the claim while
    the run was being started (cancel_training during the upload finds only the claim): the
    caller then stops the run instead of recording it over the cancel."""
    claim = claimed.launch

    def canceled(draft: DraftPackage) -> bool:
        now = draft.launch
        return bool(claim and now and now.canceled_by_user and now.started_at == claim.started_at)

    return await _save_run(ctx, claimed, record, abandon=canceled)


async def _save_run(
    ctx: Context,
    draft: DraftPackage,
    record: LaunchRecord | None,
    *,
    abandon: Callable[[DraftPackage], bool],
) -> DraftPackage | None:
    """The draft with `record` saved, tried RECORD_TRIES times over drafts changed meanwhile
    (read again each time); None as soon as a draft read again is one to `abandon`."""
    store = app_state(ctx).store
    for _ in range(RECORD_TRIES - 1):
        try:
            saved = await store.update(draft.launched(record))
            break
        except DraftConflictError:
            draft = await load_draft(ctx, draft.id)
            if abandon(draft):
                return None
    else:
        saved = await store.update(draft.launched(record))
    await announce(ctx, saved)
    return saved


async def note_progress(ctx: Context, draft: DraftPackage, record: LaunchRecord) -> DraftPackage:
    """Save what a status call learnt, unless the draft changed meanwhile (a cancel, another
    status call): their record stands, and the next status call reads the run again."""
    try:
        saved = await app_state(ctx).store.update(draft.launched(record))
    except DraftConflictError:
        return await load_draft(ctx, draft.id)
    await announce(ctx, saved)
    return saved


def status_next(draft_id: str, record: LaunchRecord, progress: Progress) -> str:
    call = f'draft_id="{draft_id}"'
    if not record.finished:
        return f"ask again later with training_status({call}); cancel_training({call}) stops it"
    if record.stage == "completed" and record.model_repo:
        return f"done: the trained model is in {record.model_repo}"
    if record.stage == "completed" and record.where == "local":
        return f"done: the trained model is in {record.package_path}/output"
    if record.stage == "completed":
        return "done, but train.py pushed no model (its log says why): nothing left the Job"
    if progress.nothing_to_resume:
        return after_stop(draft_id, can_resume=False)
    return f"read the log lines (untrusted) with the user; then {after_stop(draft_id, True)}"


def after_stop(draft_id: str, can_resume: bool) -> str:
    """What launches a stopped run again: resume from its checkpoint, or start over."""
    call = f'draft_id="{draft_id}"'
    if can_resume:
        return f"launch_training({call}, resume=true) goes on from the last checkpoint"
    return (
        f"nothing to resume: no checkpoint was saved before the run stopped; "
        f"launch_training({call}) without resume starts it over"
    )


def launched_run(draft: DraftPackage) -> LaunchRecord:
    if draft.launch is None:
        raise UserError(f"Draft {draft.id} has not been launched. Next: {draft.next_action}.")
    return draft.launch


async def calibrate(
    ctx: Context, draft: DraftPackage, record: LaunchRecord, now: datetime
) -> DraftPackage:
    """Add the completed run's row to the calibration log, then mark the run calibrated. In
    that order a store that fails in between loses nothing (the next status call adds the row
    again), and two status calls at once (on one replica or two) add one row: the store keeps
    one per draft and run. The compare-and-set's loser reads the draft again."""
    store = app_state(ctx).store
    marked = record.model_copy(update={"calibrated": True})
    if marked.facts is None:
        # A record from before launches kept the package's facts: skipped, not filled from the
        # package on disk, which may be a later finalize's (a row mixing two packages would
        # mislead every estimate checked against it).
        log.warning(
            "calibration.skipped",
            draft_id=draft.id,
            started_at=marked.started_at.isoformat(),
            reason="its launch record predates the package facts kept at launch",
        )
    else:
        row = training_launcher.calibration_row(draft.id, marked, marked.facts, now)
        await store.add_calibration(draft.owner, row)
    try:
        saved = await store.update(draft.launched(marked))
    except DraftConflictError:
        return await load_draft(ctx, draft.id)  # the next status call settles it
    await announce(ctx, saved)
    return saved
    await store.add_calibration(
        saved.owner, training_launcher.calibration_row(saved.id, marked, marked.facts, now)
    )
    return saved
