"""What finalize_package's service returns."""

from typing import Any

from pydantic import BaseModel, Field


class PackageResult(BaseModel):
    path: str
    files: list[str] = Field(description="Every file, relative to path.")
    manifest: dict[str, Any] = Field(description="package.yaml's content.")
