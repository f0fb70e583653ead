"""requirements.txt of a package: the trainer versions its train.py was proven with."""

from tools.package_builder.config import RequirementsConfig
from tools.package_builder.exporters import TrlExport

# transformers' optimizer names that come from bitsandbytes (OptimizerNames: adamw_8bit,
# adamw_bnb_8bit, paged_adamw_32bit, lion_8bit, ...), as train.py recognises them.
BITSANDBYTES_OPTIMIZER_MARKS = ("8bit", "bnb", "paged_")


def render_requirements(config: RequirementsConfig, trl: TrlExport) -> str:
    """The common pins, and bitsandbytes' when the run loads a 4-bit base or its optimizer is
    one of bitsandbytes' (an 8-bit or paged AdamW)."""
    optimizer = str(trl.args.get("optim", ""))
    bnb = trl.quantization_config is not None or any(
        mark in optimizer for mark in BITSANDBYTES_OPTIMIZER_MARKS
    )
    lines = [*config.common, *(config.qlora if bnb else [])]
    return "\n".join(lines) + "\n"
