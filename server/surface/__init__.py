"""The MCP surface, one module per concern; each registers its tools and resources."""

from typing import Any

from mcp.server.elicitation import AcceptedElicitation

# The SDK wraps each resolver's plain answer in AcceptedElicitation[Any]. Pydantic caches a
# parametrised generic class only weakly, so without this reference the class is collected
# between calls and rebuilt (about 1 ms) on most calls of a tool with a Resolve parameter.
_ACCEPTED_ANSWER = AcceptedElicitation[Any]
