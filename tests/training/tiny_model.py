"""A stand-in for a package's base model that needs no download: the same architecture family
(model_type from package.yaml), a few layers, random weights, and a byte-level BPE tokenizer
trained on the package's own records, with a ChatML chat template that renders tools and tool
calls the way Qwen2.5's does (tools as JSON in a system turn, each call as
<tool_call>{"name": ..., "arguments": ...}</tool_call>, arguments through `tojson`).

Run with the training environment's Python (it imports torch and transformers):

    .venv-train/bin/python tests/training/tiny_model.py PACKAGE_DIR OUT_DIR
"""

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import yaml
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

VOCAB_SIZE = 512
LAYERS = 2
HIDDEN = 64
INTERMEDIATE = 128
HEADS = 4
KV_HEADS = 2
SEED = 0
PAD, START, END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
CHATML = (
    "{% if tools %}{{ '<|im_start|>system\\n# Tools\\n' }}{% for tool in tools %}"
    "{{ tool | tojson }}{{ '\\n' }}{% endfor %}{{ '<|im_end|>\\n' }}{% endif %}"
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] }}{% for call in message.tool_calls or [] %}"
    '{{ \'<tool_call>{"name": "\' + call.function.name + \'", "arguments": \' + '
    "call.function.arguments | tojson + '}</tool_call>' }}{% endfor %}"
    "{{ '<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def strings(value: Any) -> Iterator[str]:
    """Every string inside a record, however nested."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def package_texts(package: Path, manifest: dict[str, Any]) -> Iterator[str]:
    data = manifest["data"]
    for part in (data["train"], data.get("validation")):
        if part:
            for line in (package / part["path"]).read_text(encoding="utf-8").splitlines():
                yield from strings(json.loads(line))


def build_tokenizer(texts: Iterator[str]) -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[PAD, START, END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token=PAD, eos_token=END, chat_template=CHATML
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("package", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    manifest = yaml.safe_load((args.package / "package.yaml").read_text(encoding="utf-8"))
    tokenizer = build_tokenizer(package_texts(args.package, manifest))
    model_type = manifest["model"]["architecture"]["model_type"]
    config = AutoConfig.for_model(
        model_type,
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=manifest["config"]["values"]["max_seq_length"],
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    print(json.dumps({"model_type": model_type, "parameters": model.num_parameters()}))


if __name__ == "__main__":
    main()
