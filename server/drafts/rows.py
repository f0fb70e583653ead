"""How a DraftPackage and a calibration row map to table rows, and the SQL migrations, for every
SQL backend."""

import json
import secrets
from datetime import datetime
from importlib import resources
from typing import Any

from server.drafts.model import DraftPackage, StepName, utc_now
from tools.training_launcher import CalibrationRow

COLUMNS = "id, owner, title, version, created_at, updated_at, sections"
CALIBRATION_COLUMNS = "owner, draft_id, started_at, recorded_at, row_json"


def new_draft(owner: str, title: str) -> DraftPackage:
    now = utc_now()
    return DraftPackage(
        id=secrets.token_hex(6),
        owner=owner,
        title=title,
        created_at=now,
        updated_at=now,
        version=1,
    )


def sections(draft: DraftPackage) -> dict[str, Any]:
    """The four step sections, the package and launch records, JSON-ready: the `sections`
    column (a JSON value in SQLite and PostgreSQL alike, so a new record needs no migration)."""
    kept = {*(step.value for step in StepName), "package", "launch"}
    return draft.model_dump(mode="json", include=kept)


def draft_from_row(row: tuple[Any, ...]) -> DraftPackage:
    """A row in COLUMNS order; timestamps as datetimes or ISO text, sections as JSON or a dict."""
    draft_id, owner, title, version, created_at, updated_at, sections = row
    return DraftPackage(
        id=draft_id,
        owner=owner,
        title=title,
        version=version,
        created_at=_timestamp(created_at),
        updated_at=_timestamp(updated_at),
        **(json.loads(sections) if isinstance(sections, str) else sections),
    )


def calibration_from_row(row_json: str | dict[str, Any]) -> CalibrationRow:
    """The row_json column: JSON text (SQLite) or a decoded JSONB value (PostgreSQL)."""
    if isinstance(row_json, str):
        return CalibrationRow.model_validate_json(row_json)
    return CalibrationRow.model_validate(row_json)


def migrations(backend: str) -> list[tuple[int, str]]:
    """(number, SQL script) for each file in migrations/<backend>/, in order."""
    folder = resources.files("server.drafts") / "migrations" / backend
    scripts = sorted(
        (int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    )
    numbers = [number for number, _ in scripts]
    if numbers != list(range(1, len(numbers) + 1)):
        raise RuntimeError(f"{backend} migrations must be numbered 1..n without gaps: {numbers}")
    return scripts


def statements(script: str) -> list[str]:
    """The statements of a migration script (no semicolons inside statements, by convention)."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _timestamp(value: datetime | str) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)
