"""Token counts with the model's own tokenizer (from the Hub or the cache), else the estimate."""

import json
import re
from pathlib import Path

import pytest
from huggingface_hub import constants as hf_constants
from tokenizers import Tokenizer, models, pre_tokenizers

from server.settings import load_settings
from tests.fake_hub import FakeHub, serve_fake_hub
from tests.support import isolated_env
from tools.dataset_validator.config import DatasetsConfig
from tools.dataset_validator.hub import HubAccess
from tools.dataset_validator.roots import allowed_roots
from tools.dataset_validator.service import ValidationRequest, validate_datasets
from tools.dataset_validator.sources import Sources
from tools.dataset_validator.tokens import token_counter

CLOSED = HubAccess(endpoint="http://127.0.0.1:9", timeout_s=1)
PIECES = re.compile(r"\w+|[^\w\s]+")  # what the Whitespace pre-tokenizer splits into


def word_tokenizer() -> str:
    """A real tokenizer.json: word-level, so a text's token count is its number of pieces."""
    vocab = {"[UNK]": 0, "Question": 1, "Answer": 2, "number": 3}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return tokenizer.to_str()


def add_tiny_model(hub: FakeHub, repo_id: str = "acme/tiny-chat", **kwargs: object) -> None:
    repo = hub.add_model(repo_id, config={"model_type": "llama"}, **kwargs)
    repo.files["tokenizer.json"] = word_tokenizer().encode()


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> DatasetsConfig:
    return load_settings(env=isolated_env(tmp_path_factory.mktemp("config"))).datasets


def write_chat(path: Path, count: int) -> Path:
    lines = [
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": f"Question {i}?"},
                    {"role": "assistant", "content": f"Answer number {i}, in full."},
                ]
            }
        )
        for i in range(count)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def hub_url():
    """One fake Hub with a model of each kind the tests need."""
    with serve_fake_hub() as (hub, url):
        add_tiny_model(hub)
        add_tiny_model(hub, "acme/gated-chat", gated=True)
        hub.add_model("acme/slow-only", config={"model_type": "llama"})
        broken = hub.add_model("acme/broken", config={"model_type": "llama"})
        broken.files["tokenizer.json"] = b'{"version": "1.0", "model": {"type": "Nope"}}'
        yield url


def test_the_models_tokenizer_counts_tokens(
    config: DatasetsConfig, tmp_path: Path, hub_url: str
) -> None:
    write_chat(tmp_path / "chat.jsonl", 12)
    access = HubAccess(endpoint=hub_url, timeout_s=5, cache_dir=tmp_path / "hf")
    report = validate_datasets(
        ValidationRequest(
            datasets=["chat.jsonl"],
            max_seq_length=13,
            model_id="acme/tiny-chat",
            validation_split=0,
        ),
        config,
        Sources(config, allowed_roots([tmp_path]), access, None),
        access,
    )
    assert report.tokenizer.kind == "model" and report.tokenizer.model_id == "acme/tiny-chat"
    assert "downloaded from the Hub" in report.tokenizer.detail
    framing = 2 * config.tokens.tokens_per_message
    expected = len(PIECES.findall("Question 0?")) + len(PIECES.findall("Answer number 0, in full."))
    stats = report.datasets[0].token_stats
    assert stats is not None and (stats.p50, stats.max) == (expected + framing,) * 2
    assert report.train_tokens == 12 * (expected + framing)
    assert [w.code for w in report.datasets[0].warnings] == ["too_long", "no_system_message"]


def test_a_cached_tokenizer_needs_no_hub(
    config: DatasetsConfig, tmp_path: Path, hub_url: str
) -> None:
    cache = tmp_path / "hf"
    online = HubAccess(endpoint=hub_url, timeout_s=5, cache_dir=cache)
    assert token_counter("acme/tiny-chat", None, online, config.tokens).info.kind == "model"
    offline = HubAccess(endpoint=CLOSED.endpoint, timeout_s=1, cache_dir=cache)
    again = token_counter("acme/tiny-chat", None, offline, config.tokens)
    assert again.info.kind == "model" and "local Hugging Face cache" in again.info.detail


@pytest.mark.parametrize(
    ("model_id", "reason"),
    [
        ("acme/gated-chat", "is gated: accept its licence on the Hub and set HF_TOKEN"),
        ("acme/slow-only", "has no tokenizer.json"),
        ("acme/missing", "was not found on the Hub"),
        ("acme/broken", "tokenizer.json could not be loaded"),
    ],
)
def test_without_the_tokenizer_the_estimate_says_why(
    config: DatasetsConfig, tmp_path: Path, hub_url: str, model_id: str, reason: str
) -> None:
    access = HubAccess(endpoint=hub_url, timeout_s=5, cache_dir=tmp_path / "hf")
    counter = token_counter(model_id, None, access, config.tokens)
    assert counter.info.kind == "estimate"
    assert reason in counter.info.detail


def test_offline_without_a_cached_tokenizer(
    config: DatasetsConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    counter = token_counter(
        "acme/tiny-chat",
        None,
        HubAccess(endpoint=CLOSED.endpoint, timeout_s=1, cache_dir=tmp_path),
        config.tokens,
    )
    assert counter.info.kind == "estimate" and "HF_HUB_OFFLINE" in counter.info.detail


def test_downloads_can_be_switched_off(config: DatasetsConfig, tmp_path: Path) -> None:
    tokens = config.tokens.model_copy(update={"download_tokenizer": False})
    access = HubAccess(endpoint=CLOSED.endpoint, timeout_s=1, cache_dir=tmp_path)
    counter = token_counter("acme/tiny-chat", None, access, tokens)
    assert counter.info.kind == "estimate" and "download_tokenizer is off" in counter.info.detail
