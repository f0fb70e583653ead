"""Step 1: find and pick a base model on the Hugging Face Hub."""

from tools.model_browser.config import (
    Architecture,
    ModelsConfig,
)
from tools.model_browser.results import (
    ModelDetails,
    ModelSummary,
    SearchResult,
)
from tools.model_browser.service import (
    ModelBrowser,
    SearchRequest,
)

__all__ = [
    "Architecture",
    "ModelBrowser",
    "ModelDetails",
    "ModelSummary",
    "ModelsConfig",
    "SearchRequest",
    "SearchResult",
]
