"""The package.yaml `hub` section: the private Hub repo a package's train.py pushes its
checkpoints and its trained model to, and how often it saves."""

from pydantic import BaseModel, Field

from tools.package_builder.config import HubConfig
from tools.package_builder.destination import default_name


class HubEntry(BaseModel):
    model_repo: str = Field(
        description="Repo name in the Hub token owner's account, or owner/name as given."
    )
    private: bool = Field(description="The repo is created private (it holds the user's model).")
    save_steps: int = Field(description="A checkpoint, saved and pushed, every this many steps.")
    keep_checkpoints: int = Field(description="Checkpoints kept on disk, the newest.")


def hub_entry(title: str, draft_id: str, hub: HubConfig) -> HubEntry:
    """<title slug>-<draft id>: readable, and never shared by two drafts; the slug is cut so
    the name stays within the Hub's limit."""
    slug_chars = max(hub.repo_name_max_chars - len(draft_id) - 1, 0)
    name = default_name(title, draft_id, slug_chars)
    return HubEntry(
        model_repo=name,
        private=True,
        save_steps=hub.save_steps,
        keep_checkpoints=hub.keep_checkpoints,
    )
