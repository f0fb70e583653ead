"""The one issue model every step reports with: what is wrong or worth a look, and the fix."""

from typing import Literal

from pydantic import BaseModel

Severity = Literal["error", "warning"]


class Issue(BaseModel):
    """An error stops the step (or the package); a warning needs the user's eye, not a fix."""

    severity: Severity
    code: str
    message: str
    fix: str | None = None
