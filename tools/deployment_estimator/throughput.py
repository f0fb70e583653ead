"""How long training takes on a GPU: training FLOPs over achievable FLOP/s, plus the optimizer.

Sources for the FLOPs:
- A matmul with a weight of P values costs 2P FLOPs per token forward; backward costs 2P for
  the input's gradient and 2P for the weight's (Kaplan et al. 2020, arXiv 2001.08361, section
  2.1; "Transformer Math 101", EleutherAI 2023: C = 6 N D). Frozen weights (LoRA, QLoRA) skip the
  weight-gradient half, so adapter training costs ~4N per token.
- Causal attention with a fused kernel multiplies QK^T and PV over s/2 keys on average:
  2 * 2 * (s/2) * H*d = 2 s H*d FLOPs per token and layer forward, twice that backward
  (Korthikanti et al. 2022, arXiv 2205.05198, appendix; FlashAttention skips the masked half).
- Gradient checkpointing recomputes every decoder layer's forward once more in backward
  (Chen et al. 2016, arXiv 1604.06174): +2N per token (the output head is not checkpointed).
- DPO (TRL) also runs the frozen reference model forward over every sequence: +2N per token.
  KTO (TRL) runs three forwards without gradients per trained token (the policy over the
  mismatched completion of its KL term, the reference over both): +6N per token.
"""

from dataclasses import dataclass

from tools.deployment_estimator.config import DeploymentConfig, Gpu, Method
from tools.deployment_estimator.memory import trainable_bytes
from tools.deployment_estimator.padding import expected_batch_longest
from tools.deployment_estimator.plan import TrainingPlan
from tools.deployment_estimator.shapes import ModelShape

TERA = 1e12
GIGA = 1e9
MICRO = 1e-6
SECONDS_PER_HOUR = 3600


@dataclass(frozen=True, slots=True)
class TimeEstimate:
    training_hours: float  # training alone, every epoch, no start-up
    tokens_per_second: float  # training tokens per second, all GPUs
    flops_per_token: float
    mfu: float  # model FLOPs utilisation assumed for this micro-batch
    micro_batch_tokens: int
    optimizer_steps: int


def training_flops_per_token(shape: ModelShape, plan: TrainingPlan, seq_len: int) -> float:
    """Hardware FLOPs per trained token, recomputation included (see the module's sources)."""
    head = shape.vocab * shape.hidden  # the output projection runs whether or not it is tied
    blocks = shape.active_block_linear_params
    attention = 2 * seq_len * shape.q_dim * shape.layers
    adapters = plan.adapter_params(shape)
    forward = 2 * (blocks + head) + attention + 2 * adapters
    if plan.kind == "full":
        backward = 4 * (blocks + head) + 2 * attention
    else:
        backward = 2 * (blocks + head) + 2 * attention + 4 * adapters
    total = forward + backward
    if plan.gradient_checkpointing:
        total += 2 * (blocks + adapters) + attention
    total += plan.no_grad_forwards * (2 * (blocks + head) + attention)
    return total


@dataclass(frozen=True)
class Compute:
    """What a run asks of any GPU, worked out once for all the targets an estimate compares."""

    micro_batch_tokens: int
    flops_per_token: float
    hidden: int  # the model's width: how much work each matmul of the micro-batch holds
    kind: Method
    total_tokens: float  # every epoch
    trainable_params: int  # what each optimizer step updates
    padding: float = 1.0  # tokens the micro-batches run per token of data (batches padded)


def run_compute(
    shape: ModelShape,
    plan: TrainingPlan,
    config: DeploymentConfig,
    *,
    train_tokens: int,
    example_tokens: int | None,
    histogram: tuple[tuple[int, int], ...] | None = None,
) -> Compute:
    """The micro-batch, its FLOPs per token, the tokens and the trained weights. With the
    data's length `histogram` (and no packing), each micro-batch's sequences are padded to the
    expected longest of its random examples (padding.py); without, they hold the mean example."""
    seq_len = min(plan.max_seq_length, example_tokens or plan.max_seq_length)
    padded: float = seq_len
    if histogram and example_tokens and not plan.packing:
        longest = expected_batch_longest(list(histogram), plan.batch_size, plan.max_seq_length)
        padded = max(float(seq_len), longest)
    run_len = round(padded)
    return Compute(
        micro_batch_tokens=plan.batch_size * run_len * plan.sequences_per_example,
        flops_per_token=training_flops_per_token(shape, plan, run_len),
        hidden=shape.hidden,
        kind=plan.kind,
        total_tokens=train_tokens * plan.num_epochs,
        trainable_params=shape.params if plan.kind == "full" else plan.adapter_params(shape),
        padding=run_len / seq_len,
    )


def estimate_time(
    shape: ModelShape,
    plan: TrainingPlan,
    gpu: Gpu,
    config: DeploymentConfig,
    *,
    train_tokens: int,
    example_tokens: int | None,
    gpu_count: int = 1,
) -> TimeEstimate:
    """Training time of `train_tokens` x num_epochs on `gpu_count` data-parallel GPUs."""
    compute = run_compute(
        shape, plan, config, train_tokens=train_tokens, example_tokens=example_tokens
    )
    return time_on(compute, plan, gpu, config, gpu_count=gpu_count)


def time_on(
    compute: Compute,
    plan: TrainingPlan,
    gpu: Gpu,
    config: DeploymentConfig,
    *,
    gpu_count: int = 1,
) -> TimeEstimate:
    """How long `compute` takes on `gpu_count` data-parallel `gpu`s.

    A micro-batch runs at model_flops_utilisation (see there). Each optimizer step streams
    weights, gradients and states through memory once: 2w (read, write weights) + g (read
    gradients) + 2 x states x bytes (read, write states).
    """
    efficiency = config.efficiency
    micro_tokens = compute.micro_batch_tokens
    mfu = model_flops_utilisation(compute, gpu, config)
    micro_seconds = micro_tokens * compute.flops_per_token / (gpu.bf16_tflops * TERA * mfu)

    total_tokens = compute.total_tokens
    micro_steps = total_tokens * compute.padding / micro_tokens / gpu_count
    optimizer_steps = micro_steps / plan.gradient_accumulation_steps
    step_seconds = _optimizer_step_bytes(compute.trainable_params, plan, gpu, config) / (
        gpu.bandwidth_gb_s * GIGA * efficiency.memory_bound_efficiency
    )
    seconds = micro_steps * micro_seconds + optimizer_steps * step_seconds
    if gpu_count > 1:
        seconds /= efficiency.data_parallel_efficiency
    return TimeEstimate(
        training_hours=seconds / SECONDS_PER_HOUR,
        tokens_per_second=total_tokens / seconds,
        flops_per_token=compute.flops_per_token,
        mfu=mfu,
        micro_batch_tokens=micro_tokens,
        optimizer_steps=max(1, round(optimizer_steps)),
    )


def model_flops_utilisation(compute: Compute, gpu: Gpu, config: DeploymentConfig) -> float:
    """The share of `gpu`'s peak a micro-batch's FLOPs F run at: its time is three costs,

        F / (mfu x peak)            the matmuls, at the rate large micro-batches saturate to;
        F / (T h^2) x latency       fixed costs per matmul (kernel launches, Python dispatch),
                                    which a micro-batch of T tokens amortises in proportion to
                                    T h^2, the work each of its h-wide matmuls holds: wider
                                    models saturate at fewer tokens;
        F x bytes / (h x bandwidth) the memory-bound elementwise ops (norms, activations,
                                    residuals, casts), which move ~h values per token where the
                                    matmuls do ~h^2 FLOPs, so narrow models on GPUs with much
                                    compute per byte of bandwidth lose most.

    Constants and the rows they were fitted on: configs/deployment.yaml `efficiency`.
    """
    efficiency = config.efficiency
    peak = gpu.bf16_tflops * TERA
    work = compute.micro_batch_tokens * compute.hidden**2
    seconds_per_flop = (
        1 / (efficiency.mfu[compute.kind] * peak)
        + efficiency.launch_latency_us * MICRO / work
        + efficiency.elementwise_bytes / (compute.hidden * gpu.bandwidth_gb_s * GIGA)
    )
    return 1 / (seconds_per_flop * peak)


def _optimizer_step_bytes(
    trainable: int, plan: TrainingPlan, gpu: Gpu, config: DeploymentConfig
) -> float:
    """Bytes one optimizer step moves: trainable weights, their gradients and states."""
    weight_bytes = trainable_bytes(plan, gpu, config)
    optimizer = config.optimizers[plan.optimizer]
    state_bytes = optimizer.state_bytes or weight_bytes
    return trainable * (3 * weight_bytes + 2 * optimizer.states * state_bytes)
