"""Step 3: stream-validate training data from local files, Supabase and the Hub.

Its public API, each name imported from its module on first use (lazy_loader), so that
a server answers its first request without loading what only a later call needs."""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "config": ["DatasetsConfig"],
        "hub": ["HubAccess"],
        "kinds": ["Conversion"],
        "listing": ["list_datasets"],
        "results": ["DatasetEntry", "DatasetListing", "FIXES", "ListingSource", "ValidationReport"],
        "roots": ["allowed_roots"],
        "scan": ["ScanHooks"],
        "fit": ["TemplateFit"],
        "service": ["judge_again", "validate_datasets", "ValidationRequest"],
        "sources": ["Sources"],
        "supabase_catalog": ["SupabaseAccess"],
    },
)
