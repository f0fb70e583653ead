"""finalize_package's services: the trainers' configs, the package's data, manifest and files."""

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

__all__ = [
    "AXOLOTL_ARGS",
    "AXOLOTL_SHAPING_KEYS",
    "BNB_ARGS",
    "PEFT_ARGS",
    "TRL_ARGS",
    "TRL_SHAPING_KEYS",
    "AxolotlExport",
    "TrlExport",
    "export_axolotl",
    "export_trl",
]
