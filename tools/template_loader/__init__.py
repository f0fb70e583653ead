"""Step 2: turn the user's intent into a training configuration known to be sane."""

from tools.template_loader.config import TemplatesConfig
from tools.template_loader.facts import (
    CrossStepFacts,
    ModelFacts,
    TargetFacts,
)
from tools.template_loader.issues import ConfigIssue
from tools.template_loader.results import (
    TemplateCatalog,
    TemplateResult,
)
from tools.template_loader.service import (
    apply_template,
    describe_templates,
    merge_overrides,
)

__all__ = [
    "ConfigIssue",
    "CrossStepFacts",
    "ModelFacts",
    "TargetFacts",
    "TemplateCatalog",
    "TemplateResult",
    "TemplatesConfig",
    "apply_template",
    "describe_templates",
    "merge_overrides",
]
