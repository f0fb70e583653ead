"""What a launch reads of a finalized package: its manifest (package.yaml) and requirements."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tools.errors import UserError

MANIFEST = "package.yaml"


@dataclass(frozen=True)
class PackageFacts:
    folder: Path
    draft_id: str
    draft_version: int
    target: str
    gpu: str
    gpu_count: int
    estimated_hours: float
    estimated_cost_usd: float
    estimated_peak_memory_gb: float
    model: str
    method: str
    train_tokens: int
    train_script: str
    requirements_file: str
    requirements: str
    model_repo: str | None = None
    """package.yaml's hub.model_repo ("name" or "owner/name"), where train.py pushes."""

    @property
    def usd_per_hour(self) -> float:
        """What the estimate charges per hour (cloud: the flavor; own GPU: electricity)."""
        return self.estimated_cost_usd / self.estimated_hours if self.estimated_hours else 0.0


def read_package(folder: Path) -> PackageFacts:
    """The package in `folder`; UserError when it is gone or not one finalize_package wrote."""
    fix = "Run finalize_package again to write it."
    try:
        manifest: dict[str, Any] = yaml.safe_load((folder / MANIFEST).read_text(encoding="utf-8"))
        files, deployment = manifest["files"], manifest["deployment"]
        requirements = (folder / files["requirements"]).read_text(encoding="utf-8")
        hub = manifest.get("hub") or {}
        return PackageFacts(
            folder=folder,
            draft_id=str(manifest["draft"]["id"]),
            draft_version=int(manifest["draft"]["version"]),
            target=str(deployment["target"]),
            gpu=str(deployment["gpu"]),
            gpu_count=int(deployment["gpu_count"]),
            estimated_hours=float(deployment["hours"]),
            estimated_cost_usd=float(deployment["cost_usd"]),
            estimated_peak_memory_gb=float(deployment["peak_memory_gb"]),
            model=str(manifest["model"]["id"]),
            method=str(manifest["config"]["method"]),
            train_tokens=int(manifest["data"]["train_tokens"]),
            train_script=str(files["train_script"]),
            requirements_file=str(files["requirements"]),
            requirements=requirements,
            model_repo=str(hub["model_repo"]) if hub.get("model_repo") else None,
        )
    except FileNotFoundError as exc:
        raise UserError(f"The package's {Path(exc.filename).name} is missing. {fix}") from exc
    except (KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        raise UserError(f"The package's {MANIFEST} cannot be read ({exc!r:.200}). {fix}") from exc
