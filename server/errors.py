"""Adapt the services' UserError to MCP errors, so users read messages and never tracebacks.

Every tool call is logged under its tool and its caller, its arguments are checked first
(server.arguments), and anything unexpected becomes a short message with an incident id that
the server log holds the traceback for: never an empty "Error executing tool", never the input.
Every tool goes through tool_errors, so it is also where a tool's model becomes its compact
result (server.results).
"""

import functools
import inspect
import secrets
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import structlog
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult

from server.arguments import check_arguments
from server.logging import get_logger
from server.results import compact
from server.state import app_state, caller
from tools.errors import NotFoundError, UserError

P = ParamSpec("P")
R = TypeVar("R")
INCIDENT_BYTES = 4

log = get_logger(__name__)


def tool_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R | CallToolResult]]:
    """Check the arguments, then run the tool; a UserError becomes a tool error (is_error=True)
    the assistant can explain, any other exception one that names an incident. A returned model
    goes back compact (server.results); the SDK still derives the output schema from `fn`'s
    declared return type, since the wrapper's signature is `fn`'s."""
    tool = fn.__name__.removesuffix("_tool")
    context = next(
        name for name, p in inspect.signature(fn).parameters.items() if p.annotation is Context
    )

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | CallToolResult:
        ctx = kwargs[context]
        assert isinstance(ctx, Context)
        state = app_state(ctx)
        with structlog.contextvars.bound_contextvars(tool=tool, subject=caller(ctx)):
            try:
                check_arguments(
                    {k: v for k, v in kwargs.items() if k != context},
                    state.settings.server.limits.max_argument_chars,
                )
                return compact(await fn(*args, **kwargs))
            except UserError as exc:
                log.info("tool.refused", error=type(exc).__name__)
                raise ToolError(str(exc)) from exc
            except (ToolError, MCPError):
                raise
            except Exception as exc:
                incident = secrets.token_hex(INCIDENT_BYTES)
                log.error("tool.failed", incident=incident, error=type(exc).__name__, exc_info=exc)
                raise ToolError(
                    f"The server failed on this request (incident {incident}). Try again; if it "
                    "keeps failing, tell the server's operator the incident id."
                ) from exc

    return wrapper


def resource_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Relay NotFoundError as 'resource not found' and any other UserError as a resource error."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except NotFoundError as exc:
            raise ResourceNotFoundError(str(exc)) from exc
        except UserError as exc:
            raise ResourceError(str(exc)) from exc

    return wrapper
