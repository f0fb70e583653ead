"""config.json spellings -> Architecture, and the parameter count computed from it."""

import pytest

from server.settings import load_settings
from tools.errors import UserError
from tools.model_browser.architecture import architecture_from_config, count_parameters

CATALOG = load_settings(env={}).models.popular


@pytest.mark.parametrize("model", CATALOG, ids=lambda m: m.id)
def test_computed_count_matches_the_catalog_safetensors_totals(model) -> None:
    assert count_parameters(model.architecture) == pytest.approx(model.params, rel=1e-4)


def test_llama_config() -> None:
    arch = architecture_from_config(
        {
            "model_type": "llama",
            "num_hidden_layers": 16,
            "hidden_size": 2048,
            "intermediate_size": 8192,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "vocab_size": 128256,
            "max_position_embeddings": 131072,
            "tie_word_embeddings": True,
        }
    )
    assert (arch.model_type, arch.context_length, arch.resolved_head_dim) == ("llama", 131072, 64)
    assert count_parameters(arch) == 1235814400  # Llama-3.2-1B's safetensors total


def test_gpt2_spellings_and_defaults() -> None:
    arch = architecture_from_config(
        {
            "model_type": "gpt2",
            "n_layer": 12,
            "n_embd": 768,
            "n_head": 12,
            "n_inner": None,
            "vocab_size": 50257,
            "n_positions": 1024,
        }
    )
    assert arch.intermediate_size == 4 * 768  # transformers' default for n_inner=None
    assert arch.num_key_value_heads == 12 and arch.tie_word_embeddings
    # GPT-2 small: 124M (its learned position embeddings and biases are not counted)
    assert count_parameters(arch) == pytest.approx(124_439_808, rel=0.02)


def test_multimodal_config_uses_its_text_model() -> None:
    arch = architecture_from_config(
        {
            "model_type": "gemma3",
            "text_config": {
                "model_type": "gemma3_text",
                "num_hidden_layers": 34,
                "hidden_size": 2560,
                "intermediate_size": 10240,
                "num_attention_heads": 8,
                "num_key_value_heads": 4,
                "head_dim": 256,
                "vocab_size": 262208,
                "max_position_embeddings": 131072,
            },
        }
    )
    assert arch.model_type == "gemma3_text" and arch.head_dim == 256 and arch.hidden_size == 2560


def test_mixture_of_experts_counts_every_expert() -> None:
    dense = {
        "model_type": "mixtral",
        "num_hidden_layers": 32,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 32000,
        "max_position_embeddings": 32768,
        "tie_word_embeddings": False,
    }
    moe = architecture_from_config({**dense, "num_local_experts": 8})
    # Mixtral-8x7B has 46.7B parameters
    assert count_parameters(moe) == pytest.approx(46.7e9, rel=0.01)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"model_type": "bert", "vocab_size": 30522}, "num_hidden_layers, hidden_size"),
        (
            {
                "model_type": "x",
                "num_hidden_layers": 2,
                "hidden_size": 8,
                "num_attention_heads": 2,
                "vocab_size": 10,
            },
            "no context length",
        ),
    ],
)
def test_configs_that_are_not_language_models(config: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        architecture_from_config(config)
