"""What the surfaces share about a draft's steps: recording a step's result, which brings the
later steps up to date, and the facts earlier steps give a later one.

When a step is recorded with different facts, each later step made from them is redone in the
same call where that is mechanical and cheap (the config re-checked against a new model, the
datasets judged against a new template, the deployment re-estimated with the same targets, its
chosen target kept only if it still fits), and otherwise marked stale with the reason
(re-reading the datasets is neither): the draft is never left saying valid about something made
from facts that have changed.
"""

from functools import partial
from typing import Any, TypeVar

import anyio.to_thread
from mcp.server.mcpserver import Context
from pydantic import BaseModel, ValidationError

from server.data_step import fit_problem, rejudge
from server.drafts import DraftPackage, StepName, StepSection, StepStatus
from server.drafts.graph import change, later_steps, waits_for
from server.state import AppState, announce, app_state
from tools import deployment_estimator, hub_http
from tools.deployment_estimator import DeploymentConfig
from tools.errors import UserError
from tools.model_browser import Architecture
from tools.template_loader import (
    CrossStepFacts,
    ModelFacts,
    TargetFacts,
    TemplateResult,
    apply_template,
)

R = TypeVar("R", bound=BaseModel)


async def record_step(
    ctx: Context,
    draft: DraftPackage,
    step: StepName,
    section: StepSection,
    answer: BaseModel | dict[str, Any],
    result: type[R],
) -> R:
    """Save `section` as the draft's `step` with the later steps brought up to date, and
    return `answer` as the tool's `result` model with the draft's id, uri, next action and
    what happened to the later steps (those of them the model declares)."""
    state = app_state(ctx)
    updated, changes = await follow_up(state, draft, step, section)
    saved = await state.store.update(updated)
    await announce(ctx, saved)
    fields = dict(answer) if isinstance(answer, BaseModel) else answer
    return result(
        **fields,
        draft_id=saved.id,
        draft_uri=saved.uri,
        next_action=saved.next_action,
        changes=changes,
    )


async def follow_up(
    state: AppState, draft: DraftPackage, step: StepName, section: StepSection
) -> tuple[DraftPackage, list[str]]:
    """`draft` with `section` as its `step` and each later step made from facts that changed
    (or stale already) redone or marked stale; and a line for each, to tell the user."""
    updated = draft.with_section(step, section)
    changed = {step: (draft.section(step).payload, section.payload)}
    lines: list[str] = []
    for later in later_steps(step):
        current = updated.section(later)
        if current.status is StepStatus.EMPTY:
            continue
        reasons = {up: change(up, before, after, later) for up, (before, after) in changed.items()}
        reason = "; ".join(r for r in reasons.values() if r)
        if not reason and current.status is not StepStatus.STALE:
            continue
        # a step stale already, or made from another model, is not merely judged again
        judge_only = current.status is not StepStatus.STALE and not reasons.get(StepName.MODEL)
        redone, told = await _redo(state, updated, later, judge_only)
        if redone is None:
            blocker = waits_for(updated, later)
            why = reason or current.reason or "an earlier step changed"
            if blocker is not None and blocker is not step:
                why = f"{why}; it waits for the {blocker.value} step"
            if later is StepName.DATASETS and (problem := fit_problem(updated, state.settings)):
                why = f"{why}; {problem}"
            stale = current.model_copy(update={"status": StepStatus.STALE, "reason": why})
            updated = updated.with_section(later, stale)
            lines.append(f"{later.value}: stale ({why})")
            continue
        changed[later] = (current.payload, redone.payload)
        updated = updated.with_section(later, redone)
        if told:
            lines.append(f"{later.value}: {told}")
    return updated, lines


async def _redo(
    state: AppState, draft: DraftPackage, step: StepName, judge_only: bool
) -> tuple[StepSection | None, str]:
    """`step` made again from the draft's current earlier steps, when that is mechanical and
    cheap and they are valid, and what came of it ("" if nothing the user needs to hear);
    (None, "") otherwise. The datasets are
    only judged again (`judge_only`: nothing but the config changed under them), when the
    config left their length limit as it was."""
    if waits_for(draft, step) is not None:
        return None, ""
    try:
        if step is StepName.CONFIG:
            recorded = draft.config.payload
            facts = facts_from_draft(draft, state.settings.deployment)
            result = apply_template(
                state.settings.templates, recorded["template"], recorded.get("overrides"), facts
            )
            outcome = "valid" if result.valid else f"{len(result.errors)} error(s)"
            return config_section(result), f"re-checked against the new facts: {outcome}"
        if step is StepName.DATASETS and judge_only:
            return rejudge(draft, state.settings)
        if step is StepName.DEPLOYMENT:
            return await _re_estimate(state, draft)
    except (UserError, KeyError):
        return None, ""
    return None, ""  # the datasets otherwise: read again only when the user asks


async def _re_estimate(state: AppState, draft: DraftPackage) -> tuple[StepSection, str]:
    recorded = draft.deployment.payload
    targets = [o["target"] for o in recorded.get("options") or [] if isinstance(o, dict)]
    config, prices, local = await hardware_facts(state)
    request = deployment_estimator.DeploymentRequest(
        sections=draft_sections(draft),
        recorded=recorded,
        targets=targets or None,
        budget_answer="keep",
    )
    settings = state.settings
    setup = deployment_estimator.EstimatorSetup(
        config, settings.templates, settings.package.run, local, prices
    )
    outcome = deployment_estimator.plan_deployment(request, setup)
    chosen = outcome.answer.selected
    before = (recorded.get("selected") or {}).get("target")
    if chosen is not None:
        told = (
            f"re-estimated: {chosen.target} kept ({chosen.peak_memory_gb:.1f} GB, "
            f"{chosen.hours:.2f} h, ${chosen.cost_usd:.2f})"
        )
    elif before:
        dropped = [note for note in outcome.answer.notes if note.startswith("the draft's choice")]
        told = f"re-estimated: {dropped[0] if dropped else f'the choice {before} was dropped'}"
    else:
        told = "re-estimated"
    return deployment_section(outcome.step), told


async def hardware_facts(
    state: AppState, refresh: bool = False
) -> tuple["deployment_estimator.DeploymentConfig", str, "deployment_estimator.LocalHardware"]:
    """The priced deployment config, where its prices came from, and the local machine."""
    hub, token = state.settings.models.hub, state.secrets.hf_token
    hub_http.install(hub)  # the live prices come from the Hub
    facts = partial(
        state.hardware.facts,
        state.settings.deployment,
        str(hub.endpoint) if hub.endpoint else None,
        token.get_secret_value() if token else None,
        refresh,
    )
    return await anyio.to_thread.run_sync(facts)


def config_section(result: TemplateResult) -> StepSection:
    """apply_template's result as the draft's config step."""
    return StepSection(
        status=StepStatus.VALID if result.valid else StepStatus.INVALID,
        payload=result.model_dump(mode="json"),
        issues=[issue.model_dump(exclude={"keys"}) for issue in [*result.errors, *result.warnings]],
    )


def deployment_section(step: "deployment_estimator.DeploymentStep") -> StepSection:
    """The deployment service's step as the draft's deployment step."""
    return StepSection(
        status=StepStatus.VALID if step.ready else StepStatus.INVALID,
        payload=step.payload,
        issues=step.issues,
    )


def draft_sections(draft: DraftPackage | None) -> "deployment_estimator.DraftSections":
    """The payloads of the draft's first three steps, as the deployment estimate reads them."""
    if draft is None:
        return deployment_estimator.DraftSections()
    return deployment_estimator.DraftSections(
        model=draft.model.payload, config=draft.config.payload, datasets=draft.datasets.payload
    )


def facts_from_draft(draft: DraftPackage, deployment: DeploymentConfig) -> CrossStepFacts:
    """The other steps' valid results, as the checks need them; a step not done stays None."""
    return CrossStepFacts(
        model=_model_facts(_valid_payload(draft, StepName.MODEL)),
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
