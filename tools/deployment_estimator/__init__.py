"""Step 4: will it fit, how long will it take, what will it cost.

Its public API, each name imported from its module on first use (lazy_loader), so that
a server answers its first request without loading what only a later call needs."""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "config": ["DeploymentConfig"],
        "hardware": ["describe_catalog", "describe_hardware", "HardwareFacts"],
        "inputs": ["DraftSections"],
        "local_gpu": ["LocalHardware"],
        "results": [
            "BudgetAnswer",
            "BudgetQuestion",
            "DeploymentAnswer",
            "DeploymentEstimate",
            "DeploymentOption",
            "Suggestion",
        ],
        "service": [
            "DeploymentOutcome",
            "DeploymentRequest",
            "DeploymentStep",
            "EstimatorSetup",
            "plan_deployment",
        ],
    },
)
