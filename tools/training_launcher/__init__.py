"""launch_training, training_status and cancel_training's services: a finalized package run on
Hugging Face Jobs or on this machine, followed through train.py's JSON lines, and the
calibration log of estimates against actual runs.

Its public API, each name imported from its module on first use (lazy_loader)."""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "calibration": ["CalibrationRow"],
        "config": ["LaunchConfig"],
        "package_facts": ["PackageFacts", "read_package"],
        "records": [
            "LaunchRecord",
            "Progress",
            "RUN_KEY_ENV",
            "RunStatus",
            "UNTRUSTED_LOG_NOTICE",
        ],
        "service": [
            "HubPlan",
            "calibration_row",
            "cancel_run",
            "hub_status",
            "launch_locally",
            "launch_on_hub",
            "local_python",
            "local_status",
            "plan_hub_launch",
            "resumable",
            "timeout_hours",
        ],
    },
)
