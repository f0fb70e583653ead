"""The base every configuration model derives from.

Configuration is strict: an unknown key is a typo until proven otherwise, so it fails at
start-up instead of silently doing nothing.
"""

from pydantic import BaseModel, ConfigDict


class ConfigModel(BaseModel):
    """Frozen, extra keys forbidden: what a YAML config section is loaded into."""

    model_config = ConfigDict(extra="forbid", frozen=True)
