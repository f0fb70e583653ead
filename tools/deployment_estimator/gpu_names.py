"""GPU names as people and tools write them ("NVIDIA GeForce RTX-4090", "a100") matched to the
catalog's keys: shared by the targets a caller names and by configs/deployment.yaml's local.gpu."""

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tools.deployment_estimator.config import Gpu

LOCAL = "local"  # the hardware id of the user's own machine
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


def read_gpu_name(
    name: str, gpus: Mapping[str, "Gpu"], flavors: Iterable[str]
) -> tuple[str | None, list[str]]:
    """The catalog key `name` denotes as estimate_deployment reads a GPU name, and the hardware
    ids (local, `flavors`, the GPUs' keys) it is a near miss of, closest first.

    A name with words beyond a GPU's (nvidia-smi's 'Workstation Edition', a form factor) names
    that GPU, unless it is a near miss of a known id: then it is a typo ('a100-larg') or another
    card ('RTX 4090 D'), and only an exact key or alias counts.
    """
    known = [LOCAL, *flavors, *gpus]
    close = difflib.get_close_matches(
        name.strip().lower(), [k.lower() for k in known], n=3, cutoff=0.75
    )
    return match_gpu(name, gpus, exact=bool(close)), close
