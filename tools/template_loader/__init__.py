"""Step 2: turn the user's intent into a training configuration known to be sane.

Its public API, each name imported from its module on first use (lazy_loader), so that
a server answers its first request without loading what only a later call needs."""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "config": ["TemplatesConfig"],
        "derived": ["Derived"],
        "facts": ["CrossStepFacts", "ModelFacts", "TargetFacts"],
        "issues": ["ConfigIssue"],
        "keys": ["Value"],
        "results": ["TemplateCatalog", "TemplateResult"],
        "rules": ["Provenance"],
        "service": [
            "apply_template",
            "carried_overrides",
            "describe_templates",
            "merge_overrides",
        ],
    },
)
