"""The estimator against published fine-tuning measurements.

tests/data/published_runs.yaml holds torchtune, LitGPT, Unsloth and PEFT rows;
tests/data/hf_stack_runs.yaml holds Hugging Face stack runs (transformers Trainer / TRL with
PEFT) and runs reported out of memory. The issue's targets: peak memory within 20% and time within
35% of each measurement, and every out-of-memory run predicted not to fit its GPU. A row the
estimator cannot meet honestly carries `known_miss` (memory, speed or fits) with its reason and
runs as a strict expected failure, so it is reported, and flagged the day it starts to pass.

`uv run python -m tests.test_deployment_accuracy` prints the table below from the current
estimator; rerun it after changing the estimator or a row. Each row: its id and source (details
in the YAML), then per measurement: kind, measured, estimated, ratio (estimate / measurement; for
speed, estimated time / measured time), status. Memory in GiB (2^30 bytes), speed in tokens/s; an
OOM row's "measured" is the memory its GPU lets a process allocate, "estimated" the predicted peak.

Estimator of main at f9b44ea:

peft-metamathqa-lora-r32-qv-l40s - huggingface/peft lora--llama-3.2-3B-rank32.json
    memory          20.8 GiB     22.1 GiB   1.06  pass
    speed         4457 tok/s   4249 tok/s   1.05  pass
peft-metamathqa-lora-r64-qv-l40s - huggingface/peft lora--llama-3.2-3B-rank64.json
    memory          21.0 GiB     22.2 GiB   1.06  pass
    speed         4343 tok/s   4220 tok/s   1.03  pass
peft-metamathqa-lora-r10-mlp-l40s - huggingface/peft lora--llama-3.2-3B-rank10-target-mlp.json
    memory          23.0 GiB     24.9 GiB   1.08  pass
    speed         3997 tok/s   4248 tok/s   0.94  pass
peft-metamathqa-full-l40s - huggingface/peft full-finetuning--llama-3.2-3B-lr_0.00001.json
    memory          36.2 GiB     36.9 GiB   1.02  pass
    speed         1955 tok/s   2084 tok/s   0.94  pass
torchtune-3b-full-packed-a100 - pytorch/torchtune README.md
    memory          60.0 GiB     61.1 GiB   1.02  pass
    speed         7075 tok/s   6730 tok/s   1.05  pass
torchtune-3b-lora-a100 - pytorch/torchtune README.md
    memory           8.5 GiB     23.5 GiB   2.77  xfail (known_miss)
    speed         8210 tok/s   7245 tok/s   1.13  pass
torchtune-3b-qlora-a100 - pytorch/torchtune README.md
    memory           4.6 GiB     20.4 GiB   4.43  xfail (known_miss)
    speed         8035 tok/s   4971 tok/s   1.62  xfail (known_miss)
torchtune-8b-lora-4090 - pytorch/torchtune README.md
    memory          16.2 GiB     23.6 GiB   1.45  xfail (known_miss)
    speed         3083 tok/s   1446 tok/s   2.13  xfail (known_miss)
torchtune-8b-lora-a6000 - pytorch/torchtune README.md
    memory          30.3 GiB     23.6 GiB   0.78  xfail (known_miss)
    speed         4699 tok/s   1355 tok/s   3.47  xfail (known_miss)
torchtune-8b-qlora-4090 - pytorch/torchtune README.md
    memory           7.4 GiB     16.6 GiB   2.25  xfail (known_miss)
    speed         2413 tok/s    989 tok/s   2.44  xfail (known_miss)
torchtune-8b-full-a6000 - pytorch/torchtune README.md
    memory          37.4 GiB     44.9 GiB   1.20  pass
    speed         2579 tok/s    913 tok/s   2.82  xfail (known_miss)
unsloth-8b-qlora-hf-12gb - unslothai/unsloth README.md
    memory          12.0 GiB     11.2 GiB   0.93  pass
unsloth-8b-qlora-hf-16gb - unslothai/unsloth README.md
    memory          16.0 GiB     15.1 GiB   0.94  pass
unsloth-8b-qlora-hf-24gb - unslothai/unsloth README.md
    memory          24.0 GiB     22.8 GiB   0.95  pass
unsloth-8b-qlora-hf-40gb - unslothai/unsloth README.md
    memory          40.0 GiB     38.2 GiB   0.96  pass
unsloth-8b-qlora-hf-48gb - unslothai/unsloth README.md
    memory          48.0 GiB     45.9 GiB   0.96  pass
unsloth-8b-qlora-hf-80gb - unslothai/unsloth README.md
    memory          80.0 GiB     76.8 GiB   0.96  pass
unsloth-8b-qlora-hf-8gb-oom - unslothai/unsloth README.md
    fits      OOM at 7.4 GiB      9.6 GiB   1.29  pass
unsloth-70b-qlora-hf-80gb - unslothai/unsloth README.md
    memory          80.0 GiB     73.4 GiB   0.92  pass
unsloth-70b-qlora-hf-48gb-oom - unslothai/unsloth README.md
    fits     OOM at 44.6 GiB     49.1 GiB   1.10  pass
litgpt-llama3-8b-lora-a10g - Lightning-AI/litgpt README.md
    memory          18.4 GiB     18.6 GiB   1.01  pass
litgpt-llama3-8b-qlora-a10g - Lightning-AI/litgpt README.md
    memory          16.2 GiB     14.8 GiB   0.91  pass
litgpt-llama2-7b-lora-a10g - Lightning-AI/litgpt README.md
    memory          18.4 GiB     18.2 GiB   0.99  pass
litgpt-llama2-7b-qlora-a10g - Lightning-AI/litgpt README.md
    memory          12.7 GiB     10.1 GiB   0.79  xfail (known_miss)
litgpt-mistral-7b-lora-a10g - Lightning-AI/litgpt README.md
    memory          19.2 GiB     19.3 GiB   1.01  pass
litgpt-mistral-7b-qlora-a10g - Lightning-AI/litgpt README.md
    memory          13.3 GiB     10.6 GiB   0.80  xfail (known_miss)
litgpt-llama32-3b-lora-a10g - Lightning-AI/litgpt README.md
    memory           9.0 GiB      8.5 GiB   0.94  pass
litgpt-llama32-3b-qlora-a10g - Lightning-AI/litgpt README.md
    memory           9.6 GiB      7.9 GiB   0.82  pass
litgpt-llama32-3b-full-a10g - Lightning-AI/litgpt README.md
    memory          15.4 GiB     28.7 GiB   1.87  xfail (known_miss)
litgpt-llama32-1b-lora-a10g - Lightning-AI/litgpt README.md
    memory           4.2 GiB      3.9 GiB   0.93  pass
litgpt-llama32-1b-full-a10g - Lightning-AI/litgpt README.md
    memory           8.1 GiB     13.8 GiB   1.70  xfail (known_miss)
litgpt-gemma-7b-lora-a10g-oom - Lightning-AI/litgpt README.md
    fits     OOM at 22.3 GiB     25.6 GiB   1.15  pass
litgpt-llama31-8b-full-a10g-oom - Lightning-AI/litgpt README.md
    fits     OOM at 22.3 GiB     66.5 GiB   2.98  pass
qwen-1.8b-lora-256-a100 - QwenLM/Qwen README.md
    memory           6.7 GiB      5.5 GiB   0.83  pass
    speed         2048 tok/s   1882 tok/s   1.09  pass
qwen-1.8b-lora-2048-a100 - QwenLM/Qwen README.md
    memory          11.0 GiB      9.8 GiB   0.89  pass
    speed         9638 tok/s   9021 tok/s   1.07  pass
qwen-1.8b-lora-8192-a100 - QwenLM/Qwen README.md
    memory          21.8 GiB     24.5 GiB   1.12  pass
    speed         9638 tok/s  13066 tok/s   0.74  pass
qwen-1.8b-qlora-gptq-8192-a100 - QwenLM/Qwen README.md
    memory          15.8 GiB     23.9 GiB   1.51  xfail (known_miss)
    speed        10082 tok/s   8960 tok/s   1.13  pass
qwen-1.8b-full-256-a100 - QwenLM/Qwen README.md
    memory          43.5 GiB     15.3 GiB   0.35  xfail (known_miss)
qwen-7b-lora-256-a100 - QwenLM/Qwen README.md
    memory          20.1 GiB     18.7 GiB   0.93  pass
    speed         1707 tok/s    400 tok/s   4.27  xfail (known_miss)
qwen-7b-lora-1024-a100 - QwenLM/Qwen README.md
    memory          21.5 GiB     20.7 GiB   0.96  pass
    speed         2926 tok/s   1271 tok/s   2.30  xfail (known_miss)
qwen-7b-lora-4096-a100 - QwenLM/Qwen README.md
    memory          29.7 GiB     29.0 GiB   0.98  pass
    speed         3244 tok/s   2686 tok/s   1.21  pass
qwen-7b-lora-8192-a100 - QwenLM/Qwen README.md
    memory          36.6 GiB     40.1 GiB   1.09  pass
    speed         3077 tok/s   3121 tok/s   0.99  pass
qwen-7b-qlora-gptq-256-a100 - QwenLM/Qwen README.md
    memory          11.5 GiB     11.6 GiB   1.01  pass
    speed          683 tok/s    274 tok/s   2.49  xfail (known_miss)
qwen-7b-qlora-gptq-4096-a100 - QwenLM/Qwen README.md
    memory          16.9 GiB     21.9 GiB   1.30  xfail (known_miss)
    speed         2825 tok/s   1842 tok/s   1.53  xfail (known_miss)
qwen-14b-lora-256-a100 - QwenLM/Qwen README.md
    memory          34.6 GiB     33.0 GiB   0.95  pass
    speed         1280 tok/s    211 tok/s   6.06  xfail (known_miss)
qwen-14b-lora-8192-a100 - QwenLM/Qwen README.md
    memory          55.2 GiB     55.9 GiB   1.01  pass
    speed         1820 tok/s   1697 tok/s   1.07  pass
qwen-14b-qlora-gptq-2048-a100 - QwenLM/Qwen README.md
    memory          19.9 GiB     22.4 GiB   1.13  pass
    speed         1388 tok/s    722 tok/s   1.92  xfail (known_miss)
peft-metamathqa-rslora-r64-qv-l40s - huggingface/peft lora--llama-3.2-3B-rank64-rslora.json
    memory          21.0 GiB     22.2 GiB   1.06  pass
    speed         4348 tok/s   4220 tok/s   1.03  pass
peft-bloomz-7b1-lora-fp32-a100 - huggingface/peft README.md
    memory          29.8 GiB     17.0 GiB   0.57  xfail (known_miss)
peft-bloomz-7b1-full-fp32-a100-oom - huggingface/peft README.md
    fits     OOM at 74.4 GiB    114.3 GiB   1.54  pass
trl-3168-qwen2.5-0.5b-dpo-full-fp32-a100-oom - huggingface/trl #3168
    fits     OOM at 74.4 GiB     66.0 GiB   0.89  xfail (known_miss)
llama-cookbook-413-llama2-7b-full-fp32-a100-oom - meta-llama/llama-cookbook #413
    fits     OOM at 74.4 GiB    192.2 GiB   2.58  pass
stanford-alpaca-221-llama-7b-full-fp16-amp-a100-oom - tatsu-lab/stanford_alpaca #221
    fits     OOM at 74.4 GiB    108.9 GiB   1.46  pass
"""

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from server.settings import Settings, load_settings
from tools.deployment_estimator.memory import GIB, MemoryBreakdown, estimate_memory, usable_gb
from tools.deployment_estimator.plan import TrainingPlan
from tools.deployment_estimator.shapes import ModelShape
from tools.deployment_estimator.throughput import estimate_time
from tools.model_browser.config import Architecture

MEMORY_TOLERANCE = 0.20
TIME_TOLERANCE = 0.35
UNIT_BYTES = {"B": 1, "GB": 1e9, "GiB": GIB}
DATA = Path(__file__).parent / "data"
TABLES = ("published_runs.yaml", "hf_stack_runs.yaml")
RUNS_BY_TABLE: dict[str, list[dict[str, Any]]] = {
    name: yaml.safe_load((DATA / name).read_text(encoding="utf-8"))["runs"] for name in TABLES
}
RUNS = [row for rows in RUNS_BY_TABLE.values() for row in rows]
HF_STACK_RUNS = RUNS_BY_TABLE["hf_stack_runs.yaml"]
# The issue asks for at least 15 Hugging Face stack measurements and 3 out-of-memory runs.
MIN_HF_MEASUREMENTS = 15
MIN_HF_OUT_OF_MEMORY = 3


@dataclass(frozen=True)
class Check:
    """One comparison of a row with the estimate: what was measured, what is estimated."""

    measured: float
    estimated: float
    passed: bool

    @property
    def ratio(self) -> float:
        return self.estimated / self.measured


def _miss(row: dict[str, Any], kind: str) -> str | None:
    return (row.get("known_miss") or {}).get(kind)


def _cases(kind: str, selected: Any) -> list[Any]:
    """pytest params for the rows `selected` picks, known misses of `kind` as strict xfails."""
    cases = []
    for row in RUNS:
        if not selected(row):
            continue
        miss = _miss(row, kind)
        marks = [pytest.mark.xfail(strict=True, reason=miss)] if miss else []
        cases.append(pytest.param(row, id=row["id"], marks=marks))
    return cases


def _shape(row: dict[str, Any], settings: Settings) -> ModelShape:
    if row.get("model"):
        model = next(m for m in settings.models.popular if m.id == row["model"])
        return ModelShape(model.architecture, model.params)
    return ModelShape(Architecture.model_validate(row["architecture"]), row["params"])


def _measured_metric(memory: MemoryBreakdown, metric: str) -> float:
    """The estimate comparable with what the source measured."""
    return {
        "allocated": memory.allocated_gb,
        "reserved": memory.reserved_gb,
        "device": memory.peak_gb,
    }[metric]


def memory_check(row: dict[str, Any], settings: Settings) -> Check:
    config = settings.deployment
    memory = estimate_memory(
        _shape(row, settings), TrainingPlan(**row["training"]), config.gpus[row["gpu"]], config
    )
    measured = row["memory"]["value"] * UNIT_BYTES[row["memory"]["unit"]] / GIB
    estimated = _measured_metric(memory, row["memory"]["metric"])
    return Check(measured, estimated, abs(estimated / measured - 1) <= MEMORY_TOLERANCE)


def speed_check(row: dict[str, Any], settings: Settings) -> Check:
    """Tokens per second; `ratio` is estimated time over measured time."""
    config, speed = settings.deployment, row["speed"]
    measured = speed.get("tokens_per_second") or speed["train_tokens"] / speed["seconds"]
    tokens = speed.get("train_tokens", round(measured * 3600))
    estimate = estimate_time(
        _shape(row, settings),
        TrainingPlan(**row["training"]),
        config.gpus[row["gpu"]],
        config,
        train_tokens=tokens,
        example_tokens=speed["example_tokens"],
    )
    error = estimate.training_hours * 3600 / (tokens / measured) - 1
    return Check(measured, estimate.tokens_per_second, abs(error) <= TIME_TOLERANCE)


def out_of_memory_check(row: dict[str, Any], settings: Settings) -> Check:
    """measured: what the GPU lets one process allocate; estimated: the predicted peak."""
    config = settings.deployment
    gpu = config.gpus[row["gpu"]] if row.get("gpu") else None
    capacity = usable_gb(gpu, config) if gpu else row["vram_gb"] * config.memory.usable_fraction
    reference_gpu = gpu or config.gpus["A100-80GB"]  # only its bf16 support matters here
    memory = estimate_memory(
        _shape(row, settings), TrainingPlan(**row["training"]), reference_gpu, config
    )
    return Check(capacity, memory.peak_gb, memory.peak_gb > capacity)


def test_the_tables_have_enough_sourced_rows() -> None:
    assert len({row["id"] for row in RUNS}) == len(RUNS), "row ids must be unique"
    for row in RUNS:
        assert row["source"].strip(), row["id"]
        assert row.get("memory") or row.get("speed") or row.get("fits") is False, row["id"]
    for row in HF_STACK_RUNS:
        assert row["stack"].strip(), f"{row['id']}: say how its stack differs from the package's"
    measured = [r for r in HF_STACK_RUNS if r.get("memory") or r.get("speed")]
    assert len(measured) >= MIN_HF_MEASUREMENTS
    assert len([r for r in HF_STACK_RUNS if r.get("fits") is False]) >= MIN_HF_OUT_OF_MEMORY


@pytest.mark.parametrize("row", _cases("memory", lambda r: r.get("memory")))
def test_peak_memory_is_within_20_percent(row: dict[str, Any], settings: Settings) -> None:
    check = memory_check(row, settings)
    assert check.passed, (
        f"{row['id']}: estimated {check.estimated:.2f} GiB, measured {check.measured:.2f} "
        f"({check.ratio - 1:+.0%})"
    )


@pytest.mark.parametrize("row", _cases("speed", lambda r: r.get("speed")))
def test_time_is_within_35_percent(row: dict[str, Any], settings: Settings) -> None:
    check = speed_check(row, settings)
    assert check.passed, (
        f"{row['id']}: estimated {check.estimated:.0f} tokens/s, measured {check.measured:.0f} "
        f"(time {1 / check.ratio - 1:+.0%})"
    )


@pytest.mark.parametrize("row", _cases("fits", lambda r: r.get("fits") is False))
def test_runs_reported_out_of_memory_do_not_fit(row: dict[str, Any], settings: Settings) -> None:
    check = out_of_memory_check(row, settings)
    assert check.passed, f"{row['id']}: {check.estimated:.1f} GiB of {check.measured:.1f}"


def _short_source(source: str) -> str:
    """The repository and the file or issue a row cites, for the table."""
    repo, *rest = source.split()
    if rest and rest[0] == "issue":
        return f"{repo} {rest[1]}"
    return f"{repo} {Path(rest[0].rstrip(',:')).name}" if rest else repo


def accuracy_table(settings: Settings) -> str:
    """The module docstring's table, from the estimator: per row, one line per measurement."""
    checks = (
        ("memory", lambda r: r.get("memory"), memory_check, "GiB", "{:.1f}"),
        ("speed", lambda r: r.get("speed"), speed_check, "tok/s", "{:.0f}"),
        ("fits", lambda r: r.get("fits") is False, out_of_memory_check, "GiB", "{:.1f}"),
    )
    lines = []
    for row in RUNS:
        lines.append(f"{row['id']} - {_short_source(row['source'])}")
        for kind, selected, check_of, unit, number in checks:
            if not selected(row):
                continue
            check = check_of(row, settings)
            ratio = 1 / check.ratio if kind == "speed" else check.ratio
            status = "pass" if check.passed else "FAIL"
            if _miss(row, kind):
                status = "xpass: strict, fails" if check.passed else "xfail (known_miss)"
            measured = f"{number.format(check.measured)} {unit}"
            if kind == "fits":
                measured = f"OOM at {measured}"
            estimated = f"{number.format(check.estimated)} {unit}"
            lines.append(f"    {kind:<7}{measured:>17}{estimated:>13}{ratio:>7.2f}  {status}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(accuracy_table(load_settings()) + "\n")
