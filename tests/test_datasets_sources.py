"""Where datasets come from: local roots (and escapes from them), the listing, the Hub, Supabase."""

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from huggingface_hub import constants as hf_constants
from pydantic import SecretStr

from server.settings import load_settings
from tests.fake_hub import FakeHub, serve_fake_hub
from tests.fake_supabase import serve_fake_supabase
from tests.support import isolated_env
from tools import hub_http
from tools.dataset_validator.config import DatasetsConfig
from tools.dataset_validator.hub import HubAccess
from tools.dataset_validator.listing import list_datasets
from tools.dataset_validator.roots import allowed_roots, resolve_local
from tools.dataset_validator.service import ValidationRequest, validate_datasets
from tools.dataset_validator.sources import Sources
from tools.dataset_validator.supabase_catalog import SupabaseAccess
from tools.errors import UserError

DATA = Path(__file__).parent / "data" / "datasets"
NO_HUB = HubAccess(endpoint="http://127.0.0.1:9", timeout_s=1)
KEY = "sb_secret_test-key-0123456789"
CATALOG_ID = "3f1c2a9e-0d7b-4c1e-9a51-2b7e8c6d5f40"


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> DatasetsConfig:
    return load_settings(env=isolated_env(tmp_path_factory.mktemp("config"))).datasets


# --- local roots ----------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A root holding data, and a secret file next to it (outside the root)."""
    root = tmp_path / "root"
    (root / "nested").mkdir(parents=True)
    (root / "nested" / "chat.jsonl").write_bytes((DATA / "chat.jsonl").read_bytes())
    secret = tmp_path / "secret.jsonl"
    secret.write_text('{"text": "not yours"}\n')
    return root, secret


def test_a_relative_path_resolves_inside_its_root(
    config: DatasetsConfig, tree: tuple[Path, Path]
) -> None:
    root, _ = tree
    path = resolve_local("nested/chat.jsonl", allowed_roots([root]), config.file_extensions)
    assert path == (root / "nested" / "chat.jsonl").resolve()


@pytest.mark.parametrize("ref", ["../secret.jsonl", "nested/../../secret.jsonl", "{secret}"])
def test_paths_that_leave_the_root_are_refused(
    config: DatasetsConfig, tree: tuple[Path, Path], ref: str
) -> None:
    root, secret = tree
    with pytest.raises(UserError, match=r"Refused: .* is outside the allowed folders"):
        resolve_local(ref.format(secret=secret), allowed_roots([root]), config.file_extensions)


def test_a_symlink_out_of_the_root_is_refused_without_saying_where_it_leads(
    config: DatasetsConfig, tree: tuple[Path, Path]
) -> None:
    root, secret = tree
    (root / "innocent.jsonl").symlink_to(secret)
    (root / "dangling.jsonl").symlink_to(secret.with_name("absent.jsonl"))
    messages = []
    for ref in ("innocent.jsonl", "dangling.jsonl", str(secret), str(secret) + ".absent"):
        with pytest.raises(UserError, match="is outside the allowed folders") as refused:
            resolve_local(ref, allowed_roots([root]), config.file_extensions)
        messages.append(str(refused.value).replace(ref, "<ref>"))
        assert str(secret.parent) not in str(refused.value).replace(ref, "")
    assert len(set(messages)) == 1  # existing or not, linked or named: one answer


def test_private_folders_inside_a_root_are_out_of_reach(
    config: DatasetsConfig, tree: tuple[Path, Path]
) -> None:
    root, _ = tree
    private = root / "nested"
    with pytest.raises(UserError, match="is outside the allowed folders"):
        resolve_local("nested/chat.jsonl", allowed_roots([root]), config.file_extensions, [private])
    sources = Sources(config, allowed_roots([root]), NO_HUB, None, private=[private.resolve()])
    assert list_datasets(config, sources, None, "local").datasets == []


def test_a_symlink_that_stays_inside_is_followed(
    config: DatasetsConfig, tree: tuple[Path, Path]
) -> None:
    root, _ = tree
    (root / "link.jsonl").symlink_to(root / "nested" / "chat.jsonl")
    path = resolve_local("link.jsonl", allowed_roots([root]), config.file_extensions)
    assert path == (root / "nested" / "chat.jsonl").resolve()


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("nested", "is a directory"),
        ("missing.jsonl", "No file 'missing.jsonl' in the allowed folders"),
        ("notes.txt", "not a dataset file this server reads"),
    ],
)
def test_other_local_refs_say_what_is_wrong(
    config: DatasetsConfig, tree: tuple[Path, Path], ref: str, message: str
) -> None:
    root, _ = tree
    (root / "notes.txt").write_text("hello")
    with pytest.raises(UserError, match=message):
        resolve_local(ref, allowed_roots([root]), config.file_extensions)


def test_no_roots_at_all(config: DatasetsConfig, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="No local folder is open"):
        resolve_local("x.jsonl", allowed_roots([tmp_path / "absent"]), config.file_extensions)


# --- listing --------------------------------------------------------------------------------


def test_listing_shows_files_with_their_sniffed_format(
    config: DatasetsConfig, tmp_path: Path
) -> None:
    root = tmp_path / "data"
    (root / "team").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / ".git" / "hidden.jsonl").write_text('{"text": "x"}\n')
    for name in ("sharegpt.jsonl", "alpaca.json", "prompt_completion.csv"):
        (root / "team" / name).write_bytes((DATA / name).read_bytes())
    rows = [json.loads(line) for line in (DATA / "preference.jsonl").read_text().splitlines()]
    pq.write_table(pa.Table.from_pylist(rows), root / "pairs.parquet")
    sources = Sources(config, allowed_roots([root]), NO_HUB, None)
    listing = list_datasets(config, sources, None, None)
    found = {entry.ref: entry for entry in listing.datasets}
    assert set(found) == {
        "pairs.parquet",
        "team/alpaca.json",
        "team/prompt_completion.csv",
        "team/sharegpt.jsonl",
    }
    assert {name: entry.format for name, entry in found.items()} == {
        "pairs.parquet": "preference",
        "team/alpaca.json": "alpaca",
        "team/prompt_completion.csv": "prompt_completion",
        "team/sharegpt.jsonl": "sharegpt",
    }
    entry = found["team/sharegpt.jsonl"]
    assert entry.source == "local"
    assert entry.size_bytes == (DATA / "sharegpt.jsonl").stat().st_size
    assert listing.roots == [str(root.resolve())] and not listing.truncated
    narrowed = list_datasets(config, sources, "SHARE", "local")
    assert [e.ref for e in narrowed.datasets] == ["team/sharegpt.jsonl"]


def test_listing_stops_at_its_limit(config: DatasetsConfig, tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"d{i}.jsonl").write_text('{"text": "x"}\n')
    small = config.model_copy(
        update={"listing": config.listing.model_copy(update={"max_files": 3})}
    )
    listing = list_datasets(
        small, Sources(small, allowed_roots([tmp_path]), NO_HUB, None), None, None
    )
    assert len(listing.datasets) == 3 and listing.truncated


def test_listing_supabase_without_credentials(config: DatasetsConfig, tmp_path: Path) -> None:
    sources = Sources(config, allowed_roots([tmp_path]), NO_HUB, None)
    with pytest.raises(UserError, match="SUPABASE_URL and SUPABASE_KEY"):
        list_datasets(config, sources, None, "supabase")


# --- the Hub --------------------------------------------------------------------------------


def validate_refs(config: DatasetsConfig, sources: Sources, hub: HubAccess, refs: list[str]):
    request = ValidationRequest(datasets=refs, max_seq_length=2048)
    return validate_datasets(request, config, sources, hub)


def parquet_bytes(name: str) -> bytes:
    rows = [json.loads(line) for line in (DATA / name).read_text().splitlines()]
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows), sink)
    return sink.getvalue().to_pybytes()


def add_dataset(hub: FakeHub, repo_id: str, files: dict[str, bytes]) -> None:
    """A dataset whose info lists file sizes, as the Hub does when asked for blobs."""
    siblings = [{"rfilename": name, "size": len(data)} for name, data in files.items()]
    hub.add_dataset(repo_id, files, siblings=siblings)


@pytest.fixture(scope="module")
def hub_server():
    """One fake Hub for the module's tests; each test gets its own cache directory."""
    with serve_fake_hub() as (fake, url):
        chat = (DATA / "chat.jsonl").read_bytes()
        add_dataset(
            fake,
            "acme/support",
            {
                "README.md": b"# support chats",
                "data/train-00000-of-00002.parquet": parquet_bytes("chat.jsonl"),
                "data/train-00001-of-00002.parquet": parquet_bytes("chat.jsonl"),
                "data/test-00000-of-00001.jsonl": chat,
            },
        )
        add_dataset(fake, "acme/single", {"data.jsonl": chat})
        broken = chat.replace(b'"assistant"', b'"robot"', 1)  # the first record's role
        add_dataset(
            fake,
            "acme/lines",
            {"data/train-00000-of-00002.jsonl": chat, "data/train-00001-of-00002.jsonl": broken},
        )
        yield fake, url


@pytest.fixture
def hub(hub_server, tmp_path: Path) -> tuple[FakeHub, HubAccess]:
    fake, url = hub_server
    return fake, HubAccess(endpoint=url, timeout_s=5, cache_dir=tmp_path / "hf-cache")


def test_a_hub_split_in_shards_is_one_dataset(config: DatasetsConfig, hub) -> None:
    _, access = hub
    sources = Sources(config, [], access, None)
    report = validate_refs(config, sources, access, ["hf:acme/support"])
    (dataset,) = report.datasets
    assert dataset.source == "hub"
    assert [f.name for f in dataset.files] == [
        "data/train-00000-of-00002.parquet",
        "data/train-00001-of-00002.parquet",
    ]
    assert dataset.records == 24 and dataset.format == "chat"
    assert dataset.duplicates.within == 12  # the second shard repeats the first
    test = validate_refs(config, sources, access, ["hf:acme/support:test"]).datasets[0]
    assert test.records == 12 and test.files[0].file_type == "jsonl"
    whole = validate_refs(config, sources, access, ["hf:acme/single"]).datasets[0]
    assert whole.records == 12


def test_records_of_json_lines_shards_are_numbered_across_the_dataset(
    config: DatasetsConfig, hub
) -> None:
    """The chat lane reads a file a batch at a time; the second shard goes on numbering."""
    _, access = hub
    sources = Sources(config, [], access, None)
    (dataset,) = validate_refs(config, sources, access, ["hf:acme/lines"]).datasets
    assert (dataset.records, dataset.valid_records) == (24, 23)
    (error,) = dataset.errors
    assert (error.record, error.line, error.file) == (13, 1, "data/train-00001-of-00002.jsonl")
    assert all(not w.lines for w in dataset.warnings)  # two files: a line alone says too little


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("hf:acme/support:validation", "no files for split 'validation'"),
        ("hf:acme/missing", "No Hub dataset hf:acme/missing"),
        ("hf:not-a-repo-id", "not a Hub dataset id"),
    ],
)
def test_hub_refs_that_cannot_be_read(config: DatasetsConfig, hub, ref: str, message: str) -> None:
    _, access = hub
    with pytest.raises(UserError, match=message):
        validate_refs(config, Sources(config, [], access, None), access, [ref])


def test_hub_datasets_over_the_limits_are_refused_before_downloading(
    config: DatasetsConfig, hub
) -> None:
    fake, access = hub
    limits = config.limits.model_copy(update={"max_download_bytes": 1000})
    small = config.model_copy(update={"limits": limits})
    downloads = len(fake.requests_to("/datasets/acme/support/resolve/"))
    with pytest.raises(UserError, match=r"more than limits\.max_download_bytes"):
        validate_refs(small, Sources(small, [], access, None), access, ["hf:acme/support"])
    assert len(fake.requests_to("/datasets/acme/support/resolve/")) == downloads
    few = config.model_copy(
        update={"limits": config.limits.model_copy(update={"max_files_per_dataset": 1})}
    )
    with pytest.raises(UserError, match=r"limits\.max_files_per_dataset"):
        validate_refs(few, Sources(few, [], access, None), access, ["hf:acme/support"])


def test_offline_reads_the_cache_and_says_when_it_cannot(
    config: DatasetsConfig, hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, access = hub
    sources = Sources(config, [], access, None)
    online = validate_refs(config, sources, access, ["hf:acme/single"]).datasets[0]
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    before = len(fake.requests)
    offline = validate_refs(config, sources, access, ["hf:acme/single"]).datasets[0]
    assert len(fake.requests) == before  # nothing asked of the Hub
    assert (offline.records, offline.sha256) == (online.records, online.sha256)
    with pytest.raises(UserError, match="HF_HUB_OFFLINE is set and hf:acme/support is not"):
        validate_refs(config, sources, access, ["hf:acme/support"])


def test_an_unreachable_hub_is_a_clear_error(config: DatasetsConfig) -> None:
    # The server installs a retrying client for every huggingface_hub request of the process;
    # with it (here with a short budget) or without it, the message is the same.
    hub_config = load_settings(env=isolated_env(Path("/nonexistent"))).models.hub
    retries = hub_config.retries.model_copy(
        update={"max_attempts": 2, "base_delay_s": 0.01, "max_delay_s": 0.01}
    )
    hub_http.install(hub_config.model_copy(update={"retries": retries}))
    with pytest.raises(UserError, match="The Hub could not be reached"):
        validate_refs(config, Sources(config, [], NO_HUB, None), NO_HUB, ["hf:acme/single"])


# --- Supabase -------------------------------------------------------------------------------


def catalog_row(name: str, path: str, **extra: object) -> dict[str, object]:
    return {
        "id": extra.pop("id", CATALOG_ID),
        "name": name,
        "description": extra.pop("description", "Customer support conversations, cleaned."),
        "storage_path": path,
        "format": "chat",
        "records": 12,
        "size_bytes": 4200,
        "updated_at": "2026-11-20T09:30:00+00:00",
        **extra,
    }


@pytest.fixture(scope="module")
def supabase():
    with serve_fake_supabase(KEY) as (fake, url):
        fake.add(
            catalog_row("support-chats", "chats/2026-11/support.jsonl"),
            (DATA / "chat.jsonl").read_bytes(),
        )
        prefs = catalog_row(
            "prefs", "prefs/pairs.jsonl", id=7, format="preference", description="Ranked answers"
        )
        fake.add(prefs, (DATA / "preference.jsonl").read_bytes())
        fake.add(catalog_row("ghost", "nowhere/ghost.jsonl", id=8))
        yield fake, url


def supabase_sources(config: DatasetsConfig, url: str, key: str = KEY) -> Sources:
    return Sources(config, [], NO_HUB, SupabaseAccess(url=url, key=SecretStr(key)))


def test_a_catalog_entry_by_name_or_id(config: DatasetsConfig, supabase) -> None:
    fake, url = supabase
    sources = supabase_sources(config, url)
    by_name = validate_refs(config, sources, NO_HUB, ["supabase:support-chats"]).datasets[0]
    assert by_name.source == "supabase" and by_name.valid and by_name.records == 12
    assert by_name.location == "datasets/chats/2026-11/support.jsonl"
    by_id = validate_refs(config, sources, NO_HUB, [f"supabase:{CATALOG_ID}"]).datasets[0]
    assert by_id.sha256 == by_name.sha256
    numeric = validate_refs(config, sources, NO_HUB, ["supabase:7"]).datasets[0]
    assert numeric.format == "preference"
    assert any("or=" in path and "id.eq." in path for _, path in fake.requests)


@pytest.mark.parametrize(
    ("ref", "key", "table", "message"),
    [
        ("supabase:nothing", KEY, "datasets", "has no dataset with id or name 'nothing'"),
        ("supabase:support-chats", "wrong-key", "datasets", "Invalid API key"),
        ("supabase:support-chats", KEY, "catalog", "no table 'catalog'"),
        ("supabase:ghost", KEY, "datasets", "not in the Storage bucket 'datasets'"),
    ],
)
def test_supabase_failures_are_explained_without_the_key(
    config: DatasetsConfig, supabase, ref: str, key: str, table: str, message: str
) -> None:
    _, url = supabase
    renamed = config.model_copy(
        update={"supabase": config.supabase.model_copy(update={"catalog_table": table})}
    )
    with pytest.raises(UserError, match=message) as caught:
        validate_refs(renamed, supabase_sources(renamed, url, key), NO_HUB, [ref])
    assert key not in str(caught.value)


def test_a_catalog_without_the_expected_columns(config: DatasetsConfig) -> None:
    with serve_fake_supabase(KEY) as (fake, url):
        fake.add({"id": 1, "name": "old", "path": "x.jsonl"})
        with pytest.raises(UserError, match="lacks a column"):
            validate_refs(config, supabase_sources(config, url), NO_HUB, ["supabase:old"])


def test_unreachable_or_unconfigured_supabase(config: DatasetsConfig, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="could not be reached"):
        validate_refs(
            config, supabase_sources(config, "http://127.0.0.1:9"), NO_HUB, ["supabase:x"]
        )
    with pytest.raises(UserError, match="needs the Supabase catalog"):
        validate_refs(config, Sources(config, [], NO_HUB, None), NO_HUB, ["supabase:x"])


def test_supabase_downloads_are_capped(config: DatasetsConfig, supabase) -> None:
    _, url = supabase
    small = config.model_copy(
        update={"limits": config.limits.model_copy(update={"max_download_bytes": 100})}
    )
    with pytest.raises(UserError, match=r"larger than limits\.max_download_bytes"):
        validate_refs(small, supabase_sources(small, url), NO_HUB, ["supabase:support-chats"])


def test_the_catalog_is_listed_and_searched(
    config: DatasetsConfig, supabase, tmp_path: Path
) -> None:
    _, url = supabase
    sources = supabase_sources(config, url)
    listing = list_datasets(config, sources, None, "supabase")
    assert [e.ref for e in listing.datasets] == [
        "supabase:ghost",
        "supabase:prefs",
        "supabase:support-chats",
    ]
    entry = listing.datasets[2]
    assert (entry.format, entry.records, entry.size_bytes) == ("chat", 12, 4200)
    assert entry.description == "Customer support conversations, cleaned."
    found = list_datasets(config, sources, "ranked", "supabase")
    assert [e.ref for e in found.datasets] == ["supabase:prefs"]


def test_catalog_text_is_cut_and_a_long_name_is_referred_to_by_id(config: DatasetsConfig) -> None:
    """Whoever may write the catalog writes its names and descriptions: they come back cut."""
    most, huge = config.limits.max_quoted_chars, 1_000_000
    with serve_fake_supabase(KEY) as (fake, url):
        row = catalog_row("n" * huge, "chats/support.jsonl", id=9, description="d" * huge)
        fake.add(row, (DATA / "chat.jsonl").read_bytes())
        fake.add(catalog_row("odd", "p" * huge, id=10))
        sources = supabase_sources(config, url)
        long_name, _ = list_datasets(config, sources, None, "supabase").datasets
        assert long_name.ref == "supabase:9"
        assert long_name.name == f"{'n' * most}… (1,000,000 characters)"
        assert long_name.description == f"{'d' * most}… (1,000,000 characters)"
        assert validate_refs(config, sources, NO_HUB, [long_name.ref]).datasets[0].valid
        with pytest.raises(UserError, match=r"not a file type") as caught:
            validate_refs(config, sources, NO_HUB, ["supabase:odd"])
    assert len(str(caught.value)) < 3 * most


def test_a_broken_catalog_does_not_hide_local_files(config: DatasetsConfig, tmp_path: Path) -> None:
    (tmp_path / "local.jsonl").write_text('{"text": "x"}\n')
    sources = Sources(
        config,
        allowed_roots([tmp_path]),
        NO_HUB,
        SupabaseAccess(url="http://127.0.0.1:9", key=SecretStr(KEY)),
    )
    listing = list_datasets(config, sources, None, None)
    assert [e.ref for e in listing.datasets] == ["local.jsonl"]
    assert listing.notes and "Supabase catalog skipped" in listing.notes[0]
    assert KEY not in json.dumps(listing.model_dump())


def test_symlinked_directories_are_not_walked(config: DatasetsConfig, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "private.jsonl").write_text('{"text": "x"}\n')
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside, root / "linked", target_is_directory=True)
    listing = list_datasets(
        config, Sources(config, allowed_roots([root]), NO_HUB, None), None, "local"
    )
    assert listing.datasets == []
