"""Token verification: static tokens stored hashed, Supabase Auth JWTs by secret or JWKS."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from server.auth import (
    AnyOfVerifiers,
    StaticTokenVerifier,
    SupabaseJwtVerifier,
    load_static_tokens,
    parse_static_tokens,
    token_digest,
)
from tools.errors import UserError

ISSUER = "https://project.supabase.co/auth/v1"
SECRET = "super-secret-jwt-key-with-at-least-32-bytes!"


def claims(**overrides: object) -> dict:
    return {
        "sub": "user-123",
        "aud": "authenticated",
        "iss": ISSUER,
        "role": "authenticated",
        "exp": int(time.time()) + 600,
        **overrides,
    }


def hs256(secret: str = SECRET) -> SupabaseJwtVerifier:
    return SupabaseJwtVerifier(
        issuer=ISSUER,
        audience="authenticated",
        secret=secret,
        jwks_url=None,
        timeout_s=5,
        leeway_s=0,
    )


def test_static_token_entries_parse_and_reject_garbage() -> None:
    digest = token_digest("t0ken")
    parsed = parse_static_tokens(f"# team\nalice:{digest}\n bob : sha256:{digest.upper()} ", "f")
    assert parsed == {digest: "bob"}  # same digest: the later entry wins
    with pytest.raises(UserError, match="entry 1: expected '<subject>:<sha256"):
        parse_static_tokens("alice:plaintext-token", "TRAINING_PACKAGE_MCP_TOKENS")


def test_static_tokens_from_file_and_environment(tmp_path: Path) -> None:
    file = tmp_path / "tokens"
    file.write_text(f"alice:{token_digest('a')}\n")
    env = {"TRAINING_PACKAGE_MCP_TOKENS": f"bob:{token_digest('b')}"}
    assert set(load_static_tokens(file, env).values()) == {"alice", "bob"}
    with pytest.raises(UserError, match="Cannot read the static tokens file"):
        load_static_tokens(tmp_path / "missing", {})


async def test_static_verifier_maps_a_token_to_its_subject() -> None:
    verifier = StaticTokenVerifier({token_digest("alice-token"): "alice"})
    access = await verifier.verify_token("alice-token")
    assert access is not None and access.subject == "alice" and access.client_id == "alice"
    assert await verifier.verify_token("alice-token ") is None


async def test_supabase_hs256_token() -> None:
    access = await hs256().verify_token(jwt.encode(claims(), SECRET, algorithm="HS256"))
    assert access is not None and access.subject == "user-123"
    assert access.claims["role"] == "authenticated"


@pytest.mark.parametrize(
    "token",
    [
        jwt.encode(claims(exp=int(time.time()) - 60), SECRET, algorithm="HS256"),  # expired
        jwt.encode(claims(aud="anon"), SECRET, algorithm="HS256"),  # wrong audience
        jwt.encode(claims(iss="https://other.supabase.co/auth/v1"), SECRET, algorithm="HS256"),
        jwt.encode(claims(), "another-secret-that-is-also-32-bytes-long", algorithm="HS256"),
        jwt.encode({k: v for k, v in claims().items() if k != "sub"}, SECRET, algorithm="HS256"),
        "not.a.jwt",
    ],
    ids=["expired", "audience", "issuer", "signature", "no-subject", "garbage"],
)
async def test_supabase_rejects_bad_tokens(token: str) -> None:
    assert await hs256().verify_token(token) is None


async def test_supabase_jwks_rs256() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]}).encode()

    class Jwks(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/auth/v1/.well-known/jwks.json"
        verifier = SupabaseJwtVerifier(
            issuer=ISSUER,
            audience="authenticated",
            secret=None,
            jwks_url=url,
            timeout_s=5,
            leeway_s=0,
        )
        token = jwt.encode(claims(), key, algorithm="RS256", headers={"kid": "k1"})
        access = await verifier.verify_token(token)
        assert access is not None and access.subject == "user-123"
        forged = jwt.encode(claims(), SECRET, algorithm="HS256", headers={"kid": "k1"})
        assert await verifier.verify_token(forged) is None  # no algorithm confusion
    finally:
        server.shutdown()
        server.server_close()


async def test_any_of_verifiers_tries_each() -> None:
    verifier = AnyOfVerifiers([StaticTokenVerifier({token_digest("s"): "svc"}), hs256()])
    assert (await verifier.verify_token("s")).subject == "svc"
    jwt_token = jwt.encode(claims(), SECRET, algorithm="HS256")
    assert (await verifier.verify_token(jwt_token)).subject == "user-123"
    assert await verifier.verify_token("neither") is None
