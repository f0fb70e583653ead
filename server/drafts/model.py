"""The draft package: a section per wizard step, each with a status, its payload and its issues."""

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, computed_field

from tools.issues import Issue
from tools.training_launcher.records import LaunchRecord

DRAFTS_URI = "package://drafts"
# "One owner's drafts list changed", as published on the subscription bus; subscribers hear it
# as DRAFTS_URI, and only when they own it (server.notifications).
_OWNED_DRAFTS_PREFIX = DRAFTS_URI + "?owner="


def draft_uri(draft_id: str) -> str:
    return f"{DRAFTS_URI}/{draft_id}"


def owned_drafts_uri(owner: str) -> str:
    """The bus URI announcing a change to `owner`'s drafts list.

    The owner appears as a hash, so a token's subject never travels in a notification payload
    (with PostgreSQL, NOTIFY reaches every session listening on the channel).
    """
    return _OWNED_DRAFTS_PREFIX + hashlib.sha256(owner.encode()).hexdigest()


def is_owned_drafts_uri(uri: str) -> bool:
    """Whether `uri` is some owner's owned_drafts_uri (the bus's, never a client's to use)."""
    return uri.startswith(_OWNED_DRAFTS_PREFIX)


def utc_now() -> datetime:
    return datetime.now(UTC)


class StepName(StrEnum):
    """The wizard's steps, in the order they are taken."""

    MODEL = "model"
    CONFIG = "config"
    DATASETS = "datasets"
    DEPLOYMENT = "deployment"


class StepStatus(StrEnum):
    EMPTY = "empty"
    VALID = "valid"
    INVALID = "invalid"
    STALE = "stale"
    """Made from an earlier step's facts that have changed since (server.drafts.graph)."""


class StepSection(BaseModel):
    status: StepStatus = StepStatus.EMPTY
    payload: dict[str, Any] = Field(default_factory=dict)
    issues: list[Issue] = Field(default_factory=list)
    reason: str | None = Field(default=None, description="Why the step is stale.")
    updated_at: datetime | None = None


class PackageRecord(BaseModel):
    """The package finalize_package wrote from this draft."""

    path: str
    created_at: datetime
    draft_version: int = Field(description="The draft's version the package was built from.")


class DraftPackage(BaseModel):
    id: str
    owner: str
    title: str
    created_at: datetime
    updated_at: datetime
    version: int = Field(
        ge=1, description="Bumped by every saved change; updates compare-and-set it."
    )
    model: StepSection = Field(default_factory=StepSection)
    config: StepSection = Field(default_factory=StepSection)
    datasets: StepSection = Field(default_factory=StepSection)
    deployment: StepSection = Field(default_factory=StepSection)
    package: PackageRecord | None = Field(
        default=None, description="Set by finalize_package; cleared when a step changes."
    )
    launch: LaunchRecord | None = Field(
        default=None,
        description="The latest run of the package (launch_training); kept when a step changes, "
        "since it ran.",
    )

    @computed_field
    @property
    def uri(self) -> str:
        return draft_uri(self.id)

    @computed_field
    @property
    def next_step(self) -> StepName | None:
        """The first step not yet valid (empty, invalid or stale); None once all four are."""
        for step in StepName:
            if self.section(step).status is not StepStatus.VALID:
                return step
        return None

    @computed_field
    @property
    def next_action(self) -> str:
        """The next call to make, with its arguments where the draft knows them: what an
        assistant that cannot read resources relies on."""
        step = self.next_step
        if step is None:
            if self.launch is not None and not self.launch.finished:
                return f'training_status(draft_id="{self.id}")'
            if self.package is not None:
                return (
                    f"finalized: the training package is in {self.package.path}; "
                    f'launch_training(draft_id="{self.id}") runs it'
                )
            return f'finalize_package(draft_id="{self.id}")'
        section = self.section(step)
        call = _next_call(self, step, section.payload)
        if section.status is StepStatus.STALE:
            return f"redo the {step.value} step ({section.reason}): {call}"
        if section.status is StepStatus.INVALID:
            return f"fix the {step.value} step's errors, then {call}"
        return call

    def section(self, step: StepName) -> StepSection:
        return getattr(self, step.value)

    def with_section(self, step: StepName, section: StepSection) -> "DraftPackage":
        """A copy with one step replaced (the caller saves it; the store bumps the version)."""
        stamped = section.model_copy(update={"updated_at": utc_now()})
        # a changed step no longer matches the package written before
        return self.model_copy(update={step.value: stamped, "package": None})

    def finalized(self, record: PackageRecord) -> "DraftPackage":
        """A copy that keeps where its package was written (the caller saves it)."""
        return self.model_copy(update={"package": record})

    def launched(self, record: LaunchRecord | None) -> "DraftPackage":
        """A copy that keeps its latest run (the caller saves it)."""
        return self.model_copy(update={"launch": record})


def _next_call(draft: DraftPackage, step: StepName, payload: dict[str, Any]) -> str:
    """The call that takes `step`, as far as the draft can fill in its arguments."""
    draft_id = f'draft_id="{draft.id}"'
    if step is StepName.MODEL:
        model = payload.get("model_id")
        if model:
            return f'select_model({draft_id}, model_id="{model}")'
        return f"search_models(query=...), then select_model({draft_id}, model_id=...)"
    if step is StepName.CONFIG:
        template = payload.get("template") or "lora"
        return f'apply_template({draft_id}, template="{template}")'
    if step is StepName.DATASETS:
        refs = [d["ref"] for d in payload.get("datasets") or [] if isinstance(d, dict)]
        shown = ", ".join(f'"{ref}"' for ref in refs) if refs else "..."
        convert = f', convert="{payload["convert"]}"' if payload.get("convert") else ""
        return f"validate_datasets({draft_id}, datasets=[{shown}]{convert})"
    recommended = payload.get("recommended")
    if payload and not payload.get("selected") and recommended:
        return (
            f'show the options, then estimate_deployment({draft_id}, select="{recommended}") '
            "or the target the user picks"
        )
    return f"estimate_deployment({draft_id})"


class DraftSummary(BaseModel):
    """One line of `package://drafts`."""

    id: str
    title: str
    updated_at: datetime
    version: int
    next_step: StepName | None

    @computed_field
    @property
    def uri(self) -> str:
        return draft_uri(self.id)

    @classmethod
    def of(cls, draft: DraftPackage) -> "DraftSummary":
        return cls(
            id=draft.id,
            title=draft.title,
            updated_at=draft.updated_at,
            version=draft.version,
            next_step=draft.next_step,
        )
