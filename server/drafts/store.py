"""The storage contract every draft backend honours."""

from collections.abc import Sequence
from typing import Protocol

from server.drafts.model import DraftPackage, DraftSummary
from tools.errors import NotFoundError, UserError
from tools.training_launcher import CalibrationRow


class DraftStoreError(UserError):
    """A storage failure the user can act on; the message says what happened and what to do."""


class DraftNotFoundError(DraftStoreError, NotFoundError):
    def __init__(self, draft_id: str):
        self.draft_id = draft_id
        super().__init__(
            f"No draft '{draft_id}' was found. Read package://drafts for your drafts, "
            "or call create_draft to start a new one."
        )


class DraftValueError(DraftStoreError):
    """The database refused a value (a bad value, not an outage: retrying will not help)."""

    def __init__(self) -> None:
        super().__init__(
            "The drafts database refused a value in this request (such as a character or a "
            "number it cannot store); change the value rather than retrying."
        )


class DraftUnavailableError(DraftStoreError):
    def __init__(self) -> None:
        super().__init__("The drafts database is not answering right now; try again in a moment.")


class DraftConflictError(DraftStoreError):
    def __init__(self, draft_id: str, expected: int, current: int):
        self.draft_id = draft_id
        self.expected, self.current = expected, current
        super().__init__(
            f"Draft '{draft_id}' changed while this update was being made (expected version "
            f"{expected}, found {current}); nothing was overwritten. Read the draft again and "
            "repeat the change."
        )


class DraftLimitError(DraftStoreError):
    def __init__(self, limit: int):
        super().__init__(
            f"You already have {limit} drafts, the configured maximum "
            "(limits.max_drafts_per_owner). Delete old ones with delete_draft first."
        )


class DraftStore(Protocol):
    """Drafts belong to an owner: a draft of another owner is reported as not found."""

    async def create(self, owner: str, title: str) -> DraftPackage: ...

    async def get(self, draft_id: str, owner: str) -> DraftPackage: ...

    async def list(self, owner: str) -> list[DraftSummary]: ...

    async def update(self, draft: DraftPackage) -> DraftPackage:
        """Save `draft` if the stored version still equals `draft.version`; return it bumped.

        Raises DraftConflictError when another writer saved first, DraftNotFoundError when the
        draft is gone or belongs to someone else.
        """
        ...

    async def delete(self, draft_id: str, owner: str) -> None:
        """Remove the owner's draft; DraftNotFoundError when there is none (or not theirs)."""
        ...

    async def add_calibration(self, owner: str, row: CalibrationRow) -> bool:
        """Keep `row` under `owner`, once per draft and run: False when that run's row is
        there already (nothing is overwritten)."""
        ...

    async def calibration(self, owner: str, limit: int) -> Sequence[CalibrationRow]:
        """The owner's newest `limit` calibration rows, newest first; no one else's."""
        ...

    async def close(self) -> None: ...
