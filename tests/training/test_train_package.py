"""The proof that a package trains: a draft built with the real tools is finalized, then the
package's own train.py runs two optimizer steps on the CPU, on the package's own data, with a
tiny randomly initialised model of the selected architecture family (no download).

Every template is proven: lora, full, dpo and kto train; qlora, whose 4-bit base needs CUDA,
refuses the CPU with the reason, as its package promises.

Runs in the training environment, whose Python is .venv-train/bin/python (or the one
$TRAINING_PACKAGE_TRAIN_PYTHON names); tests/training/requirements.txt says how to make it.
Marked `training`: slow (tens of seconds per case), so kept out of the fast suite.
"""

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.support import connect
from tests.test_package_mcp import DATA, call, complete_draft, package_settings

REPO = Path(__file__).parents[2]
TRAIN_PYTHON = Path(
    os.environ.get("TRAINING_PACKAGE_TRAIN_PYTHON") or REPO / ".venv-train" / "bin" / "python"
)
TINY_MODEL = Path(__file__).with_name("tiny_model.py")
SAMPLES = REPO / "samples"
STEPS = 2
RUN_TIMEOUT_S = 600

pytestmark = [
    pytest.mark.training,
    pytest.mark.skipif(
        not TRAIN_PYTHON.is_file(),
        reason=f"no training environment at {TRAIN_PYTHON}: create it as "
        "tests/training/requirements.txt says, or set TRAINING_PACKAGE_TRAIN_PYTHON",
    ),
]


def run(*args: object, env: dict[str, str], expect: int = 0) -> subprocess.CompletedProcess[str]:
    """Run a command in the training environment; killed if it outlives RUN_TIMEOUT_S."""
    completed = subprocess.run(
        [str(TRAIN_PYTHON), *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    if completed.returncode != expect:
        sys.stderr.write(completed.stdout[-5000:] + completed.stderr[-10000:])
    assert completed.returncode == expect, f"{args[0]} exited with {completed.returncode}"
    return completed


def offline_cpu_env(tmp_path: Path) -> dict[str, str]:
    """No network, no GPU, caches under tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRAINING_PACKAGE"))}
    env.update(
        HF_HOME=str(tmp_path / "hf-home"),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        CUDA_VISIBLE_DEVICES="",
        TOKENIZERS_PARALLELISM="false",
    )
    return env


def kto_conversations(root: Path) -> Path:
    """KTO data in TRL's conversational unpaired layout (dataset_formats.md: a prompt and a
    completion as message lists, a boolean label), from the test data's questions and answers."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for line in (DATA / "unpaired_preference.jsonl").read_text().splitlines():
        record = json.loads(line)
        rows.append(
            {
                "prompt": [
                    {"role": "system", "content": "You answer kitchen questions."},
                    {"role": "user", "content": record["prompt"]},
                ],
                "completion": [{"role": "assistant", "content": record["completion"]}],
                "label": record["label"],
            }
        )
    path = root / "kto_conversations.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root


WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "The weather now.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def tool_chat(root: Path) -> Path:
    """Tool-calling chat as OpenAI documents it (tool_calls with JSON-text arguments, tool
    messages, a tools list) and as LLaMA-Factory v1 does (typed parts, reasoning, tool_call)."""
    root.mkdir()
    records = []
    for i in range(24):
        city, answer = f"City {i}", f"It is {i} degrees in City {i}."
        question = {"role": "user", "content": f"How warm is it in {city}?"}
        if i % 2:
            call = {"name": "weather", "arguments": json.dumps({"city": city})}
            calling = {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": f"call_{i}", "type": "function", "function": call}],
            }
            result = {"role": "tool", "tool_call_id": f"call_{i}", "content": f"{i} C"}
            records.append(
                {
                    "messages": [
                        question,
                        calling,
                        result,
                        {"role": "assistant", "content": answer},
                    ],
                    "tools": [WEATHER],
                }
            )
        else:
            value = json.dumps({"name": "weather", "arguments": {"city": city}})
            calling = {
                "role": "assistant",
                "content": [
                    {"type": "reasoning", "value": "The tool knows."},
                    {"type": "tool_call", "value": value},
                ],
            }
            result = {"role": "tool", "content": [{"type": "text", "value": f"{i} C"}]}
            final = {"role": "assistant", "content": [{"type": "text", "value": answer}]}
            records.append({"messages": [question, calling, result, final]})
    (root / "tool_chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root


RENDER = """
import json, sys
from datasets import load_dataset
from transformers import AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained(sys.argv[2])
for record in load_dataset("json", data_files=sys.argv[1])["train"]:
    print(json.dumps(tokenizer.apply_chat_template(
        record["messages"], tools=record["tools"], tokenize=False)))
"""
"""Each packaged record as the tiny model's chat template renders it, read as train.py reads
the data (datasets' JSON loader)."""


async def package_for(tmp_path: Path, template: str, root: Path, dataset: str) -> Path:
    """A package finalized from a draft built with the real tools."""
    async with connect(package_settings(tmp_path, root)) as client:
        draft_id = await complete_draft(
            client, template=template, datasets=(dataset,), validation_split=0.1
        )
        written = await call(
            client, "finalize_package", {"draft_id": draft_id, "accept_warnings": True}
        )
    return Path(written["path"])


@pytest.mark.parametrize(
    ("template", "root", "dataset", "trainer"),
    [
        ("lora", SAMPLES, "support_chat.jsonl", "SFTTrainer"),  # the bundled sample
        ("lora", DATA, "prompt_completion.csv", "SFTTrainer"),
        ("full", SAMPLES, "support_chat.jsonl", "SFTTrainer"),
        ("dpo", DATA, "preference_conversational.jsonl", "DPOTrainer"),
        ("kto", DATA, "unpaired_preference.jsonl", "KTOTrainer"),
        ("kto", kto_conversations, "kto_conversations.jsonl", "KTOTrainer"),
        ("lora", tool_chat, "tool_chat.jsonl", "SFTTrainer"),
    ],
)
async def test_the_package_trains_two_steps_on_the_cpu(
    tmp_path: Path, template: str, root: Path | Callable[[Path], Path], dataset: str, trainer: str
) -> None:
    if callable(root):
        root = root(tmp_path / "data")
    if not (root / dataset).is_file():
        pytest.skip(f"{root / dataset} is not in this checkout")
    package = await package_for(tmp_path, template, root, dataset)
    manifest = yaml.safe_load((package / "package.yaml").read_text())
    trl = yaml.safe_load((package / manifest["files"]["trl_config"]).read_text())
    assert trl["trainer"] == trainer

    env = offline_cpu_env(tmp_path)
    tiny, out = tmp_path / "tiny-model", tmp_path / "run"
    built = json.loads(run(TINY_MODEL, package, tiny, env=env).stdout.strip().splitlines()[-1])
    assert built["model_type"] == manifest["model"]["architecture"]["model_type"]
    if dataset == "tool_chat.jsonl":
        train_file = package / manifest["data"]["train"]["path"]
        rendered = run("-c", RENDER, train_file, tiny, env=env).stdout.splitlines()
        texts = [json.loads(line) for line in rendered]
        assert len(texts) == manifest["data"]["train"]["records"]
        assert all('<tool_call>{"name": "weather", "arguments": {"city": "City' in t for t in texts)
        assert sum('"name": "weather", "description"' in t for t in texts) == len(
            [r for r in map(json.loads, train_file.read_text().splitlines()) if r.get("tools")]
        )
    trained = run(
        package / manifest["files"]["train_script"],
        "--model",
        tiny,
        "--max-steps",
        STEPS,
        "--output-dir",
        out,
        env=env,
    )

    assert "training on CPU" in trained.stdout
    assert "no CUDA GPU: bf16 mixed precision off, training in float32" in trained.stdout
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["global_step"] == STEPS and math.isfinite(summary["train_loss"])
    # the trainer's own record of the run, in its last checkpoint
    state = json.loads((out / f"checkpoint-{STEPS}" / "trainer_state.json").read_text())
    assert state["global_step"] == STEPS and state["max_steps"] == STEPS
    values = manifest["config"]["values"]
    if values["adapter"] == "none":  # full fine-tuning saves the whole model
        assert not (out / "adapter_config.json").exists()
        assert (out / "model.safetensors").stat().st_size > 0
        return
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["r"] == values["lora_r"]
    assert adapter["lora_alpha"] == values["lora_alpha"]
    assert (out / "adapter_model.safetensors").stat().st_size > 0


async def test_a_qlora_package_refuses_a_machine_without_cuda(tmp_path: Path) -> None:
    """QLoRA loads the base in 4-bit through bitsandbytes, which needs CUDA: on the CPU the
    package's train.py stops before loading anything, and says what to do."""
    package = await package_for(tmp_path, "qlora", SAMPLES, "support_chat.jsonl")
    manifest = yaml.safe_load((package / "package.yaml").read_text())
    refused = run(
        package / manifest["files"]["train_script"],
        "--max-steps",
        STEPS,
        env=offline_cpu_env(tmp_path),
        expect=1,
    )
    assert refused.stderr.strip().endswith(
        "This package trains QLoRA: the base model loads in 4-bit through bitsandbytes, which "
        "needs an NVIDIA GPU with CUDA, and none is available. Run it on a CUDA machine "
        "(package.yaml names the planned one), or build a package with the lora template to "
        "train here."
    )
    assert not (package / "output").exists()
