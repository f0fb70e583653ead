"""Where training can run: the user's GPU, Hugging Face flavors, or any catalogued GPU by name.

Targets are named by hardware id (`local`, `a100-large`, ...) or by GPU name as people and tools
write it ("RTX 4090", "NVIDIA A100-SXM4-80GB", "a100"); names are matched against each GPU's key
and aliases after normalising case, separators and vendor words.
"""

from dataclasses import dataclass
from typing import Literal

from tools.deployment_estimator.config import DeploymentConfig, Flavor, Gpu
from tools.deployment_estimator.gpu_names import LOCAL, read_gpu_name
from tools.errors import UserError


@dataclass(frozen=True)
class Target:
    """One place to train: `kind` local (the user's machine, by detection or config), own (a GPU
    the user names, paid in electricity) or cloud (a Hugging Face flavor, paid per minute)."""

    id: str
    kind: Literal["local", "own", "cloud"]
    gpu: str
    gpu_count: int
    usd_per_hour: float | None = None
    jobs_only: bool = False

    def describe(self, gpu: Gpu) -> str:
        count = f"{self.gpu_count}x " if self.gpu_count > 1 else ""
        card = f"{count}{self.gpu} ({gpu.memory_gb:g} GB)"
        if self.kind == "cloud":
            where = "HF Jobs" if self.jobs_only else "HF Spaces/Jobs"
            return f"{card}, {where} {self.id} at ${self.usd_per_hour:.2f}/h"
        return f"{card}, your machine" if self.kind == "local" else f"{card}, your own GPU"


def flavor_target(flavor_id: str, flavor: Flavor) -> Target:
    return Target(
        id=flavor_id,
        kind="cloud",
        gpu=flavor.gpu,
        gpu_count=flavor.gpu_count,
        usd_per_hour=flavor.usd_per_hour,
        jobs_only=flavor.jobs_only,
    )


def resolve_targets(
    names: list[str] | None, config: DeploymentConfig, local: Target | None
) -> list[Target]:
    """The targets `names` denote; None means the local machine (when known) and every flavor.

    UserError for a name that is neither `local`, a flavor id nor a catalogued GPU, with the
    closest known names.
    """
    if not names:
        flavors = [flavor_target(i, f) for i, f in config.flavors.items()]
        return ([local] if local else []) + flavors
    targets: list[Target] = []
    for name in names:
        target = _resolve_one(name, config, local)
        if target.id not in {t.id for t in targets}:
            targets.append(target)
    return targets


def _resolve_one(name: str, config: DeploymentConfig, local: Target | None) -> Target:
    key = name.strip().lower()
    if key == LOCAL:
        if local is None:
            raise UserError(
                "No local GPU is configured or detected (nvidia-smi found none). Name your GPU "
                "instead, e.g. 'RTX 4090', or set local.gpu in configs/deployment.yaml."
            )
        return local
    if key in config.flavors:
        return flavor_target(key, config.flavors[key])
    gpu, close = read_gpu_name(name, config.gpus, config.flavors)
    if gpu is not None:
        return Target(id=gpu, kind="own", gpu=gpu, gpu_count=1)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise UserError(
        f"Unknown hardware '{name}'.{hint} Use 'local', a Hugging Face flavor "
        f"({', '.join(config.flavors)}) or a GPU name ({', '.join(config.gpus)})."
    )
