"""Tool results whose text block is the compact JSON of their structured content.

The SDK renders a returned model's text block as indented JSON. Clients that read only text
(Claude Code among them) are better served by the same JSON without the indentation: about a
third fewer bytes on the wire and tokens in the model's context.

A tool that returns a CallToolResult gets it passed through as it is, after its structured
content is validated against the output schema of the tool's declared return type (the SDK's
documented tool return handling), so every tool keeps declaring, and building, its pydantic
model, and server.errors.tool_errors, which every tool goes through, hands the SDK `compact` of
it.
"""

from typing import Any

import orjson
from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel


def compact(result: Any) -> Any:
    """A model as a CallToolResult: its JSON as structured content and, compact, as the text
    block; anything else as it is, for the SDK to convert."""
    if not isinstance(result, BaseModel):
        return result
    structured = result.model_dump(mode="json", by_alias=True)
    return CallToolResult(
        content=[TextContent(type="text", text=orjson.dumps(structured).decode())],
        structured_content=structured,
    )
