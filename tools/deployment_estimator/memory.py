"""Peak GPU memory of one training process: will it fit.

Peak = weights + optimizer states + the larger of (saved activations + the loss's logits
buffers), alive when backward starts, and (the gradients), complete when it ends - backward frees
each layer's activations as it writes that layer's gradients - + transient buffers, with
PyTorch's allocator reserve and the CUDA context on top.

Sources for the accounting:
- Weights, gradients, optimizer states: HF transformers docs, model_memory_anatomy.md (weights,
  gradients, AdamW's two states, 8-bit optimizers); accelerate `estimate-memory`.
- Activations: Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer
  Models" (arXiv 2205.05198), section 4, re-derived for Llama-style layers as transformers
  implements them (RMSNorm, SDPA/flash attention, SwiGLU MLP, no dropout) by listing what each
  op saves for backward; see `_saved_per_token_layer`.
- Gradient checkpointing keeps each layer's input and recomputes one layer at a time during
  backward (transformers `gradient_checkpointing_enable`; Chen et al. 2016, arXiv 1604.06174).
- 4-bit weights: QLoRA (Dettmers et al. 2023, arXiv 2305.14314) NF4 with double quantisation.
- Logits: the loss the trainer runs (TRL 1.13: SFT's chunked_nll, DPO/KTO's row-wise
  selective_log_softmax; transformers' ForCausalLMLoss otherwise); see `_logits_bytes`.
- fp32 master weights under autocast: torch.autocast caches a 16-bit copy of each weight it
  casts until the autocast region (the forward) ends.
- Compute dtype: under bf16/fp16 autocast (transformers' bf16/fp16 flags) matmuls output 16-bit
  activations whatever the weights; without it every op runs in the weights' dtype, so a model
  loaded in fp32 keeps fp32 activations and logits (TrainingPlan.weights_dtype).
- Sequences: TRL pads each batch to its longest example (TrainingPlan.sequence_tokens).
"""

from pydantic import BaseModel, Field

from tools.deployment_estimator.config import DeploymentConfig, Gpu
from tools.deployment_estimator.plan import TrainingPlan
from tools.deployment_estimator.shapes import ModelShape
from tools.trainer_run import DTYPE_BYTES

GIB = 2**30  # memory is reported in binary GB, as nvidia-smi and PyTorch count it
HALF_BYTES = 2  # bf16 / fp16 value
FP32_BYTES = 4
BITS_PER_BYTE = 8


class MemoryBreakdown(BaseModel):
    """Peak memory of one GPU, in GB (2^30 bytes), by what holds it."""

    weights_gb: float = Field(description="Model weights (16-bit, 4-bit NF4 for QLoRA).")
    trainable_gb: float = Field(description="LoRA adapter weights (zero for full fine-tuning).")
    gradients_gb: float = Field(description="Peaks when activations are gone: the larger counts.")
    optimizer_gb: float
    activations_gb: float = Field(description="Tensors saved for backward at the peak.")
    logits_gb: float = Field(description="Output logits and the loss's fp32 copies.")
    buffers_gb: float = Field(description="4-bit dequantisation and data-parallel buckets.")
    overhead_gb: float = Field(description="Allocator reserve and the CUDA context.")
    allocated_gb: float = Field(description="Tensors alone (torch.cuda.max_memory_allocated).")
    reserved_gb: float = Field(description="With the allocator reserve (max_memory_reserved).")
    peak_gb: float = Field(description="On the device, CUDA context included (nvidia-smi).")
    trainable_params: int


def estimate_memory(
    shape: ModelShape,
    plan: TrainingPlan,
    gpu: Gpu,
    config: DeploymentConfig,
    *,
    gpu_count: int = 1,
    longest: int | None = None,
) -> MemoryBreakdown:
    """Peak memory of one of `gpu_count` data-parallel processes training `shape` with `plan`,
    on batches padded to `longest` tokens (the data's longest example; None: max_seq_length)."""
    weight_bytes = trainable_bytes(plan, gpu, config)
    return memory_at(shape, plan, config, weight_bytes, gpu_count > 1, longest=longest)


def memory_at(
    shape: ModelShape,
    plan: TrainingPlan,
    config: DeploymentConfig,
    weight_bytes: float,
    data_parallel: bool,
    *,
    longest: int | None = None,
) -> MemoryBreakdown:
    """estimate_memory with the GPU reduced to what the memory depends on: the bytes per trained
    weight (trainable_bytes) and whether processes share the work (each holds the whole model,
    whatever their number). Targets that agree on both share it."""
    mem = config.memory
    optimizer = config.optimizers[plan.optimizer]
    state_bytes = optimizer.state_bytes or weight_bytes

    act = activation_bytes(plan, weight_bytes)
    casts = 0.0
    if plan.kind == "full":
        trainable = shape.params
        weights = shape.params * weight_bytes
        adapter_weights = 0.0
        if weight_bytes > HALF_BYTES and (plan.bf16 or plan.fp16):
            # autocast caches a 16-bit copy of every matmul weight until the forward ends
            casts = (shape.block_linear_params + shape.vocab * shape.hidden) * HALF_BYTES
    else:
        trainable = plan.adapter_params(shape)
        weights = _frozen_weight_bytes(shape, plan, config)
        adapter_weights = trainable * weight_bytes
    if plan.reference_copy:  # in the compute dtype (train.py), else like the model (TRL)
        weights += shape.params * _reference_bytes(plan, weight_bytes)
    gradients = trainable * weight_bytes
    states = trainable * optimizer.states * state_bytes

    tokens = plan.batch_size * plan.sequence_tokens(longest) * plan.sequences_per_example
    activations = tokens * _saved_per_token(shape, plan, act, mem.norm_saved_bytes, weight_bytes)
    logits = _logits_bytes(shape, plan, tokens, act, config)
    buffers = 0.0
    if plan.kind == "qlora":
        # bitsandbytes dequantises one weight at a time to the compute dtype for its matmul
        buffers += max(shape.module_params(m) for m in shape.linear_modules) * act
    if data_parallel:
        buffers += gradients  # DDP's flat gradient buckets (gradient_as_bucket_view=False)

    backward = max(activations + casts + logits, gradients)
    allocated = weights + adapter_weights + states + backward + buffers
    reserved = allocated * (1 + mem.allocator_overhead)
    peak = reserved + mem.cuda_context_gb * GIB
    return MemoryBreakdown(
        weights_gb=weights / GIB,
        trainable_gb=adapter_weights / GIB,
        gradients_gb=gradients / GIB,
        optimizer_gb=states / GIB,
        activations_gb=(activations + casts) / GIB,
        logits_gb=logits / GIB,
        buffers_gb=buffers / GIB,
        overhead_gb=(peak - allocated) / GIB,
        allocated_gb=allocated / GIB,
        reserved_gb=reserved / GIB,
        peak_gb=peak / GIB,
        trainable_params=trainable,
    )


def _logits_bytes(
    shape: ModelShape, plan: TrainingPlan, tokens: int, act: float, config: DeploymentConfig
) -> float:
    """What the loss keeps of the output logits, by the trainer's loss implementation.

    - transformers' loss (sft_loss nll): the full logits and their fp32 copies
      (memory.logits_bytes_per_value per value);
    - TRL's chunked_nll: one chunk of label tokens at a time, recomputed in backward, plus the
      reordered hidden states the chunks read;
    - DPO / KTO (TRL's selective_log_softmax, row by row): the 16-bit logits, each row's
      log-softmax kept for backward, the reference's logits and the rows' gradients.

    Computed in fp32 (`act` 4 bytes), the logits need no fp32 copy (.float() returns them): the
    16-bit output and its 4-byte copy of the nll losses are one 4-byte tensor, 2 bytes fewer a
    value; the preference losses' 16-bit values all double.
    """
    mem = config.memory
    if plan.method != "sft":
        return tokens * shape.vocab * mem.preference_logits_bytes_per_value * act / HALF_BYTES
    no_copy = HALF_BYTES if act >= FP32_BYTES else 0
    if plan.sft_loss == "chunked_nll":
        chunk = min(tokens, mem.chunked_nll_chunk_tokens)
        return (
            chunk * shape.vocab * (mem.chunked_nll_bytes_per_value - no_copy)
            + tokens * shape.hidden * act
        )
    return tokens * shape.vocab * (mem.logits_bytes_per_value - no_copy)


def usable_gb(gpu: Gpu, config: DeploymentConfig) -> float:
    """What one process may allocate on `gpu`: its memory less the ECC and driver reserve."""
    return gpu.memory_gb * config.memory.usable_fraction


def activation_bytes(plan: TrainingPlan, weight_bytes: float) -> float:
    """Bytes per activation value: 16-bit under bf16/fp16 autocast, else the dtype the model
    computes in - full fine-tuning's weights (`weight_bytes`), LoRA's frozen base, QLoRA's
    dequantised blocks."""
    if plan.bf16 or plan.fp16:
        return HALF_BYTES
    return weight_bytes if plan.kind == "full" else base_bytes(plan)


def base_bytes(plan: TrainingPlan) -> float:
    """Bytes per value of a frozen base (LoRA) or what 4-bit blocks dequantise to (QLoRA):
    plan.weights_dtype, auto being the checkpoint's 16 bits."""
    return HALF_BYTES if plan.weights_dtype == "auto" else DTYPE_BYTES[plan.weights_dtype]


def _reference_bytes(plan: TrainingPlan, weight_bytes: float) -> float:
    """Bytes per parameter of the reference copy: the compute dtype's, or the weights'."""
    if plan.reference_in_compute_dtype:
        return HALF_BYTES if plan.bf16 or plan.fp16 else FP32_BYTES
    return weight_bytes


def trainable_bytes(plan: TrainingPlan, gpu: Gpu, config: DeploymentConfig) -> float:
    """Bytes per trained weight (and per gradient value).

    Full fine-tuning keeps its weights in plan.weights_dtype (the package: fp32 master weights,
    configs/package.yaml run). "auto" is the checkpoint's dtype: bf16 weights under bf16
    (transformers' and TRL's dtype="auto"); without bf16, fp16 mixed precision needs fp32
    master weights (torch.amp.GradScaler refuses fp16 gradients). AdamW's states follow the
    weights. LoRA adapters train in `memory.adapter_bytes` over a frozen base either way.
    """
    if plan.kind != "full":
        return config.memory.adapter_bytes
    if plan.weights_dtype != "auto":
        return DTYPE_BYTES[plan.weights_dtype]
    return HALF_BYTES if plan.bf16 and gpu.bf16 else FP32_BYTES


def _frozen_weight_bytes(shape: ModelShape, plan: TrainingPlan, config: DeploymentConfig) -> float:
    """The frozen base: in its dtype (base_bytes), or NF4 projections with embeddings, head and
    norms kept wider.

    QLoRA: bitsandbytes quantises every decoder nn.Linear; the embeddings and the output head
    (transformers keeps lm_head out of quantisation) and the norms stay unquantised, and PEFT's
    prepare_model_for_kbit_training (called by TRL's SFTTrainer for 4-bit models) upcasts those
    to fp32.
    """
    if plan.kind != "qlora":
        return shape.params * base_bytes(plan)
    mem = config.memory
    bits = (
        mem.nf4_double_quant_bits_per_param
        if plan.bnb_4bit_use_double_quant
        else mem.nf4_bits_per_param
    )
    quantised = shape.block_linear_params * bits / BITS_PER_BYTE
    return quantised + shape.unquantised_params * FP32_BYTES


def _saved_per_token(
    shape: ModelShape, plan: TrainingPlan, act: float, norm_bytes: float, adapter_bytes: float
) -> float:
    """Bytes of activations alive at the start of backward, per token of a micro-batch.

    Without checkpointing every layer keeps what its ops saved. With it, only each layer's
    input (h values) stays, and one layer at a time is recomputed in full during backward.
    The final norm and the output head's input are kept either way.
    """
    h = shape.hidden
    layer = _saved_per_token_layer(shape, plan, act, norm_bytes, adapter_bytes)
    final = norm_bytes * h + (act * h if plan.kind == "full" else 0)
    if plan.gradient_checkpointing:
        return shape.layers * act * h + layer + final
    return shape.layers * layer + final


def _saved_per_token_layer(
    shape: ModelShape, plan: TrainingPlan, act: float, norm_bytes: float, adapter_bytes: float
) -> float:
    """What one decoder layer saves for backward, per token, op by op (`act` bytes a value, 2
    in the list below):

    - each RMSNorm keeps its fp32-upcast input (`norm_bytes` x h); with trainable norm weights
      (full fine-tuning) also its normalised output (2h);
    - attention keeps q, k, v and its output (2 x (2 H*d + 2 K*d); flash/SDPA kernels keep no
      s x s matrix, so Korthikanti's 5as/h term is gone);
    - the gated MLP keeps gate's output (SiLU's input), SiLU's output and up's output (3 x 2I);
      an ungated one keeps up's output (2I);
    - a projection whose weight trains keeps its input: once per input tensor for full
      fine-tuning (q, k, v share theirs, as gate and up do); LoRA (PEFT) casts the input to the
      adapter's dtype per adapted projection and keeps that copy, plus A's output (r values).
    """
    h, i = shape.hidden, shape.intermediate
    inputs = {"attn": h, "o": shape.q_dim, "mlp": h, "down": i}
    group = {
        "q_proj": "attn",
        "k_proj": "attn",
        "v_proj": "attn",
        "o_proj": "o",
        "gate_proj": "mlp",
        "up_proj": "mlp",
        "down_proj": "down",
    }
    saved = 2 * norm_bytes * h
    saved += act * (2 * shape.q_dim + 2 * shape.kv_dim)
    gated = "gate_proj" in shape.mlp_modules
    saved += act * i * (3 if gated else 1)
    if plan.kind == "full":
        saved += 2 * act * h  # the two norms' outputs
        saved += act * sum(inputs.values())
        return saved
    for module in plan.lora_modules(shape):
        saved += adapter_bytes * (inputs[group[module]] + (plan.lora_r or 0))
    return saved
