"""Step 4: will it fit, how long will it take, what will it cost."""

from tools.deployment_estimator.config import DeploymentConfig
from tools.deployment_estimator.hardware import (
    HardwareFacts,
    describe_catalog,
    describe_hardware,
)
from tools.deployment_estimator.inputs import DraftSections
from tools.deployment_estimator.local_gpu import LocalHardware
from tools.deployment_estimator.results import (
    DeploymentAnswer,
    DeploymentEstimate,
    DeploymentOption,
)
from tools.deployment_estimator.service import (
    BudgetAnswer,
    DeploymentOutcome,
    DeploymentRequest,
    plan_deployment,
)

__all__ = [
    "BudgetAnswer",
    "DeploymentAnswer",
    "DeploymentConfig",
    "DeploymentEstimate",
    "DeploymentOption",
    "DeploymentOutcome",
    "DeploymentRequest",
    "DraftSections",
    "HardwareFacts",
    "LocalHardware",
    "describe_catalog",
    "describe_hardware",
    "plan_deployment",
]
