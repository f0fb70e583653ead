"""configs/package.yaml: where packages are written, their file names, the pins they carry."""

import re
from pathlib import Path, PurePosixPath
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from tools.config_base import ConfigModel
from tools.trainer_run import TrainerRun

MANIFEST_NAME = "package.yaml"
"""The package's entry point: fixed, because train.py starts from it to find every other file."""

# A PEP 508 requirement as the config writes one: a name, optional extras, optional version
# clauses, an optional environment marker.
_REQUIREMENT = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9._,-]+\])?"
    r"(\s*(==|>=|<=|~=|!=|<|>)\s*[A-Za-z0-9.*+!-]+(\s*,\s*(==|>=|<=|~=|!=|<|>)\s*[A-Za-z0-9.*+!-]+)*)?"
    r"(\s*;\s*\S.*)?$"
)


class OutputConfig(ConfigModel):
    root: Path | None = Field(
        description="Where every owner's package folder lives; None: the user data directory."
    )
    extra_roots: list[Path] = Field(
        description="Other directories holding owners' folders that output_dir may point into."
    )
    slug_max_chars: Annotated[int, Field(ge=1, le=200)]


class FilesConfig(ConfigModel):
    """Each file's path inside the package, relative, with forward slashes."""

    readme: str
    train_script: str
    requirements: str
    trl_config: str
    axolotl_config: str
    train_data: str
    validation_data: str
    source_dir: str

    @field_validator("*")
    @classmethod
    def _inside_the_package(cls, value: str) -> str:
        path = PurePosixPath(value)
        if not value or path.is_absolute() or ".." in path.parts or "\\" in value:
            raise ValueError(f"'{value}' must be a relative path inside the package, with '/'")
        return path.as_posix()

    @model_validator(mode="after")
    def _distinct(self) -> "FilesConfig":
        names = [MANIFEST_NAME, *self.model_dump().values()]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"two files of a package share a path: {', '.join(repeated)}")
        return self


class RequirementsConfig(ConfigModel):
    common: Annotated[list[str], Field(min_length=1)]
    qlora: list[str] = Field(
        description="Added when the run uses bitsandbytes: a 4-bit base or an 8-bit optimizer."
    )

    @field_validator("common", "qlora")
    @classmethod
    def _requirements(cls, value: list[str]) -> list[str]:
        bad = [line for line in value if not _REQUIREMENT.match(line.strip())]
        if bad:
            raise ValueError(f"not a requirement (name, then version clauses): {', '.join(bad)}")
        return [line.strip() for line in value]


class PackageConfig(ConfigModel):
    output: OutputConfig
    files: FilesConfig
    copy_source_files: bool = Field(description="Also package the validated files as they are.")
    requirements: RequirementsConfig
    run: TrainerRun

    @model_validator(mode="after")
    def _run_read_from_the_pinned_trl(self) -> "PackageConfig":
        pin = f"trl=={self.run.trl_version}"
        if pin not in self.requirements.common:
            raise ValueError(
                f"run describes trl {self.run.trl_version}, but requirements.common does not pin "
                f"{pin}: read run's settings again from the pinned TRL and update both"
            )
        return self
