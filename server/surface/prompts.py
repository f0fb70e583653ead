"""The training_wizard prompt: teaches the assistant the flow; its text lives in prompts/."""

from typing import Annotated

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from server.paths import shipped_dir


def register(mcp: MCPServer) -> None:
    text = (shipped_dir("prompts") / "training_wizard.md").read_text(encoding="utf-8")

    @mcp.prompt(
        title="Training package wizard",
        description="Lead the user from a fine-tuning goal to a finished training package.",
    )
    def training_wizard(
        goal: Annotated[
            str | None, Field(description="What the user wants the model to do.")
        ] = None,
        budget_usd: Annotated[
            float | None, Field(description="The most the user wants to spend on training.")
        ] = None,
    ) -> str:
        context = []
        if goal:
            context.append(f"The user's goal: {goal.strip()}")
        if budget_usd is not None:
            context.append(
                f"The user's budget: {budget_usd:.2f} USD; pass it to estimate_deployment."
            )
        return "\n\n".join([text.strip(), *context])
