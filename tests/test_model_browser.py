"""The model browser against a local Hub: filters, sorting, caching, faults and fallbacks."""

import json
import time
from pathlib import Path

import huggingface_hub.constants
import pytest

from server.settings import Secrets, load_settings
from server.state import open_model_browser
from tests.fake_hub import FakeHub
from tests.support import CLOSED_PORT_URL, hub_env, llama_config
from tools import hub_http
from tools.errors import UserError
from tools.model_browser.service import ModelBrowser, SearchRequest


def browser(tmp_path: Path, url: str, token: str | None = None, **env: str) -> ModelBrowser:
    settings = load_settings(env=hub_env(tmp_path, url, **env))
    hub_http.install(settings.models.hub)  # as the server does at start-up
    return open_model_browser(settings, Secrets(hf_token=token))


def ids(result) -> list[str]:
    return [m.id for m in result.models]


def test_search_filters_sorts_and_describes(tmp_path: Path, fake_hub: tuple[FakeHub, str]) -> None:
    _, url = fake_hub
    result = browser(tmp_path, url).search(SearchRequest(query="acme"))
    assert result.source == "hub" and not result.stale
    # feature-extraction is not an allowed task; the rest come by downloads
    assert ids(result) == ["acme/chat-8b", "acme/chat-70b", "acme/chat-1b", "acme/gated-7b"]
    first = result.models[0]
    assert first.params_b == pytest.approx(8.03, abs=0.01)
    assert first.size_gb == pytest.approx(16.06, abs=0.01)
    assert first.license == "llama3.1"  # from the license: tag
    assert first.downloads == 5000 and first.pipeline_tag == "text-generation"
    assert first.last_modified is not None
    big = result.models[1]
    assert any("over 14B" in w for w in big.warnings)
    gated = result.models[3]
    assert gated.gated and any("accept its licence" in w for w in gated.warnings)


@pytest.mark.parametrize(
    ("request_args", "expected"),
    [
        (
            {"query": "chat", "sort": "likes"},
            ["acme/chat-70b", "acme/chat-8b", "acme/chat-1b", "other/tiny-chat"],
        ),
        (
            {"query": "chat", "sort": "trending"},
            ["acme/chat-8b", "acme/chat-70b", "acme/chat-1b", "other/tiny-chat"],
        ),
        (
            {"query": "chat", "sort": "recent"},
            ["other/tiny-chat", "acme/chat-1b", "acme/chat-70b", "acme/chat-8b"],
        ),
        ({"query": "chat", "max_params_b": 10}, ["acme/chat-8b", "acme/chat-1b"]),
        ({"query": "chat", "min_downloads": 1000}, ["acme/chat-8b", "acme/chat-70b"]),
        ({"author": "other"}, ["other/tiny-chat"]),
        (
            {"query": "acme", "task": "text-generation", "limit": 2},
            ["acme/chat-8b", "acme/chat-70b"],
        ),
    ],
)
def test_filters_and_sorting(
    tmp_path: Path, fake_hub: tuple[FakeHub, str], request_args: dict, expected: list[str]
) -> None:
    _, url = fake_hub
    assert ids(browser(tmp_path, url).search(SearchRequest(**request_args))) == expected


def test_the_sort_and_filters_reach_the_hub(tmp_path: Path, fake_hub: tuple[FakeHub, str]) -> None:
    hub, url = fake_hub
    browser(tmp_path, url).search(
        SearchRequest(query="chat", author="acme", sort="trending", library="transformers")
    )
    (request,) = hub.requests_to("/api/models")
    for part in (
        "search=chat",
        "author=acme",
        "sort=trendingScore",
        "filter=transformers",
        "expand=safetensors",
    ):
        assert part in request


def test_caller_cannot_widen_the_configured_caps(
    tmp_path: Path, fake_hub: tuple[FakeHub, str]
) -> None:
    _, url = fake_hub
    models = browser(tmp_path, url)
    result = models.search(SearchRequest(query="acme", limit=500))
    assert "at most 50" in result.notice
    with pytest.raises(UserError, match="not offered here; choose one of: text-generation"):
        models.search(SearchRequest(query="acme", task="feature-extraction"))


def test_empty_query_lists_the_popular_models_without_the_hub(tmp_path: Path) -> None:
    result = browser(tmp_path, CLOSED_PORT_URL).search(SearchRequest(max_params_b=2))
    assert result.source == "popular"
    assert "Qwen/Qwen2.5-0.5B-Instruct" in ids(result)
    assert all(m.params_b <= 2 for m in result.models)


def test_a_repeated_search_is_served_from_cache(
    tmp_path: Path, fake_hub: tuple[FakeHub, str]
) -> None:
    hub, url = fake_hub
    models = browser(tmp_path, url)
    first = models.search(SearchRequest(query="Chat  "))
    second = models.search(SearchRequest(query="chat"))  # normalised to the same key
    assert (first.source, second.source) == ("hub", "cache")
    assert second.models == first.models
    assert len(hub.requests_to("/api/models")) == 1


def test_429_with_retry_after_then_success(tmp_path: Path, fake_hub: tuple[FakeHub, str]) -> None:
    hub, url = fake_hub
    hub.fail("/api/models", status=429, headers={"Retry-After": "1"})
    result = browser(tmp_path, url).search(SearchRequest(query="acme"))
    assert result.source == "hub" and len(result.models) == 4
    assert len(hub.requests_to("/api/models")) == 2


def test_503_then_success(tmp_path: Path, fake_hub: tuple[FakeHub, str]) -> None:
    hub, url = fake_hub
    hub.fail("/api/models", status=503, times=2)
    result = browser(tmp_path, url).search(SearchRequest(query="acme"))
    assert result.source == "hub"
    assert len(hub.requests_to("/api/models")) == 3


def test_a_timeout_is_retried(tmp_path: Path, fake_hub: tuple[FakeHub, str]) -> None:
    hub, url = fake_hub
    hub.fail("/api/models", status=0, delay_s=1.5)  # longer than the 0.5 s request timeout
    result = browser(tmp_path, url).search(SearchRequest(query="acme"))
    assert result.source == "hub"
    assert len(hub.requests_to("/api/models")) == 2


def test_malformed_json_falls_back(tmp_path: Path, fake_hub: tuple[FakeHub, str]) -> None:
    hub, url = fake_hub
    hub.fail("/api/models", status=200, body=b"{not json", times=10)
    result = browser(tmp_path, url).search(SearchRequest(query="qwen"))
    assert result.source == "offline"
    assert "malformed answer" in result.notice


def test_hub_down_without_a_warm_cache_offers_popular_and_local_models(tmp_path: Path) -> None:
    local = tmp_path / "hf-cache" / "models--someone--local-qwen-ft"
    snapshot = local / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (local / "refs").mkdir()
    (local / "refs" / "main").write_text("abc")
    (snapshot / "config.json").write_text(json.dumps(llama_config()))
    result = browser(tmp_path, CLOSED_PORT_URL).search(SearchRequest(query="qwen"))
    assert result.source == "offline" and not result.stale
    assert "someone/local-qwen-ft" in ids(result)
    assert "Qwen/Qwen2.5-7B-Instruct" in ids(result)
    assert all("qwen" in i.lower() for i in ids(result))
    assert result.notice.startswith("The Hub is unreachable")


def test_hub_down_with_a_warm_cache_serves_it_marked_stale(
    tmp_path: Path, fake_hub: tuple[FakeHub, str]
) -> None:
    hub, url = fake_hub
    models = browser(tmp_path, url, TRAINING_PACKAGE_MCP__MODELS__CACHE__TTL_S="0.001")
    fresh = models.search(SearchRequest(query="acme"))
    time.sleep(0.01)  # past the 1 ms time-to-live
    hub.fail("/api/models", status=503, times=100)
    stale = models.search(SearchRequest(query="acme"))
    assert (stale.source, stale.stale) == ("cache", True)
    assert stale.models == fresh.models
    assert "unreachable (HTTP 503" in stale.notice


def test_a_restarted_offline_server_answers_from_the_disk_cache(
    tmp_path: Path, fake_hub: tuple[FakeHub, str]
) -> None:
    _, url = fake_hub
    before = browser(tmp_path, url).search(SearchRequest(query="acme"))
    restarted = browser(tmp_path, CLOSED_PORT_URL, TRAINING_PACKAGE_MCP__MODELS__CACHE__TTL_S="1")
    after = restarted.search(SearchRequest(query="acme"))
    assert after.source == "cache"
    assert after.models == before.models


def test_select_reads_safetensors_and_config(tmp_path: Path, fake_hub: tuple[FakeHub, str]) -> None:
    _, url = fake_hub
    details = browser(tmp_path, url).details("acme/chat-8b")
    assert details.source == "hub" and details.params_source == "safetensors"
    assert details.params == 8_030_261_248 and details.params_b == pytest.approx(8.03, abs=0.01)
    assert details.architecture.num_hidden_layers == 32
    assert details.context_length == 131072
    assert details.license == "llama3.1" and not details.gated
    assert details.revision == "0123456789abcdef0123456789abcdef01234567"  # pinned commit


def test_select_without_safetensors_counts_from_config(
    tmp_path: Path, fake_hub: tuple[FakeHub, str]
) -> None:
    _, url = fake_hub
    details = browser(tmp_path, url).details("other/tiny-chat")
    assert details.params_source == "config"
    assert details.params == 1_235_814_400
    assert any("computed from config.json" in w for w in details.warnings)


def test_select_warns_about_non_text_generation(
    tmp_path: Path, fake_hub: tuple[FakeHub, str]
) -> None:
    _, url = fake_hub
    details = browser(tmp_path, url).details("acme/embedder")
    assert any("feature-extraction, not text-generation" in w for w in details.warnings)


def test_unknown_model_suggests_the_closest(tmp_path: Path, fake_hub: tuple[FakeHub, str]) -> None:
    _, url = fake_hub
    with pytest.raises(UserError) as exc:
        browser(tmp_path, url).details("acme/chat-8")
    assert "There is no model 'acme/chat-8'" in str(exc.value)
    assert "acme/chat-8b" in str(exc.value)


def test_gated_model_without_access_says_what_to_do(
    tmp_path: Path, fake_hub: tuple[FakeHub, str]
) -> None:
    hub, url = fake_hub
    with pytest.raises(UserError, match=r"gated.*accept its licence at https://huggingface\.co/"):
        browser(tmp_path, url).details("acme/gated-7b")
    hub.tokens.add("hf_granted")
    details = browser(tmp_path / "with-token", url, token="hf_granted").details("acme/gated-7b")
    assert details.gated and details.gated_action and "HF_TOKEN" in details.gated_action


def test_select_offline_uses_the_catalog(tmp_path: Path) -> None:
    details = browser(tmp_path, CLOSED_PORT_URL).details("Qwen/Qwen2.5-0.5B-Instruct")
    assert (details.source, details.params_source) == ("offline", "catalog")
    assert details.params == 494_032_768
    assert any("unreachable" in w for w in details.warnings)


def test_select_offline_unknown_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="neither in the curated list nor in your local"):
        browser(tmp_path, CLOSED_PORT_URL).details("nobody/nothing")


def test_bad_model_id(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="use the form owner/name"):
        browser(tmp_path, CLOSED_PORT_URL).details("just-a-name")


def test_hf_hub_offline_skips_the_network(
    tmp_path: Path, fake_hub: tuple[FakeHub, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    hub, url = fake_hub
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    models = browser(tmp_path, url)
    result = models.search(SearchRequest(query="qwen"))
    details = models.details("Qwen/Qwen2.5-1.5B-Instruct")
    assert result.source == "offline" and "HF_HUB_OFFLINE" in result.notice
    assert details.source == "offline"
    assert hub.requests == []
