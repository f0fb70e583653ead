"""Step 1: find and pick a base model on the Hugging Face Hub.

Its public API, each name imported from its module on first use (lazy_loader), so that
a server answers its first request without loading what only a later call needs."""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "config": ["Architecture", "ModelsConfig"],
        "results": ["ModelDetails", "ModelSummary", "SearchResult"],
        "service": ["ModelBrowser", "SearchRequest"],
    },
)
