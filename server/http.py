"""Streamable HTTP serving: auth, DNS-rebinding protection, body limits, /healthz, replicas.

Stateless by default, so a load balancer may send each request to any replica: drafts live in
the shared store and nothing else outlives a request but caches. Without auth the server only
binds to loopback, where the one user is the machine's user.
"""

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass

from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse

from server import __version__
from server.auth import (
    AnyOfVerifiers,
    StaticTokenVerifier,
    SupabaseJwtVerifier,
    load_static_tokens,
)
from server.settings import Secrets, Settings
from tools.errors import UserError

LOOPBACK_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
LOOPBACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]


@dataclass(frozen=True)
class HttpAuth:
    verifier: TokenVerifier
    settings: AuthSettings


def http_auth(
    settings: Settings, secrets: Secrets, public_url: str, env: Mapping[str, str] = os.environ
) -> HttpAuth | None:
    """The configured bearer-token verifiers, or None when no auth is configured."""
    config = settings.server.auth
    verifiers: list[TokenVerifier] = []
    if digests := load_static_tokens(config.static_tokens_file, env):
        verifiers.append(StaticTokenVerifier(digests))
    issuer = None
    if config.supabase.enabled:
        issuer = config.supabase.issuer or (
            f"{secrets.supabase_url.rstrip('/')}/auth/v1" if secrets.supabase_url else None
        )
        secret = secrets.supabase_jwt_secret
        if issuer is None or (secret is None and config.supabase.jwks_url is None):
            raise UserError(
                "auth.supabase is enabled but incomplete: set SUPABASE_URL (or "
                "auth.supabase.issuer) and SUPABASE_JWT_SECRET (or auth.supabase.jwks_url)."
            )
        verifiers.append(
            SupabaseJwtVerifier(
                issuer=issuer,
                audience=config.supabase.audience,
                secret=secret.get_secret_value() if secret else None,
                jwks_url=config.supabase.jwks_url,
                timeout_s=config.supabase.timeout_s,
                leeway_s=config.supabase.leeway_s,
            )
        )
    if not verifiers:
        return None
    resource = config.resource_server_url or public_url
    return HttpAuth(
        verifier=AnyOfVerifiers(verifiers),
        settings=AuthSettings(issuer_url=issuer or resource, resource_server_url=resource),
    )


def http_app(mcp: MCPServer, settings: Settings, host: str) -> Starlette:
    http = settings.server.transport.http

    @mcp.custom_route("/healthz", methods=["GET"], include_in_schema=False)
    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "version": __version__})

    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[*LOOPBACK_HOSTS, *http.allowed_hosts],
        allowed_origins=[*LOOPBACK_ORIGINS, *http.allowed_origins],
    )
    return mcp.streamable_http_app(
        streamable_http_path=http.path,
        stateless_http=http.stateless,
        max_request_body_size=http.max_request_bytes,
        transport_security=security,
        host=host,
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
