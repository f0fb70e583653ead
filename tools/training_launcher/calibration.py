"""The calibration log: for each completed run, the estimate next to what happened, so that
estimates can be checked against reality over time (one JSON line per run, appended)."""

import json
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError


class CalibrationRow(BaseModel):
    recorded_at: datetime
    owner: str = Field(description="A hash of the run's owner: each person sees their own rows.")
    draft_id: str
    where: str
    target: str
    gpu: str
    gpu_count: int
    model: str
    method: str
    train_tokens: int
    estimated_hours: float
    hours: float
    estimated_peak_memory_gb: float
    peak_memory_gb: float | None = Field(description="torch.cuda.max_memory_allocated, if told.")
    estimated_cost_usd: float
    cost_usd: float

    @property
    def hours_ratio(self) -> float | None:
        return round(self.hours / self.estimated_hours, 3) if self.estimated_hours else None


def append_row(path: Path, row: CalibrationRow) -> None:
    """Add `row` as one line (a single append of one line: concurrent writers do not mix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = row.model_dump_json() + "\n"
    with path.open("a", encoding="utf-8") as log:
        log.write(line)


def read_rows(path: Path, owner: str, limit: int) -> list[CalibrationRow]:
    """`owner`'s newest `limit` rows, newest first; lines that do not parse are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    rows: list[CalibrationRow] = []
    for line in reversed(lines):
        try:
            row = CalibrationRow.model_validate(json.loads(line))
        except (ValueError, ValidationError):
            continue
        if row.owner == owner:
            rows.append(row)
            if len(rows) >= limit:
                break
    return rows
