"""Adapt the services' UserError to MCP errors, so users read messages and never tracebacks."""

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError

from tools.errors import NotFoundError, UserError

P = ParamSpec("P")
R = TypeVar("R")


def tool_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Relay a UserError as a tool error (is_error=True) the assistant can explain."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except UserError as exc:
            raise ToolError(str(exc)) from exc

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
