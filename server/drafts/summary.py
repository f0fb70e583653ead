"""A draft in a few lines: each step's status with what it holds, the open issues, the next call.

What get_draft returns, for assistants whose client cannot read resources (the draft resource
has every detail); every line is short enough to relay as it is.
"""

from typing import Any

from pydantic import BaseModel, Field

from server.drafts.model import DraftPackage, StepName, StepStatus


class StepLine(BaseModel):
    step: StepName
    status: StepStatus
    summary: str = Field(description="What the step holds, in one line ('' while empty).")
    reason: str | None = Field(default=None, description="Why it is stale.")


class DraftState(BaseModel):
    draft_id: str
    title: str
    steps: list[StepLine]
    issues: list[str] = Field(description="Open errors, then warnings: '<step>: <message>'.")
    package: str | None = Field(default=None, description="Where its package was written.")
    launch: str | None = Field(default=None, description="Its latest run, in one line.")
    next_action: str


def draft_state(draft: DraftPackage, max_issues: int) -> DraftState:
    """`draft` compactly, with at most `max_issues` issue lines (errors first)."""
    issues = sorted(
        (
            (issue.severity != "error", f"{step.value}: {issue.message}")
            for step in StepName
            for issue in draft.section(step).issues
        ),
        key=lambda found: found[0],
    )
    lines = [text for _, text in issues[:max_issues]]
    if len(issues) > max_issues:
        lines.append(f"... and {len(issues) - max_issues} more in {draft.uri}")
    return DraftState(
        draft_id=draft.id,
        title=draft.title,
        steps=[
            StepLine(
                step=step,
                status=draft.section(step).status,
                summary=_SUMMARIES[step](draft.section(step).payload),
                reason=draft.section(step).reason,
            )
            for step in StepName
        ],
        issues=lines,
        package=draft.package.path if draft.package else None,
        launch=_launch(draft),
        next_action=draft.next_action,
    )


def _launch(draft: DraftPackage) -> str | None:
    run = draft.launch
    if run is None:
        return None
    line = f"{run.stage} on {run.target} ({run.where}) since {run.started_at:%Y-%m-%d %H:%M} UTC"
    if run.hours is not None:
        line += f", {run.hours:.2f} h, ${run.cost_usd or 0:.2f}"
    return line


def _model(payload: dict[str, Any]) -> str:
    if not payload.get("model_id"):
        return ""
    params = payload.get("params_b")
    context = (payload.get("architecture") or {}).get("context_length")
    figures = [
        f"{params:g}B parameters" if params else "",
        f"context {context:,}" if context else "",
    ]
    shown = ", ".join(f for f in figures if f)
    return f"{payload['model_id']}" + (f" ({shown})" if shown else "")


def _config(payload: dict[str, Any]) -> str:
    config = payload.get("config") or {}
    if not payload.get("template"):
        return ""
    keys = ("learning_rate", "lora_r", "num_epochs", "max_seq_length")
    shown = ", ".join(f"{k} {config[k]}" for k in keys if config.get(k) is not None)
    return f"{payload['template']} ({config.get('method', '?')}): {shown}"


def _datasets(payload: dict[str, Any]) -> str:
    datasets = [d for d in payload.get("datasets") or [] if isinstance(d, dict)]
    if not datasets:
        return ""
    refs = ", ".join(str(d.get("ref")) for d in datasets)
    valid = sum(int(d.get("valid_records") or 0) for d in datasets)
    records = sum(int(d.get("records") or 0) for d in datasets)
    tokens = int(payload.get("train_tokens") or 0)
    convert = f", converted to {payload['convert']}" if payload.get("convert") else ""
    dropped = sum(int(d.get("dropped") or 0) for d in datasets)
    left_out = f" ({dropped:,} invalid left out)" if dropped else ""
    return (
        f"{refs}: {valid:,} of {records:,} records valid{left_out}{convert}, "
        f"{tokens:,} train tokens"
    )


def _deployment(payload: dict[str, Any]) -> str:
    chosen = payload.get("selected")
    if isinstance(chosen, dict):
        return (
            f"{chosen.get('target')} chosen: {chosen.get('peak_memory_gb')} GB peak, "
            f"{chosen.get('hours')} h, ${chosen.get('cost_usd')}"
        )
    recommended = payload.get("recommended")
    if payload:
        return f"estimated; nothing chosen yet (recommended: {recommended or 'none'})"
    return ""


_SUMMARIES = {
    StepName.MODEL: _model,
    StepName.CONFIG: _config,
    StepName.DATASETS: _datasets,
    StepName.DEPLOYMENT: _deployment,
}
