"""The sizes of a decoder's pieces: what the memory and FLOPs formulas are written in.

A Llama-style decoder layer holds the attention projections q, k, v, o and the MLP projections
gate, up, down. Their shapes follow from config.json (hidden size h, heads H, key/value heads K,
head size d, intermediate size I, vocabulary V, layers L):

    q: h -> H*d    k, v: h -> K*d    o: H*d -> h    gate, up: h -> I    down: I -> h

Ungated MLPs (GPT-2 style) have only up and down; the MLP's matrix count is read off
count_parameters so the two never disagree.
"""

from dataclasses import dataclass
from functools import cached_property

from tools.model_browser.architecture import count_parameters
from tools.model_browser.config import Architecture

ATTENTION_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
GATED_MLP_MODULES = ("gate_proj", "up_proj", "down_proj")
UNGATED_MLP_MODULES = ("up_proj", "down_proj")


@dataclass(frozen=True)
class ModelShape:
    """Derived sizes are computed once per shape (cached): an estimate asks for them per target."""

    arch: Architecture
    params: int  # the checkpoint's total (safetensors) where known, else counted from the shape

    @property
    def layers(self) -> int:
        return self.arch.num_hidden_layers

    @property
    def hidden(self) -> int:
        return self.arch.hidden_size

    @property
    def intermediate(self) -> int:
        return self.arch.intermediate_size

    @property
    def vocab(self) -> int:
        return self.arch.vocab_size

    @cached_property
    def q_dim(self) -> int:
        return self.arch.num_attention_heads * self.arch.resolved_head_dim

    @cached_property
    def kv_dim(self) -> int:
        return self.arch.num_key_value_heads * self.arch.resolved_head_dim

    @property
    def experts(self) -> int:
        return self.arch.num_experts or 1

    @cached_property
    def embedding_params(self) -> int:
        """Input embedding plus the output head (one matrix when they are tied)."""
        return self.vocab * self.hidden * (1 if self.arch.tie_word_embeddings else 2)

    @cached_property
    def mlp_modules(self) -> tuple[str, ...]:
        return GATED_MLP_MODULES if self._mlp_matrices == 3 else UNGATED_MLP_MODULES

    @cached_property
    def _mlp_matrices(self) -> int:
        h, layers = self.hidden, self.layers
        counted = count_parameters(self.arch)
        per_layer = (counted - self.embedding_params - h) // layers
        attention = 2 * h * self.q_dim + 2 * h * self.kv_dim
        mlp = per_layer - attention - 2 * h
        router = h * self.experts if self.arch.num_experts else 0
        return round((mlp - router) / (self.experts * h * self.intermediate))

    def module_features(self, module: str) -> tuple[int, int]:
        """(in_features, out_features) of one projection in a decoder layer."""
        return self._features[module]

    @cached_property
    def _features(self) -> dict[str, tuple[int, int]]:
        h, i = self.hidden, self.intermediate
        return {
            "q_proj": (h, self.q_dim),
            "k_proj": (h, self.kv_dim),
            "v_proj": (h, self.kv_dim),
            "o_proj": (self.q_dim, h),
            "gate_proj": (h, i),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }

    @cached_property
    def linear_modules(self) -> tuple[str, ...]:
        return ATTENTION_MODULES + self.mlp_modules

    def module_copies(self, module: str) -> int:
        """How many of this projection a layer holds: one per expert for an MoE MLP."""
        return self.experts if module in GATED_MLP_MODULES else 1

    def module_params(self, module: str) -> int:
        """Weights of one projection in one layer (every expert's, for an MoE MLP)."""
        fan_in, fan_out = self.module_features(module)
        return fan_in * fan_out * self.module_copies(module)

    def lora_width(self, modules: tuple[str, ...]) -> int:
        """in + out features over `modules`, every expert's copy counted: what a rank-1 LoRA
        adds to one layer."""
        widths = self._lora_widths
        return sum(widths[m] for m in modules)

    @cached_property
    def _lora_widths(self) -> dict[str, int]:
        return {m: sum(self.module_features(m)) * self.module_copies(m) for m in self._features}

    @cached_property
    def block_linear_params(self) -> int:
        """Weights of every projection in every decoder layer: what 4-bit loading quantises."""
        return self.layers * sum(self.module_params(m) for m in self.linear_modules)

    @cached_property
    def active_block_linear_params(self) -> int:
        """Projection weights one token passes through (one expert's MLP for an MoE)."""
        per_expert = sum(self.module_params(m) // self.experts for m in self.mlp_modules)
        attention = sum(self.module_params(m) for m in ATTENTION_MODULES)
        return self.layers * (attention + per_expert)

    @property
    def unquantised_params(self) -> int:
        """What stays in 16-bit under 4-bit loading: embeddings, output head, norms."""
        return max(self.params - self.block_linear_params, self.embedding_params)
