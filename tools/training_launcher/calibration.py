"""The calibration log's row: for each completed run, the estimate next to what happened, so
that estimates can be checked against reality over time. The draft store keeps the rows, each
under its owner, one per draft and run."""

from datetime import datetime

from pydantic import BaseModel, Field


class CalibrationRow(BaseModel):
    recorded_at: datetime
    draft_id: str
    started_at: datetime = Field(description="When the run started: with draft_id, which run.")
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
    resumed: bool = Field(
        default=False, description="A resumed run: its hours and cost are only the rest."
    )

    @property
    def hours_ratio(self) -> float | None:
        """Actual over estimated hours; None for a resumed run, whose hours cover only the part
        after its checkpoint while the estimate covers the whole training."""
        if self.resumed or not self.estimated_hours:
            return None
        return round(self.hours / self.estimated_hours, 3)
