"""finalize_package's services: the trainers' configs, the package's data, manifest and files.

Its public API, each name imported from its module on first use (lazy_loader), so that
a server answers its first request without loading what only a later call needs."""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "checks": [
            "check_dataset_files",
            "check_package",
            "raise_errors",
            "warning",
        ],
        "config": ["PackageConfig"],
        "destination": ["owner_folder", "owner_folders", "package_destination", "remove_package"],
        "exporters": [
            "AXOLOTL_ARGS",
            "AXOLOTL_SHAPING_KEYS",
            "AxolotlExport",
            "BNB_ARGS",
            "export_axolotl",
            "export_trl",
            "PEFT_ARGS",
            "TRL_ARGS",
            "TRL_SHAPING_KEYS",
            "TrlExport",
        ],
        "inputs": ["deployment_choice", "PackageInputs", "step_result", "ValidatedDatasets"],
        "manifest": ["Generator"],
        "results": ["PackageResult"],
        "service": ["build_package", "PackageRequest"],
        "writer": ["refuse_destination", "sweep_leftovers"],
    },
)
