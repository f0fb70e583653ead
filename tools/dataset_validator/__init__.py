"""Step 3: stream-validate training data from local files, Supabase and the Hub."""

from tools.dataset_validator.config import DatasetsConfig
from tools.dataset_validator.hub import HubAccess
from tools.dataset_validator.listing import (
    DatasetListing,
    ListingSource,
    list_datasets,
)
from tools.dataset_validator.results import (
    FIXES,
    ValidationReport,
)
from tools.dataset_validator.roots import allowed_roots
from tools.dataset_validator.scan import ScanHooks
from tools.dataset_validator.service import (
    ValidationRequest,
    validate_datasets,
)
from tools.dataset_validator.sources import Sources
from tools.dataset_validator.supabase_catalog import SupabaseAccess

__all__ = [
    "FIXES",
    "DatasetListing",
    "DatasetsConfig",
    "HubAccess",
    "ListingSource",
    "ScanHooks",
    "Sources",
    "SupabaseAccess",
    "ValidationReport",
    "ValidationRequest",
    "allowed_roots",
    "list_datasets",
    "validate_datasets",
]
