"""Draft packages: the choices a conversation accumulates, and where they are stored."""

from server.drafts.model import DraftPackage, DraftSummary, StepName, StepSection, StepStatus
from server.drafts.store import (
    DraftConflictError,
    DraftLimitError,
    DraftNotFoundError,
    DraftStore,
    DraftStoreError,
    DraftUnavailableError,
    DraftValueError,
)

__all__ = [
    "DraftConflictError",
    "DraftLimitError",
    "DraftNotFoundError",
    "DraftPackage",
    "DraftStore",
    "DraftStoreError",
    "DraftSummary",
    "DraftUnavailableError",
    "DraftValueError",
    "StepName",
    "StepSection",
    "StepStatus",
]
