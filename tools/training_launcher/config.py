"""configs/launch.yaml: who may launch where, the Job's image and limits, what status shows."""

from pathlib import Path
from typing import Annotated

from pydantic import Field

from tools.config_base import ConfigModel

Positive = Annotated[float, Field(gt=0)]
Count = Annotated[int, Field(ge=1)]


class SharingConfig(ConfigModel):
    hub_launches_over_http: bool = Field(description="True: the operator's token pays.")
    local_runs_over_http: bool = Field(description="True: runs use the server's machine.")


class JobImage(ConfigModel):
    torch: str = Field(description="The torch version the image holds.")
    image: str


class HubJobsConfig(ConfigModel):
    package_repo_type: str = Field(pattern=r"^(model|dataset)$")
    package_repo_suffix: str = Field(pattern=r"^[A-Za-z0-9._-]*$")
    max_repo_name_chars: Count
    workdir: str = Field(pattern=r"^/[A-Za-z0-9._/-]+$")
    hub_client: str
    images: list[JobImage] = Field(min_length=1)
    timeout_safety_factor: Annotated[float, Field(ge=1)]
    min_timeout_minutes: Positive
    log_lines_fetched: Count


class LocalRunsConfig(ConfigModel):
    python: Path | None = Field(description="None: the package's .venv/bin/python.")
    log_file: str = Field(pattern=r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
    stop_grace_s: Positive
    limit_grace_minutes: Positive = Field(
        description="How long past its time limit a run (saving its checkpoint) is left."
    )
    log_bytes_read: Count


class StatusConfig(ConfigModel):
    log_lines_shown: Annotated[int, Field(ge=0, le=200)]
    max_log_line_chars: Count


class CalibrationConfig(ConfigModel):
    rows_shown: Count


class LaunchConfig(ConfigModel):
    sharing: SharingConfig
    hub: HubJobsConfig
    local: LocalRunsConfig
    status: StatusConfig
    calibration: CalibrationConfig
