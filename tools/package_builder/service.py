"""build_package: the four steps' results -> a package directory a trainer runs, written whole.

Order matters only for the manifest: the data goes in first (it may turn out to have changed,
and then nothing else is worth writing), the manifest last, with every other file's checksum.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from tools.dataset_validator.config import DatasetsConfig
from tools.dataset_validator.sources import Sources
from tools.issues import Issue
from tools.package_builder.config import MANIFEST_NAME, PackageConfig
from tools.package_builder.data import DataPlan, package_datasets
from tools.package_builder.exporters import axolotl_dataset, export_axolotl, export_trl
from tools.package_builder.inputs import PackageInputs
from tools.package_builder.manifest import FileNames, Generator, build_manifest
from tools.package_builder.readme import render_readme
from tools.package_builder.requirements import render_requirements
from tools.package_builder.results import PackageResult
from tools.package_builder.shapes import package_shape
from tools.package_builder.writer import (
    OpenFile,
    open_new,
    refuse_destination,
    staged,
)

TRAIN_SCRIPT = ("files", "train.py")
"""The training script every package carries, shipped next to this module."""


@dataclass(frozen=True)
class PackageRequest:
    inputs: PackageInputs
    destination: Path
    generator: Generator
    overwrite: bool = False
    accepted_warnings: list[Issue] = field(default_factory=list)


def build_package(
    request: PackageRequest,
    config: PackageConfig,
    datasets_config: DatasetsConfig,
    sources: Sources,
    *,
    checkpoint: Callable[[], None] = lambda: None,
    open_file: OpenFile = open_new,
) -> PackageResult:
    """Write the package at request.destination, or nothing (UserError saying why)."""
    inputs, files = request.inputs, config.files
    model_id, revision = inputs.model.model_id, inputs.model.revision
    trl = export_trl(inputs.config, config.run, base_model=model_id, revision=revision)
    shape = package_shape([f for d in inputs.datasets.datasets if (f := d.trains_as) is not None])
    refuse_destination(request.destination, request.overwrite)
    plan = DataPlan(inputs.datasets, shape, files, config.copy_source_files)
    with staged(request.destination, request.overwrite, open_file) as package:
        data = package_datasets(plan, package, datasets_config, sources, checkpoint)
        train_entry = axolotl_dataset(shape, data.conversational, data.train.path)
        test_entry = (
            axolotl_dataset(shape, data.conversational, data.validation.path)
            if data.validation
            else None
        )
        axolotl = export_axolotl(
            inputs.config,
            base_model=model_id,
            revision=revision,
            datasets=[train_entry] if train_entry else None,
            test_datasets=[test_entry] if test_entry else None,
        )
        package.write_text(files.trl_config, _yaml(trl.model_dump(mode="json")))
        package.write_text(files.axolotl_config, axolotl.to_yaml())
        package.write_bytes(files.train_script, train_script())
        package.write_text(files.requirements, render_requirements(config.requirements, trl))
        manifest = build_manifest(
            inputs,
            data,
            FileNames(
                trl_config=files.trl_config,
                axolotl_config=files.axolotl_config,
                train_script=files.train_script,
                requirements=files.requirements,
                readme=files.readme,
            ),
            generator=request.generator,
            created_at=datetime.now(UTC),
            accepted_warnings=request.accepted_warnings,
        )
        package.write_text(files.readme, render_readme(manifest, files, train_entry is not None))
        checksums = {name: package.digests[name] for name in sorted(package.digests)}
        manifest = manifest.model_copy(update={"checksums": checksums})
        package.write_text(MANIFEST_NAME, manifest.to_yaml())
        listing = sorted(package.digests)
    return PackageResult(
        path=str(request.destination),
        files=listing,
        manifest=manifest.model_dump(mode="json"),
    )


def train_script() -> bytes:
    return resources.files(__package__).joinpath(*TRAIN_SCRIPT).read_bytes()


def _yaml(value: dict[str, Any]) -> str:
    return yaml.safe_dump(value, sort_keys=False, width=100)
