"""requirements.txt of a package: the trainer versions its train.py was proven with."""

from tools.package_builder.config import RequirementsConfig


def render_requirements(config: RequirementsConfig, qlora: bool) -> str:
    lines = [*config.common, *(config.qlora if qlora else [])]
    return "\n".join(lines) + "\n"
