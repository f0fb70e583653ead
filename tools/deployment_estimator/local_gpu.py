"""The user's own GPU: from configs/deployment.yaml `local`, or detected with nvidia-smi.

Detection is blocking (a subprocess, bounded by a timeout); the server runs it in a worker thread
once and keeps the answer.
"""

import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass

from tools.deployment_estimator.catalog import LOCAL, Target
from tools.deployment_estimator.config import DeploymentConfig
from tools.deployment_estimator.gpu_names import match_gpu

NVIDIA_SMI_QUERY = ["--query-gpu=name,memory.total", "--format=csv,noheader,nounits"]


@dataclass(frozen=True)
class LocalHardware:
    """The local target (None when there is none to offer) and what to tell the user about it."""

    target: Target | None
    note: str


def parse_nvidia_smi(output: str) -> list[str]:
    """GPU names from `nvidia-smi --query-gpu=name,memory.total --format=csv,noheader`."""
    names = []
    for line in output.splitlines():
        name = line.split(",")[0].strip()
        if name:
            names.append(name)
    return names


def query_nvidia_smi(timeout_s: float) -> list[str]:
    """The names of this machine's NVIDIA GPUs; empty without nvidia-smi or when it fails."""
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return []
    try:
        completed = subprocess.run(
            [executable, *NVIDIA_SMI_QUERY],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=True,
        )
    except (subprocess.SubprocessError, OSError):
        return []
    return parse_nvidia_smi(completed.stdout)


def local_hardware(config: DeploymentConfig, detected: list[str]) -> LocalHardware:
    """The local target from the configured GPU, else from the detected names.

    With several detected GPUs the most common model is used, with its count (data parallel).
    """
    local = config.local
    if local.gpu is not None:
        target = Target(id=LOCAL, kind="local", gpu=local.gpu, gpu_count=local.gpu_count)
        return LocalHardware(target, f"local GPU from the config: {local.gpu_count}x {local.gpu}")
    if not detected:
        return LocalHardware(
            None, "no local GPU: none configured (local.gpu) and nvidia-smi found none"
        )
    name, count = Counter(detected).most_common(1)[0]
    gpu = match_gpu(name, config.gpus)
    if gpu is None:
        return LocalHardware(
            None,
            f"local GPU '{name}' is not in the catalog; add it to configs/deployment.yaml `gpus` "
            "to compare it",
        )
    target = Target(id=LOCAL, kind="local", gpu=gpu, gpu_count=count)
    return LocalHardware(target, f"local GPU detected by nvidia-smi: {count}x {name}")
