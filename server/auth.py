"""Bearer-token verification for HTTP: static tokens (stored hashed) and Supabase Auth JWTs.

The token's subject owns the drafts created with it. Static tokens suit a small team (an admin
hands out tokens and keeps only their SHA-256); Supabase Auth suits an organisation whose users
already sign in there (HS256 project secret, or the project's JWKS for asymmetric keys).
"""

import hashlib
import hmac
import re
from collections.abc import Mapping
from pathlib import Path

import anyio.to_thread
import jwt
from mcp.server.auth.provider import AccessToken, TokenVerifier

from server.logging import get_logger
from tools.errors import UserError

log = get_logger(__name__)

STATIC_TOKENS_ENV = "TRAINING_PACKAGE_MCP_TOKENS"
_ENTRY = re.compile(r"^(?P<subject>[^\s:]+)\s*:\s*(?:sha256:)?(?P<digest>[0-9a-fA-F]{64})$")


def token_digest(token: str) -> str:
    """What is stored for a static token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse_static_tokens(text: str, source: str) -> dict[str, str]:
    """`subject:sha256hex` entries, one per line or comma-separated -> {digest: subject}."""
    found: dict[str, str] = {}
    for number, raw in enumerate(re.split(r"[\n,]", text), start=1):
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        match = _ENTRY.match(entry)
        if match is None:
            raise UserError(
                f"{source}, entry {number}: expected '<subject>:<sha256 hex of the token>' "
                "(make one with `training-package-mcp hash-token`)."
            )
        found[match["digest"].lower()] = match["subject"]
    return found


class StaticTokenVerifier:
    def __init__(self, digests: Mapping[str, str]):
        self._digests = dict(digests)

    async def verify_token(self, token: str) -> AccessToken | None:
        digest = token_digest(token)
        for known, subject in self._digests.items():
            if hmac.compare_digest(known, digest):
                return AccessToken(
                    token=token,
                    client_id=subject,
                    subject=subject,
                    scopes=[],
                    claims={"iss": "static"},
                )
        return None


class SupabaseJwtVerifier:
    """Supabase Auth access tokens: HS256 with the project's JWT secret, or keys from JWKS."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        secret: str | None,
        jwks_url: str | None,
        timeout_s: float,
        leeway_s: float,
    ):
        self._issuer, self._audience, self._leeway = issuer, audience, leeway_s
        self._secret = secret
        self._jwks = jwt.PyJWKClient(jwks_url, timeout=timeout_s) if jwks_url else None

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            if self._jwks is not None:
                key = await anyio.to_thread.run_sync(self._jwks.get_signing_key_from_jwt, token)
                claims = self._decode(token, key.key, ["RS256", "ES256", "EdDSA"])
            elif self._secret is not None:
                claims = self._decode(token, self._secret, ["HS256"])
            else:
                return None
        except jwt.PyJWTError as exc:
            log.info("auth.rejected", reason=type(exc).__name__)
            return None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            return None
        # The SDK refuses a token past expires_at itself: tell it the expiry the leeway allows.
        return AccessToken(
            token=token,
            client_id=subject,
            subject=subject,
            scopes=str(claims.get("scope", "")).split(),
            expires_at=int(claims["exp"] + self._leeway),
            claims={"iss": claims.get("iss"), "role": claims.get("role")},
        )

    def _decode(self, token: str, key: object, algorithms: list[str]) -> dict:
        return jwt.decode(
            token,
            key,
            algorithms=algorithms,
            audience=self._audience,
            issuer=self._issuer,
            leeway=self._leeway,
            options={"require": ["exp", "sub"]},
        )


class AnyOfVerifiers:
    """Accept a token any of the configured verifiers accepts, in order."""

    def __init__(self, verifiers: list[TokenVerifier]):
        self._verifiers = verifiers

    async def verify_token(self, token: str) -> AccessToken | None:
        for verifier in self._verifiers:
            if (access := await verifier.verify_token(token)) is not None:
                return access
        return None


def load_static_tokens(file: Path | None, env: Mapping[str, str]) -> dict[str, str]:
    digests: dict[str, str] = {}
    if file is not None:
        try:
            text = file.expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(f"Cannot read the static tokens file {file}: {exc}") from exc
        digests |= parse_static_tokens(text, str(file))
    if env.get(STATIC_TOKENS_ENV):
        digests |= parse_static_tokens(env[STATIC_TOKENS_ENV], STATIC_TOKENS_ENV)
    return digests
