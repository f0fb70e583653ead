"""Launch a finalized package, follow its run, stop it: on Hugging Face Jobs or on this machine.

The caller (the MCP surface) decides who may launch and with which token, asks the user, and
keeps the returned LaunchRecord in the draft; these functions do the work and report it. They
block (HTTP, processes): run them in a worker thread.
"""

import os
import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tools.deployment_estimator.live_prices import MINUTES_PER_HOUR
from tools.errors import UserError
from tools.training_launcher import local_runs
from tools.training_launcher.calibration import CalibrationRow
from tools.training_launcher.checkpoints import HUB_CHECKPOINT, local_checkpoint
from tools.training_launcher.config import LaunchConfig
from tools.training_launcher.hub_jobs import Account, HubJobs, hub_errors
from tools.training_launcher.job_command import (
    job_command,
    job_image,
    train_arguments,
    train_command,
)
from tools.training_launcher.package_facts import PackageFacts
from tools.training_launcher.progress import log_tail, read_progress
from tools.training_launcher.records import (
    FINISHED,
    RUN_KEY_ENV,
    LaunchRecord,
    Progress,
    RunFacts,
    RunStatus,
    Stage,
)

SECONDS_PER_HOUR = 3600
_HUB_STAGES: dict[str, Stage] = {
    "SCHEDULING": "scheduling",
    "RUNNING": "running",
    "COMPLETED": "completed",
    "ERROR": "error",
    "CANCELED": "canceled",
    "DELETED": "canceled",
}


_NOT_STARTED = (
    "The run is still being started (the Job or process is not there yet): ask again in a "
    "moment; if it stays so, cancel_training clears it."
)


@dataclass(frozen=True)
class HubPlan:
    """What a Hub launch will do, checked before the user is asked to pay for it."""

    account: Account
    usd_per_hour: float
    timeout_hours: float
    package_repo: str
    model_repo: str


def timeout_hours(estimated_hours: float, config: LaunchConfig) -> float:
    """The estimate times the safety factor, never under the configured minimum."""
    floor = config.hub.min_timeout_minutes / MINUTES_PER_HOUR
    return round(max(estimated_hours * config.hub.timeout_safety_factor, floor), 3)


def repo_name(folder: str, draft_id: str, suffix: str, limit: int) -> str:
    """A Hub repo name from the package folder's name: only letters, digits, '-', '_' and '.',
    no '--' or '..', no '-' or '.' at either end (the Hub's rules), the draft id in it (so two
    drafts never share a repo), at most `limit` characters with `suffix`."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", folder)
    slug = re.sub(r"([-.])[-.]+", r"\1", slug).strip("-.")
    if draft_id not in slug:
        slug = f"{slug}-{draft_id}" if slug else draft_id
    keep = limit - len(suffix) - len(draft_id) - 1
    if len(slug) > limit - len(suffix):
        slug = f"{slug[:keep].strip('-.')}-{draft_id}"
    return slug + suffix


def plan_hub_launch(
    package: PackageFacts,
    token: str,
    endpoint: str | None,
    config: LaunchConfig,
    *,
    resume: bool = False,
) -> HubPlan:
    """Whose token it is, that it may write, that Jobs offer the flavor now and at what price,
    and for a resume that the model repo holds a checkpoint; UserError naming the fix
    otherwise."""
    hub = HubJobs(endpoint, token, config)
    account = hub.account()
    if not account.can_write:
        raise UserError(
            f"The Hugging Face token of '{account.name}' is read-only: launching uploads the "
            "package to a private repo and starts a Job, which need a token with write access "
            "(https://huggingface.co/settings/tokens). Set HF_TOKEN to one and try again."
        )
    price = hub.flavor_price(package.target)
    if price is None:
        raise UserError(
            f"Hugging Face Jobs do not offer '{package.target}' now. Run estimate_deployment "
            "again and select another flavor, then finalize_package."
        )
    folder, draft_id = package.folder.name, package.draft_id
    limit, suffix = config.hub.max_repo_name_chars, config.hub.package_repo_suffix
    model_repo = package.model_repo or repo_name(folder, draft_id, "", limit)
    model_repo = model_repo if "/" in model_repo else f"{account.name}/{model_repo}"
    with hub_errors("checking package.yaml's hub.model_repo", config.status.max_log_line_chars):
        from huggingface_hub.utils import validate_repo_id

        validate_repo_id(model_repo)
    if resume and not hub.has_checkpoint(model_repo):
        raise UserError(
            f"Nothing to resume: {model_repo} has no {HUB_CHECKPOINT}/, so the last run "
            "stopped before its first checkpoint, and a resumed Job would stop at once after "
            f'its machine started. launch_training(draft_id="{package.draft_id}") starts '
            "over; nothing was started."
        )
    return HubPlan(
        account=account,
        usd_per_hour=round(price, 4),
        timeout_hours=timeout_hours(package.estimated_hours, config),
        package_repo=f"{account.name}/{repo_name(folder, draft_id, suffix, limit)}",
        model_repo=model_repo,
    )


def launch_on_hub(
    package: PackageFacts,
    plan: HubPlan,
    token: str,
    endpoint: str | None,
    config: LaunchConfig,
    *,
    labels: dict[str, str],
    resume: bool,
    now: datetime,
) -> LaunchRecord:
    """Upload the package to its private repo and start the Job; returns once it is accepted.
    The run's key goes in the Job's environment, not its secrets: it proves nothing to anyone
    who can read the Job, only that a log line is train.py's, and the data predates it."""
    hub = HubJobs(endpoint, token, config)
    hub.upload_package(package.folder, plan.package_repo)
    arguments = train_arguments(plan.model_repo, resume, plan.timeout_hours)
    run_key = secrets.token_urlsafe()
    job = hub.run(
        image=job_image(package.requirements, config.hub),
        env={RUN_KEY_ENV: run_key},
        command=job_command(
            plan.package_repo,
            package.train_script,
            package.requirements_file,
            package.gpu_count,
            arguments,
            config.hub,
        ),
        flavor=package.target,
        timeout=round(plan.timeout_hours * SECONDS_PER_HOUR),
        labels=labels,
        name=package.folder.name,
        namespace=plan.account.name,
    )
    return LaunchRecord(
        where="hub",
        target=package.target,
        stage=_HUB_STAGES.get(
            str(getattr(job.status.stage, "value", job.status.stage)), "scheduling"
        ),
        started_at=now,
        job_id=job.id,
        namespace=plan.account.name,
        url=job.url,
        package_repo=plan.package_repo,
        model_repo=plan.model_repo,
        run_key=run_key,
        usd_per_hour=plan.usd_per_hour,
        estimated_hours=package.estimated_hours,
        estimated_cost_usd=package.estimated_cost_usd,
        timeout_hours=plan.timeout_hours,
        facts=run_facts(package),
        resumed=resume,
    )


def local_python(package: PackageFacts, config: LaunchConfig) -> Path:
    """The interpreter for a local run; UserError with the fix when there is none."""
    python = config.local.python or package.folder / ".venv" / "bin" / "python"
    if not Path(python).is_file():
        raise UserError(
            f"No Python environment for this package at {python}. Make it as the package "
            f"README says (cd {package.folder} && python -m venv .venv && .venv/bin/pip install "
            f"-r {package.requirements_file}), or set local.python in configs/launch.yaml."
        )
    return Path(python)


def launch_locally(
    package: PackageFacts,
    config: LaunchConfig,
    *,
    resume: bool,
    now: datetime,
    withheld: Collection[str],
    hub_login: bool,
) -> LaunchRecord:
    """Start train.py detached in the package folder, its output in the package's log, in this
    process's environment less the variables `withheld` and, without `hub_login`, less any
    Hugging Face login (the caller decides whose environment this is)."""
    python = local_python(package, config)
    limit = timeout_hours(package.estimated_hours, config)
    arguments = train_arguments(None, resume, limit)
    command = train_command(str(python), package.train_script, package.gpu_count, arguments)
    log_path = package.folder / config.local.log_file
    run_key = secrets.token_urlsafe()
    env = {**local_runs.run_environment(os.environ, withheld, hub_login), RUN_KEY_ENV: run_key}
    started = local_runs.start(command, package.folder, log_path, env)
    return LaunchRecord(
        where="local",
        target=package.target,
        stage="running",
        started_at=now,
        pid=started.pid,
        process_start=started.identity,
        log_path=str(log_path),
        log_offset=started.log_offset,
        run_key=run_key,
        usd_per_hour=round(package.usd_per_hour, 4),
        estimated_hours=package.estimated_hours,
        estimated_cost_usd=package.estimated_cost_usd,
        timeout_hours=limit,
        facts=run_facts(package),
        resumed=resume,
    )


def hub_status(
    record: LaunchRecord, token: str, endpoint: str | None, config: LaunchConfig, now: datetime
) -> tuple[LaunchRecord, RunStatus]:
    """The Job as the Hub reports it, its progress from its log; the record brought up to date."""
    if record.job_id is None or record.namespace is None:
        raise UserError(_NOT_STARTED)
    hub = HubJobs(endpoint, token, config)
    state = hub.state(record.namespace, record.job_id)
    lines = hub.logs(record.namespace, record.job_id) if state.stage != "SCHEDULING" else []
    stage = _HUB_STAGES.get(state.stage, record.stage)
    hours = state.running_s / SECONDS_PER_HOUR
    updated = _settle(record, stage, hours, lines, config, now)
    return updated, _status(updated, hours, lines, config, hub_message=state.message)


def local_status(
    record: LaunchRecord, config: LaunchConfig, now: datetime
) -> tuple[LaunchRecord, RunStatus]:
    """The local run: alive or not (pid and start time), its progress from the package's log."""
    if record.pid is None or record.log_path is None:
        raise UserError(_NOT_STARTED)
    lines = local_runs.read_tail(
        Path(record.log_path), config.local.log_bytes_read, record.log_offset
    )
    end = record.finished_at or now
    hours = (end - record.started_at).total_seconds() / SECONDS_PER_HOUR
    if record.finished:
        return record, _status(record, record.hours or hours, lines, config)
    identity = record.process_start or ""
    if local_runs.is_running(record.pid, identity):
        grace_hours = config.local.limit_grace_minutes / MINUTES_PER_HOUR
        if hours <= record.timeout_hours + grace_hours:  # train.py stops itself at the limit
            return record, _status(record, hours, lines, config)
        # nothing runs without a limit: well past its time limit, the run is stopped
        local_runs.stop(record.pid, identity, config.local.stop_grace_s)
        updated = _settle(record, "error", hours, lines, config, now)
        message = f"Stopped at its time limit of {record.timeout_hours} h (resume=true goes on)."
        return updated, _status(updated, hours, lines, config, message=message)
    progress = read_progress(lines, record.run_key, config.status.max_log_line_chars)
    stage: Stage = "completed" if progress.done else "error"
    updated = _settle(record, stage, hours, lines, config, now)
    message = None if progress.done else "The process ended without train.py's done line."
    return updated, _status(updated, hours, lines, config, message=message)


def _settle(
    record: LaunchRecord,
    stage: Stage,
    hours: float,
    lines: list[str],
    config: LaunchConfig,
    now: datetime,
) -> LaunchRecord:
    """`record` at `stage`; once finished, with its actual hours, cost and peak memory."""
    if record.finished:
        return record
    if stage not in FINISHED:
        return record.model_copy(update={"stage": stage})
    progress = read_progress(lines, record.run_key, config.status.max_log_line_chars)
    return record.model_copy(
        update={
            "stage": stage,
            "finished_at": now,
            "hours": round(hours, 4),
            "cost_usd": round(hours * record.usd_per_hour, 2),
            "peak_memory_gb": progress.peak_memory_gb,
            # done says where the model went; null: nowhere (train.py had no token to push)
            "model_repo": progress.model_repo if progress.done else record.model_repo,
        }
    )


def _status(
    record: LaunchRecord,
    hours: float,
    lines: list[str],
    config: LaunchConfig,
    message: str | None = None,
    hub_message: str | None = None,
) -> RunStatus:
    """`message` is the server's own; `hub_message`, the Hub's, goes with the log, untrusted."""
    status = config.status
    progress: Progress = read_progress(lines, record.run_key, status.max_log_line_chars)
    return RunStatus(
        stage=record.stage,
        where=record.where,
        target=record.target,
        elapsed_hours=round(hours, 3),
        cost_so_far_usd=round(hours * record.usd_per_hour, 2),
        estimated_hours=record.estimated_hours,
        estimated_cost_usd=record.estimated_cost_usd,
        timeout_hours=record.timeout_hours,
        progress=progress,
        log=log_tail(
            lines,
            record.run_key,
            status.log_lines_shown,
            status.max_log_line_chars,
            hub_message,
        ),
        message=message,
        model_repo=record.model_repo if record.stage == "completed" else None,
        url=record.url,
    )


def cancel_run(
    record: LaunchRecord,
    token: str | None,
    endpoint: str | None,
    config: LaunchConfig,
    now: datetime,
) -> LaunchRecord:
    """Stop the run (the Job, or the local process group) and record that the user did."""
    if record.finished:
        raise UserError(f"The run is already {record.stage}; nothing to cancel.")
    hours = (now - record.started_at).total_seconds() / SECONDS_PER_HOUR
    if record.job_id is not None and record.namespace is not None:
        if token is None:
            raise UserError("No Hugging Face token to cancel the Job with; set HF_TOKEN.")
        hub = HubJobs(endpoint, token, config)
        hub.cancel(record.namespace, record.job_id)
        # a Job is billed for the time it ran, not the time it waited for a machine
        hours = hub.state(record.namespace, record.job_id).running_s / SECONDS_PER_HOUR
    elif record.pid is not None:
        local_runs.stop(record.pid, record.process_start or "", config.local.stop_grace_s)
    ran = record.job_id is not None or record.pid is not None
    # still being started (no Job or process yet): nothing known ran, and the launch stops it
    return record.model_copy(
        update={
            "stage": "canceled",
            "canceled_by_user": True,
            "finished_at": now,
            "hours": round(hours, 4) if ran else None,
            "cost_usd": round(hours * record.usd_per_hour, 2) if ran else None,
        }
    )


def resumable(
    record: LaunchRecord, token: str | None, endpoint: str | None, config: LaunchConfig
) -> bool:
    """Whether `train.py --resume` would find a checkpoint of this run: a Job's in its model
    repo (the Job's disk is gone), a local run's in its package folder."""
    if record.where == "hub":
        if token is None or record.model_repo is None:
            return False
        return HubJobs(endpoint, token, config).has_checkpoint(record.model_repo)
    return record.package_path is not None and local_checkpoint(Path(record.package_path))


def run_facts(package: PackageFacts) -> RunFacts:
    """The package's facts that its run's calibration row needs (RunFacts' fields, read off)."""
    return RunFacts.model_validate(package, from_attributes=True)


def calibration_row(
    draft_id: str, record: LaunchRecord, facts: RunFacts, now: datetime
) -> CalibrationRow:
    """The estimate next to what a completed run took, both of the package that was launched."""
    return CalibrationRow(
        recorded_at=now,
        draft_id=draft_id,
        started_at=record.started_at,
        where=record.where,
        target=record.target,
        **facts.model_dump(),
        estimated_hours=record.estimated_hours,
        hours=record.hours or 0.0,
        peak_memory_gb=record.peak_memory_gb,
        estimated_cost_usd=record.estimated_cost_usd,
        cost_usd=record.cost_usd or 0.0,
        resumed=record.resumed,
    )
