"""Tool results serialized once: the structured content, and that JSON as the text block.

The SDK renders a result's text block as indented JSON of the returned value, then dumps the
structured content apart from it. Clients that read only text are better served by the same JSON
without the indentation (about a third fewer bytes and tokens), and the server by one walk of
the result instead of two.
"""

from typing import Any

import orjson
from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata
from mcp.types import CallToolResult, InputRequiredResult, TextContent
from pydantic import BaseModel


class CompactResults(FuncMetadata):
    """FuncMetadata whose structured results carry their compact JSON as the one text block."""

    @classmethod
    def of(cls, metadata: FuncMetadata) -> "CompactResults":
        return cls(
            arg_model=metadata.arg_model,
            output_schema=metadata.output_schema,
            output_model=metadata.output_model,
            wrap_output=metadata.wrap_output,
        )

    def convert_result(self, result: Any) -> CallToolResult | InputRequiredResult:
        """The SDK's conversion (same validation, same structured content), minus its text."""
        if (
            self.output_schema is None
            or self.output_model is None
            or isinstance(result, CallToolResult | InputRequiredResult)
        ):
            return super().convert_result(result)
        model = self.output_model
        if isinstance(model, type) and issubclass(model, BaseModel) and isinstance(result, model):
            # Validated when it was built: the SDK's adapter would pass it through unchanged
            # (pydantic does not revalidate instances). A returned subclass keeps its fields.
            structured = result.model_dump(mode="json", by_alias=True)
        else:
            adapter = self._output_adapter(self.output_model)
            value = {"result": result} if self.wrap_output else result
            validated = adapter.validate_python(value, by_alias=True, by_name=True)
            structured = (
                validated.model_dump(mode="json", by_alias=True)
                if isinstance(validated, BaseModel)
                else adapter.dump_python(validated, mode="json", by_alias=True)
            )
        text = orjson.dumps(structured).decode()
        return CallToolResult(
            content=[TextContent(type="text", text=text)], structured_content=structured
        )
