"""finalize_package: the four steps checked together, then written as a package a trainer runs.

Errors stop the package with every problem and its fix. Warnings need the user's yes: asked
through elicitation when the client offers it, otherwise returned as structured fields with the
call that writes anyway (accept_warnings=true). The writing runs in a worker thread.
"""

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import anyio.from_thread
import anyio.to_thread
from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver import Context, Elicit, MCPServer, Resolve
from mcp.types import ListRootsResult, ToolAnnotations
from pydantic import BaseModel, Field

from server import __version__
from server.drafts import DraftConflictError, DraftPackage, StepName, StepStatus
from server.drafts.model import PackageRecord
from server.errors import tool_errors
from server.logging import get_logger
from server.places import owner_package_folders, sweep_package_leftovers
from server.sources import dataset_sources
from server.state import announce, app_state, caller, client_can_elicit, heavy_call, load_draft
from server.steps import facts_from_draft
from tools import package_builder
from tools.deployment_estimator import DeploymentEstimate
from tools.errors import UserError
from tools.issues import Issue
from tools.model_browser import ModelDetails
from tools.template_loader import TemplateResult, apply_template

log = get_logger(__name__)

# Steps whose recorded warnings still stand at the end; the config step's are found afresh,
# because its template is applied again against the final choices.
_CARRIED_WARNINGS = (StepName.MODEL, StepName.DATASETS, StepName.DEPLOYMENT)


class FinalizeResult(BaseModel):
    written: bool
    path: str | None = Field(default=None, description="The package folder.")
    files: list[str] = Field(default_factory=list, description="Its files, relative to path.")
    summary: str | None = Field(
        default=None, description="What it trains, where and at what cost (package.yaml says all)."
    )
    warnings: list[Issue] = Field(description="Accepted, or awaiting the user's yes.")
    draft_uri: str
    next_action: str


class WriteAnyway(BaseModel):
    write: bool = Field(description="Write the training package despite these warnings.")


@dataclass(frozen=True)
class _Preflight:
    draft: DraftPackage
    inputs: "package_builder.PackageInputs"
    issues: list[Issue]

    @property
    def warnings(self) -> list[Issue]:
        return [issue for issue in self.issues if issue.severity == "warning"]


async def _preflight(ctx: Context, draft_id: str) -> _Preflight:
    """The draft's four steps as typed results, and every problem found across them."""
    settings = app_state(ctx).settings
    draft = await load_draft(ctx, draft_id)
    unfinished = [step for step in StepName if draft.section(step).status != StepStatus.VALID]
    if unfinished:
        states = ", ".join(
            f"{step.value} ({draft.section(step).status.value})" for step in unfinished
        )
        raise UserError(
            f"Draft {draft.id} is not ready: the {', '.join(s.value for s in unfinished)} "
            f"step(s) are not valid yet: {states}. Nothing stale or invalid is written. "
            f"Next: {draft.next_action}."
        )
    recorded = package_builder.step_result(
        TemplateResult, draft.config.payload, "config", "apply_template"
    )
    facts = facts_from_draft(draft, settings.deployment)
    estimate = package_builder.step_result(
        DeploymentEstimate, draft.deployment.payload, "deployment", "estimate_deployment"
    )
    inputs = package_builder.PackageInputs(
        draft_id=draft.id,
        title=draft.title,
        draft_version=draft.version,
        model=package_builder.step_result(
            ModelDetails, draft.model.payload, "model", "select_model"
        ),
        config=apply_template(settings.templates, recorded.template, recorded.overrides, facts),
        datasets=package_builder.step_result(
            package_builder.ValidatedDatasets,
            draft.datasets.payload,
            "datasets",
            "validate_datasets",
        ),
        deployment=package_builder.deployment_choice(estimate, settings.deployment.gpus),
    )
    issues = package_builder.check_package(inputs)
    issues += await anyio.to_thread.run_sync(package_builder.check_dataset_files, inputs.datasets)
    issues += [
        package_builder.warning(issue.code, f"{step.value}: {issue.message}", issue.fix)
        for step in _CARRIED_WARNINGS
        for issue in draft.section(step).issues
        if issue.severity == "warning"
    ]
    return _Preflight(draft, inputs, issues)


def _question(draft: DraftPackage, warnings: list[Issue]) -> str:
    listed = "\n".join(f"- {issue.message}" for issue in warnings)
    return (
        f"The training package for '{draft.title}' is ready to write, but {len(warnings)} "
        f"warning(s) remain:\n{listed}\nWrite it anyway?"
    )


async def _destination(
    ctx: Context, draft: DraftPackage, output_dir: str | None, overwrite: bool
) -> Path:
    """Where the package goes, refused (UserError) when the writer would refuse it, so nobody
    is asked to accept warnings for a package that cannot be written there."""
    settings = app_state(ctx).settings
    folders = owner_package_folders(settings, caller(ctx))
    destination = package_builder.package_destination(
        folders, output_dir, draft.title, draft.id, settings.package.output.slug_max_chars
    )
    await anyio.to_thread.run_sync(package_builder.refuse_destination, destination, overwrite)
    return destination


async def write_decision(
    ctx: Context, draft_id: str, accept_warnings: bool, output_dir: str | None, overwrite: bool
) -> WriteAnyway | Elicit[WriteAnyway]:
    """Whether the package may be written: yes without warnings or when the caller accepted
    them; otherwise the user is asked when the client can ask, else the answer is no."""
    if accept_warnings:
        return WriteAnyway(write=True)
    if not client_can_elicit(ctx):
        # nobody to ask: the body returns any warnings as fields (no second preflight here)
        return WriteAnyway(write=False)
    try:
        preflight = await _preflight(ctx, draft_id)
        await _destination(ctx, preflight.draft, output_dir, overwrite)
    except UserError:
        return WriteAnyway(write=False)  # the tool body reports the problem
    warnings = preflight.warnings
    errors = len(preflight.issues) > len(warnings)
    if errors or not warnings:
        return WriteAnyway(write=not warnings)
    return Elicit(_question(preflight.draft, warnings), WriteAnyway)


Decision = Annotated[ElicitationResult[WriteAnyway], Resolve(write_decision)]


def register(mcp: MCPServer) -> None:
    @mcp.tool(
        title="Finalize package",
        description=(
            "Check the four steps together, then write the package directory: package.yaml, "
            "TRL/PEFT and Axolotl configs, train.py, data, README. Warnings need the user's yes."
        ),
        annotations=ToolAnnotations(
            read_only_hint=False,
            destructive_hint=True,
            idempotent_hint=False,
            open_world_hint=True,
        ),
    )
    @tool_errors
    async def finalize_package(
        ctx: Context,
        draft_id: Annotated[str, Field(description="The draft.")],
        decision: Decision,
        output_dir: Annotated[
            str | None,
            Field(description="Directory in your package folder; default: <title>-<id>."),
        ] = None,
        overwrite: Annotated[
            bool, Field(description="Replace your package at output_dir.")
        ] = False,
        accept_warnings: Annotated[
            bool, Field(description="Write despite warnings, once the user agreed.")
        ] = False,
    ) -> FinalizeResult:
        state = app_state(ctx)
        settings = state.settings
        preflight = await _preflight(ctx, draft_id)
        package_builder.raise_errors(preflight.issues)
        draft, warnings = preflight.draft, preflight.warnings
        destination = await _destination(ctx, draft, output_dir, overwrite)
        approved = isinstance(decision, AcceptedElicitation) and decision.data.write
        if warnings and not approved:
            asked = client_can_elicit(ctx) and not accept_warnings
            return FinalizeResult(
                written=False,
                warnings=warnings,
                draft_uri=draft.uri,
                next_action=(
                    "The user chose not to write the package; fix the warnings, or ask again."
                    if asked
                    else f"Show the user these {len(warnings)} warning(s); if they agree, call "
                    "finalize_package again with accept_warnings=true, else fix them first."
                ),
            )
        request = package_builder.PackageRequest(
            inputs=preflight.inputs,
            destination=destination,
            generator=package_builder.Generator(name=settings.server.name, version=__version__),
            overwrite=overwrite,
            accepted_warnings=warnings,
        )
        sources = dataset_sources(state, ListRootsResult(roots=[]))
        build = partial(
            package_builder.build_package,
            request,
            settings.package,
            settings.datasets,
            sources,
            checkpoint=anyio.from_thread.check_cancelled,
        )
        async with heavy_call(ctx):
            await anyio.to_thread.run_sync(sweep_package_leftovers, settings, caller(ctx))
            result = await anyio.to_thread.run_sync(build)
        log.info("package.written", draft_id=draft.id, path=result.path, files=len(result.files))
        record = PackageRecord(
            path=result.path,
            created_at=result.manifest["created_at"],
            draft_version=draft.version,
        )
        marked = await _mark_finalized(ctx, draft, record)
        changed = "" if marked else " The draft changed while it was written; finalize again."
        return FinalizeResult(
            written=True,
            path=result.path,
            files=result.files,
            summary=_summary(result.manifest),
            warnings=warnings,
            draft_uri=draft.uri,
            next_action=(
                f'The package is in {result.path}: launch_training(draft_id="{draft.id}") '
                "runs it after the user's yes; by hand: pip install -r requirements.txt, then "
                f"python train.py.{changed}"
            ),
        )


def _summary(manifest: dict[str, Any]) -> str:
    """package.yaml in one line: the model, the method, the data, the target and its figures."""
    config, deployment = manifest["config"], manifest["deployment"]
    train = sum(d["train_records"] for d in manifest["datasets"])
    validation = sum(d["validation_records"] for d in manifest["datasets"])
    return (
        f"{manifest['model']['id']}, {config['template']} ({config['method']}), {train:,} train / "
        f"{validation:,} validation records, on {deployment['target']}: about "
        f"{deployment['peak_memory_gb']} GB peak, {deployment['hours']} h, "
        f"${deployment['cost_usd']}"
    )


async def _mark_finalized(
    ctx: Context, draft: DraftPackage, record: PackageRecord
) -> DraftPackage | None:
    """Keep the package's path in the draft; None when another call changed the draft while the
    package was written (the package's manifest names the version it was built from)."""
    try:
        saved = await app_state(ctx).store.update(draft.finalized(record))
    except DraftConflictError:
        log.warning("package.draft_changed", draft_id=draft.id, path=record.path)
        return None
    await announce(ctx, saved)
    return saved
