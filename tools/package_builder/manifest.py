"""package.yaml: what a package holds and where each part came from.

The manifest is the package's entry point: train.py reads the model, the data files and the
trainer config's name from it. Every other file is listed with its sha256, so a package can be
checked after it was copied or uploaded.
"""

from datetime import datetime
from typing import Any

import yaml
from pydantic import BaseModel, Field

from tools.dataset_validator.results import ConversionReport, MediaDropped, SplitReport
from tools.issues import Issue
from tools.package_builder.data import DataFile, PackagedData, SourceFile
from tools.package_builder.hub import HubEntry
from tools.package_builder.inputs import PackageInputs
from tools.package_builder.shapes import Shape
from tools.package_builder.writer import FileDigest

FORMAT_VERSION = 1
"""Bumped when a field train.py reads changes meaning."""


class Generator(BaseModel):
    name: str
    version: str


class DraftEntry(BaseModel):
    id: str
    title: str
    version: int = Field(description="The draft's version the package was built from.")


class ModelEntry(BaseModel):
    id: str
    revision: str | None
    architecture: dict[str, Any]
    params: int
    context_length: int
    license: str | None
    gated: bool


class ConfigEntry(BaseModel):
    template: str
    method: str
    values: dict[str, Any]
    provenance: dict[str, str]


class DatasetEntry(BaseModel):
    ref: str
    source: str
    format: str | None
    records: int
    valid_records: int
    sha256: str
    size_bytes: int
    train_records: int
    validation_records: int
    converted: ConversionReport | None = Field(
        default=None, description='What convert: "sft" made of it, and what it left out.'
    )
    media_dropped: MediaDropped | None = Field(
        default=None, description="Media taken out of the records, as asked (drop_media)."
    )
    dropped: int = Field(default=0, description="Invalid records left out (drop_invalid).")
    dropped_counts: dict[str, int] = Field(
        default_factory=dict, description="The records left out, by their first error's code."
    )
    files: list[SourceFile]


class DataEntry(BaseModel):
    shape: Shape
    conversational: bool
    train: DataFile
    validation: DataFile | None
    split: SplitReport
    train_tokens: int
    tokenizer: str = Field(description="What counted the tokens.")
    columns: dict[str, str] = Field(
        default_factory=dict, description="Fields the records were renamed from, to."
    )
    dropped: int = Field(default=0, description="Invalid records left out, over all datasets.")


class DeploymentEntry(BaseModel):
    target: str
    hardware: str
    gpu: str
    gpu_count: int
    peak_memory_gb: float
    hours: float
    cost_usd: float
    within_budget: bool
    budget_usd: float
    prices: str


class FileNames(BaseModel):
    trl_config: str
    axolotl_config: str
    train_script: str
    requirements: str
    readme: str


class PackageManifest(BaseModel):
    format_version: int = FORMAT_VERSION
    created_at: datetime
    generator: Generator
    draft: DraftEntry
    model: ModelEntry
    config: ConfigEntry
    datasets: list[DatasetEntry]
    data: DataEntry
    deployment: DeploymentEntry
    hub: HubEntry
    files: FileNames
    accepted_warnings: list[Issue]
    checksums: dict[str, FileDigest] = Field(default_factory=dict)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, width=100)


def build_manifest(
    inputs: PackageInputs,
    data: PackagedData,
    files: FileNames,
    hub: HubEntry,
    *,
    generator: Generator,
    created_at: datetime,
    accepted_warnings: list[Issue],
) -> PackageManifest:
    """The manifest of a package built from `inputs` (checksums are added once files exist)."""
    model, config, datasets = inputs.model, inputs.config, inputs.datasets
    option, estimate = inputs.deployment.selected, inputs.deployment.estimate
    return PackageManifest(
        created_at=created_at,
        generator=generator,
        draft=DraftEntry(id=inputs.draft_id, title=inputs.title, version=inputs.draft_version),
        model=ModelEntry(
            id=model.model_id,
            revision=model.revision,
            architecture=model.architecture.model_dump(exclude_none=True),
            params=model.params,
            context_length=model.context_length,
            license=model.license,
            gated=model.gated,
        ),
        config=ConfigEntry(
            template=config.template,
            method=config.method,
            values=config.config,
            provenance=config.provenance,
        ),
        datasets=[
            DatasetEntry(
                ref=d.ref,
                source=d.source,
                format=d.format,
                records=d.records,
                valid_records=d.valid_records,
                sha256=d.sha256,
                size_bytes=d.size_bytes,
                train_records=d.split.train,
                validation_records=d.split.validation,
                converted=d.converted,
                media_dropped=d.media_dropped,
                dropped=d.dropped,
                dropped_counts=d.dropped_counts,
                files=data.sources[d.ref],
            )
            for d in datasets.datasets
        ],
        data=DataEntry(
            shape=data.shape,
            conversational=data.conversational,
            train=data.train,
            validation=data.validation,
            split=datasets.split,
            train_tokens=datasets.train_tokens,
            tokenizer=datasets.tokenizer.detail,
            columns=datasets.columns,
            dropped=sum(d.dropped for d in datasets.datasets),
        ),
        deployment=DeploymentEntry(
            target=option.target,
            hardware=option.hardware,
            gpu=option.gpu,
            gpu_count=option.gpu_count,
            peak_memory_gb=option.peak_memory_gb,
            hours=option.hours,
            cost_usd=option.cost_usd,
            within_budget=option.within_budget,
            budget_usd=estimate.budget_usd,
            prices=estimate.prices,
        ),
        hub=hub,
        files=files,
        accepted_warnings=accepted_warnings,
    )
