"""The team's dataset catalog in Supabase: a table describing datasets, their files in Storage.

Read with the supabase client: PostgREST for the table, Storage for a short-lived signed URL from
which the file streams to a temporary file, so memory stays flat however large it is. The key
stays in this module: it is in no message, no log line and no repr.
"""

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, field_validator

from tools.dataset_validator.config import SupabaseConfig
from tools.errors import UserError
from tools.quoting import excerpt, quote

if TYPE_CHECKING:
    from storage3.exceptions import StorageApiError
    from supabase import Client

COLUMNS = ("id", "name", "description", "storage_path", "format", "records", "size_bytes")
COLUMNS += ("updated_at",)
_ID = re.compile(
    r"^(\d+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
)
_MISSING_TABLE = {"42P01", "PGRST205"}  # Postgres undefined_table; PostgREST schema-cache miss
_MISSING_COLUMN = {"42703", "PGRST204"}
_DOWNLOAD_CHUNK = 1 << 20


class CatalogEntry(BaseModel):
    """One row of the catalog table."""

    model_config = ConfigDict(extra="ignore")

    id: str
    name: str
    description: str | None = None
    storage_path: str
    format: str | None = None
    records: int | None = None
    size_bytes: int | None = None
    updated_at: str | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value


class SupabaseAccess(BaseModel):
    url: str
    key: SecretStr


class SupabaseCatalog:
    """Catalog look-ups and downloads; one short-lived HTTP client per operation. Whoever may
    write the catalog writes its names and paths: messages quote them (max_quoted_chars)."""

    def __init__(
        self, access: SupabaseAccess, config: SupabaseConfig, max_quoted_chars: int
    ) -> None:
        self._access = access
        self._config = config
        self._max_quoted = max_quoted_chars

    @contextmanager
    def _client(self) -> Iterator[tuple["Client", httpx.Client]]:
        # The supabase stack is imported on first use: it adds ~25 MB to a process.
        from supabase import ClientOptions, create_client

        with httpx.Client(timeout=self._config.timeout_s, follow_redirects=True) as http:
            options = ClientOptions(httpx_client=http, postgrest_client_retry=False)
            try:
                client = create_client(
                    self._access.url, self._access.key.get_secret_value(), options=options
                )
            except Exception as exc:  # SupabaseException for a malformed URL or key
                raise UserError(
                    f"SUPABASE_URL or SUPABASE_KEY is not usable ({type(exc).__name__}); set "
                    "SUPABASE_URL to https://<project>.supabase.co and SUPABASE_KEY to its key."
                ) from exc
            yield client, http

    def find(self, ident: str) -> CatalogEntry:
        """The entry whose id or name is `ident`."""
        with self._client() as (client, _):
            query = client.table(self._config.catalog_table).select(",".join(COLUMNS))
            query = (
                query.or_(f"id.eq.{ident},name.eq.{ident}")
                if _ID.match(ident)
                else query.eq("name", ident)
            )
            rows = self._rows(lambda: query.limit(2).execute().data)
        if not rows:
            raise UserError(
                f"The Supabase catalog ({self._config.catalog_table}) has no dataset with id or "
                f"name '{ident}'; list_datasets with source 'supabase' shows what it has."
            )
        if len(rows) > 1:
            raise UserError(
                f"'{ident}' matches more than one catalog entry; refer to one by its id."
            )
        return CatalogEntry.model_validate(rows[0])

    def search(self, text: str | None) -> list[CatalogEntry]:
        """Entries whose name or description contains `text` (all when None), by name."""
        with self._client() as (client, _):
            query = client.table(self._config.catalog_table).select(",".join(COLUMNS))
            if text:
                pattern = "*" + re.sub(r"[,()*\"\\]", " ", text).strip() + "*"
                query = query.or_(f"name.ilike.{pattern},description.ilike.{pattern}")
            query = query.order("name").limit(self._config.list_limit)
            rows = self._rows(lambda: query.execute().data)
        return [CatalogEntry.model_validate(row) for row in rows]

    def download(
        self, entry: CatalogEntry, folder: Path, max_bytes: int, checkpoint: Callable[[], None]
    ) -> Path:
        """Stream the entry's Storage object into `folder`; the file keeps the object's name."""
        from storage3.exceptions import StorageApiError

        bucket = self._config.storage_bucket
        target = folder / PurePosixPath(entry.storage_path).name
        path = quote(entry.storage_path, self._max_quoted)
        with self._client() as (client, http):
            try:
                signed = client.storage.from_(bucket).create_signed_url(
                    entry.storage_path, self._config.signed_url_expires_s
                )
            except StorageApiError as exc:
                raise UserError(self._storage_problem(entry, exc)) from exc
            except (httpx.HTTPError, ValueError) as exc:
                raise self._unreachable(exc) from exc
            if not signed.get("signedURL"):
                raise UserError(f"Supabase Storage gave no download URL for {path}.")
            try:
                with http.stream("GET", signed["signedURL"]) as response, target.open("wb") as out:
                    if response.status_code != httpx.codes.OK:
                        response.read()
                        raise UserError(
                            f"Supabase Storage refused {path} in bucket '{bucket}' (HTTP "
                            f"{response.status_code}: {_message(response, self._max_quoted)})."
                        )
                    written = 0
                    for chunk in response.iter_bytes(_DOWNLOAD_CHUNK):
                        written += len(chunk)
                        if written > max_bytes:
                            raise UserError(
                                f"Catalog entry {quote(entry.name, self._max_quoted)} is larger "
                                f"than limits.max_download_bytes ({max_bytes:,} bytes); raise "
                                "the limit or use a smaller file."
                            )
                        out.write(chunk)
                        checkpoint()
            except httpx.HTTPError as exc:
                raise self._unreachable(exc) from exc
        return target

    def _rows(self, run: Callable[[], Any]) -> list[dict[str, Any]]:
        from postgrest.exceptions import APIError

        table = self._config.catalog_table
        try:
            return list(run() or [])
        except APIError as exc:
            if exc.code in _MISSING_TABLE:
                raise UserError(
                    f"The Supabase project has no table '{table}' (supabase.catalog_table); "
                    "create it (see README) or point the setting at your catalog table."
                ) from exc
            if exc.code in _MISSING_COLUMN:
                raise UserError(
                    f"The catalog table '{table}' lacks a column this server reads "
                    f"({exc.message}); it needs {', '.join(COLUMNS)}."
                ) from exc
            raise UserError(
                f"The Supabase catalog query failed: {exc.message or exc.code}. " + _AUTH_HINT
            ) from exc
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc

    def _storage_problem(self, entry: CatalogEntry, exc: "StorageApiError") -> str:
        bucket, most = self._config.storage_bucket, self._max_quoted
        name, path = quote(entry.name, most), quote(entry.storage_path, most)
        status = str(exc.status)
        if status == "404" or exc.code in ("not_found", "NoSuchKey"):
            return (
                f"Catalog entry {name} points at {path}, which is not in the Storage bucket "
                f"'{bucket}' ({excerpt(str(exc.message), most)}); fix its storage_path or upload "
                "the file."
            )
        return (
            f"Supabase Storage refused {path} in bucket '{bucket}': "
            f"{excerpt(str(exc.message), most)}. {_AUTH_HINT}"
        )

    def _unreachable(self, exc: Exception) -> UserError:
        return UserError(
            f"Supabase at {self._access.url} could not be reached ({type(exc).__name__}); check "
            "SUPABASE_URL and the network, then try again."
        )


_AUTH_HINT = "Check SUPABASE_URL and SUPABASE_KEY (a key that may read the catalog and bucket)."


def _message(response: httpx.Response, max_chars: int) -> str:
    """What an error response says, cut to `max_chars`."""
    try:
        body = response.json()
    except ValueError:
        return excerpt(response.text, max_chars)
    if not isinstance(body, dict):
        return ""
    return excerpt(str(body.get("message") or body.get("error") or body), max_chars)
