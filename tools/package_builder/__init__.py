"""finalize_package's services: the trainers' configs, the package's data, manifest and files."""

from tools.package_builder.checks import (
    check_dataset_files,
    check_package,
    raise_errors,
    stale_estimate,
    warning,
)
from tools.package_builder.config import PackageConfig
from tools.package_builder.destination import (
    owner_folder,
    owner_folders,
    package_destination,
    remove_package,
)
from tools.package_builder.exporters import (
    AXOLOTL_ARGS,
    AXOLOTL_SHAPING_KEYS,
    BNB_ARGS,
    PEFT_ARGS,
    TRL_ARGS,
    TRL_SHAPING_KEYS,
    AxolotlExport,
    TrlExport,
    export_axolotl,
    export_trl,
)
from tools.package_builder.inputs import (
    PackageInputs,
    ValidatedDatasets,
    deployment_choice,
    step_result,
)
from tools.package_builder.manifest import Generator
from tools.package_builder.results import PackageResult
from tools.package_builder.service import PackageRequest, build_package
from tools.package_builder.writer import sweep_leftovers

__all__ = [
    "AXOLOTL_ARGS",
    "AXOLOTL_SHAPING_KEYS",
    "BNB_ARGS",
    "PEFT_ARGS",
    "TRL_ARGS",
    "TRL_SHAPING_KEYS",
    "AxolotlExport",
    "Generator",
    "PackageConfig",
    "PackageInputs",
    "PackageRequest",
    "PackageResult",
    "TrlExport",
    "ValidatedDatasets",
    "build_package",
    "check_dataset_files",
    "check_package",
    "deployment_choice",
    "export_axolotl",
    "export_trl",
    "owner_folder",
    "owner_folders",
    "package_destination",
    "raise_errors",
    "remove_package",
    "stale_estimate",
    "step_result",
    "sweep_leftovers",
    "warning",
]
