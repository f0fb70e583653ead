"""GPU names as people and tools write them ("NVIDIA GeForce RTX-4090", "a100") matched to the
catalog's keys: shared by the targets a caller names and by configs/deployment.yaml's local.gpu."""

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tools.deployment_estimator.config import Gpu

_VENDOR_WORDS = {"nvidia", "geforce", "tesla"}


def normalise(name: str) -> str:
    """'NVIDIA GeForce RTX-4090' -> 'rtx 4090': lower case, one space between words."""
    words = re.split(r"[\s_\-/]+", name.lower().strip())
    return " ".join(w for w in words if w and w not in _VENDOR_WORDS)


def match_gpu(name: str, gpus: Mapping[str, "Gpu"], *, exact: bool = False) -> str | None:
    """The catalog key of the GPU `name` denotes, or None.

    An exact key or alias wins; unless `exact`, so does the longest alias found as whole words
    inside the name (nvidia-smi adds words such as 'Workstation Edition' or a form factor).
    """
    wanted = normalise(name)
    best: tuple[int, str] | None = None
    for key, gpu in gpus.items():
        for alias in (key, *gpu.aliases):
            candidate = normalise(alias)
            if candidate == wanted:
                return key
            if re.search(rf"(^| ){re.escape(candidate)}( |$)", wanted) and (
                best is None or len(candidate) > best[0]
            ):
                best = (len(candidate), key)
    return best[1] if best and not exact else None
