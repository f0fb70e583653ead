"""A local HTTP server that answers the Supabase requests the dataset catalog makes.

PostgREST (`/rest/v1/<table>` with select, eq, ilike inside or=(...), order, limit) and Storage
(signed URLs and signed downloads), with the bodies and status codes the real services send:
401 {"message": "Invalid API key"} from the gateway, PGRST205 for an unknown table, 42703 for an
unknown column, Storage's {"statusCode": "404", "error": "not_found"} for a missing object.
The real supabase client runs against it, over real HTTP.
"""

import json
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from fnmatch import fnmatchcase
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

INVALID_KEY = {
    "message": "Invalid API key",
    "hint": "Double check your Supabase `anon` or `service_role` API key.",
}


class FakeSupabase:
    """State behind the handler; tests configure it directly."""

    def __init__(self, key: str, table: str = "datasets", bucket: str = "datasets") -> None:
        self.key, self.table, self.bucket = key, table, bucket
        self.rows: list[dict[str, Any]] = []
        self.objects: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()

    def add(self, row: dict[str, Any], data: bytes | None = None) -> None:
        """A catalog row, and (when given) the object its storage_path names."""
        self.rows.append(row)
        if data is not None:
            self.objects[row["storage_path"]] = data

    def sign(self, path: str) -> str:
        token = secrets.token_urlsafe(16)
        with self._lock:
            self._tokens[token] = path
        return token

    def signed_path(self, token: str) -> str | None:
        with self._lock:
            return self._tokens.get(token)


def _matches(row: dict[str, Any], condition: str) -> bool:
    """One PostgREST condition, `column.op.value`, for the operators the catalog uses."""
    column, op, value = condition.split(".", 2)
    cell = row.get(column)
    if op == "eq":
        return str(cell) == value.strip('"')
    if op == "ilike":
        return cell is not None and fnmatchcase(str(cell).lower(), value.lower().strip('"'))
    raise ValueError(f"operator {op} is not faked")


class _Handler(BaseHTTPRequestHandler):
    fake: FakeSupabase

    def log_message(self, *_: Any) -> None:
        return

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def _route(self) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        self.fake.requests.append((self.command, self.path))
        sign_prefix = f"/storage/v1/object/sign/{self.fake.bucket}/"
        if self.command == "GET" and path.startswith(sign_prefix):
            self._signed_download(path.removeprefix(sign_prefix), parse_qs(url.query))
            return
        if self.headers.get("apikey") != self.fake.key:
            self._json(401, INVALID_KEY)
            return
        if path.startswith("/rest/v1/"):
            self._select(path.removeprefix("/rest/v1/"), parse_qs(url.query))
        elif self.command == "POST" and path.startswith("/storage/v1/object/sign/"):
            self._sign(path.removeprefix("/storage/v1/object/sign/"))
        else:
            self._json(404, {"message": "no route"})

    def _select(self, table: str, query: dict[str, list[str]]) -> None:
        if table != self.fake.table:
            self._json(
                404,
                {
                    "code": "PGRST205",
                    "details": None,
                    "hint": None,
                    "message": f"Could not find the table 'public.{table}' in the schema cache",
                },
            )
            return
        columns = query.get("select", ["*"])[0].split(",")
        known = set().union(*(row.keys() for row in self.fake.rows)) if self.fake.rows else set()
        unknown = [c for c in columns if c != "*" and known and c not in known]
        if unknown:
            self._json(
                400,
                {
                    "code": "42703",
                    "details": None,
                    "hint": None,
                    "message": f"column {table}.{unknown[0]} does not exist",
                },
            )
            return
        rows = list(self.fake.rows)
        for name, values in query.items():
            if name in ("select", "order", "limit", "offset"):
                continue
            for value in values:
                if name == "or":
                    alternatives = re.findall(r"[^,()]+", value)
                    rows = [r for r in rows if any(_matches(r, a) for a in alternatives)]
                else:
                    rows = [r for r in rows if _matches(r, f"{name}.{value}")]
        if "order" in query:
            column = query["order"][0].split(".")[0]
            rows.sort(key=lambda r: str(r.get(column)))
        if "limit" in query:
            rows = rows[: int(query["limit"][0])]
        picked = [{c: r.get(c) for c in columns} if columns != ["*"] else r for r in rows]
        self._json(200, picked, {"Content-Range": f"0-{max(len(picked) - 1, 0)}/*"})

    def _sign(self, rest: str) -> None:
        bucket, _, key = rest.partition("/")
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if bucket != self.fake.bucket:
            self._json(
                400,
                {"statusCode": "404", "error": "Bucket not found", "message": "Bucket not found"},
            )
            return
        if key not in self.fake.objects or "expiresIn" not in body:
            self._json(
                400, {"statusCode": "404", "error": "not_found", "message": "Object not found"}
            )
            return
        token = self.fake.sign(key)
        self._json(200, {"signedURL": f"/object/sign/{bucket}/{key}?token={token}"})

    def _signed_download(self, key: str, query: dict[str, list[str]]) -> None:
        token = query.get("token", [""])[0]
        if self.fake.signed_path(token) != key:
            self._json(
                400, {"statusCode": "400", "error": "InvalidJWT", "message": "invalid signature"}
            )
            return
        data = self.fake.objects[key]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _json(self, status: int, value: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, header in (headers or {}).items():
            self.send_header(name, header)
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def serve_fake_supabase(key: str) -> Iterator[tuple[FakeSupabase, str]]:
    """Run a FakeSupabase on a free loopback port; yields it and its URL (SUPABASE_URL)."""
    fake = FakeSupabase(key)
    handler = type("Handler", (_Handler,), {"fake": fake})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
