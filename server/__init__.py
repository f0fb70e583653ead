"""The MCP surface of training-package-mcp: wiring, settings, logging, drafts, CLI."""

from importlib.metadata import PackageNotFoundError, version

APP_NAME = "training-package-mcp"

try:
    __version__ = version(APP_NAME)
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
