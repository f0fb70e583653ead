"""Fine-tune this package's base model on this package's data with TRL + PEFT.

Every training setting comes from the package: package.yaml names the model, the data files and
the TRL config, which holds the trainer, its arguments, the LoRA adapter and the quantisation.
This script decides only what depends on the machine it runs on, and prints each decision.

    python train.py                                  # the package's model, every epoch
    python train.py --max-steps 2 --model ./tiny     # a short run on another copy of the model

Written by training-package-mcp; it needs the packages in requirements.txt.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

MANIFEST = "package.yaml"
SUMMARY = "run_summary.json"
PACKAGE_DIR = Path(__file__).resolve().parent
# Optimizers that come from bitsandbytes (transformers OptimizerNames), which needs CUDA here.
BITSANDBYTES_OPTIMIZER_MARKS = ("8bit", "bnb", "paged_")
CPU_OPTIMIZER = "adamw_torch"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        help="Hub id or local directory of the base model (default: the package's model, at "
        "its recorded revision).",
    )
    parser.add_argument(
        "--revision", help="Branch, tag or commit of --model (default: the latest)."
    )
    parser.add_argument(
        "--max-steps", type=int, help="Stop after this many optimizer steps (default: epochs)."
    )
    parser.add_argument(
        "--output-dir", type=Path, default=PACKAGE_DIR / "output", help="Where results go."
    )
    return parser.parse_args(argv)


def read_yaml(name: str) -> dict[str, Any]:
    return yaml.safe_load((PACKAGE_DIR / name).read_text(encoding="utf-8"))


def fit_to_machine(
    export: dict[str, Any], cuda: bool, bf16_ok: bool
) -> tuple[dict[str, Any], list[str]]:
    """The trainer arguments adjusted to this machine, and a line per adjustment."""
    args = dict(export["args"])
    init = dict(args.get("model_init_kwargs") or {})
    notes = []
    if export.get("quantization_config") and not cuda:
        sys.exit(
            "This package trains QLoRA: the base model loads in 4-bit through bitsandbytes, "
            "which needs an NVIDIA GPU with CUDA, and none is available. Run it on a CUDA "
            "machine (package.yaml names the planned one), or build a package with the lora "
            "template to train here."
        )
    if args.get("bf16") and not bf16_ok:
        args["bf16"] = False
        if cuda:
            args["fp16"] = True
            notes.append("this GPU has no bfloat16: fp16 mixed precision instead of bf16")
        else:
            notes.append("no CUDA GPU: bf16 mixed precision off, training in float32")
    if args.get("fp16") and not cuda:
        args["fp16"] = False
        notes.append("no CUDA GPU: fp16 mixed precision off, training in float32")
    dtype = init.get("dtype")
    if (dtype == "bfloat16" and not bf16_ok) or (dtype == "float16" and not cuda):
        init["dtype"] = "float16" if cuda else "float32"
        notes.append(f"base weights load in {init['dtype']} instead of {dtype}")
    optimizer = str(args.get("optim", ""))
    if not cuda and any(mark in optimizer for mark in BITSANDBYTES_OPTIMIZER_MARKS):
        args["optim"] = CPU_OPTIMIZER
        notes.append(f"optimizer {optimizer} needs bitsandbytes on CUDA: {CPU_OPTIMIZER} instead")
    args["model_init_kwargs"] = init
    return args, notes


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    manifest = read_yaml(MANIFEST)
    export = read_yaml(manifest["files"]["trl_config"])

    import torch  # imported after parsing, so --help answers at once
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import BitsAndBytesConfig
    from trl import DPOConfig, DPOTrainer, KTOConfig, KTOTrainer, SFTConfig, SFTTrainer

    cuda = torch.cuda.is_available()
    bf16_ok = cuda and torch.cuda.is_bf16_supported()
    args, notes = fit_to_machine(export, cuda, bf16_ok)
    model = options.model or manifest["model"]["id"]
    if options.model:
        args["model_init_kwargs"].pop("revision", None)
        notes.append(f"base model {options.model} instead of {manifest['model']['id']}")
    if options.revision:
        args["model_init_kwargs"]["revision"] = options.revision
    if options.max_steps is not None:
        args["max_steps"] = options.max_steps
    device = torch.cuda.get_device_name(0) if cuda else "CPU"
    print(f"training on {device}", flush=True)
    for note in notes:
        print(f"note: {note}", flush=True)

    data = manifest["data"]
    files = {"train": str(PACKAGE_DIR / data["train"]["path"])}
    if data.get("validation"):
        files["validation"] = str(PACKAGE_DIR / data["validation"]["path"])
    dataset = load_dataset("json", data_files=files)

    configs = {"SFTConfig": SFTConfig, "DPOConfig": DPOConfig, "KTOConfig": KTOConfig}
    trainers = {"SFTTrainer": SFTTrainer, "DPOTrainer": DPOTrainer, "KTOTrainer": KTOTrainer}
    config_class, trainer_class = configs[export["config_class"]], trainers[export["trainer"]]
    peft = export.get("peft_config")
    quantization = export.get("quantization_config")
    trainer = trainer_class(
        model=model,
        args=config_class(output_dir=str(options.output_dir), **args),
        train_dataset=dataset["train"],
        eval_dataset=dataset.get("validation"),
        peft_config=LoraConfig(**peft) if peft else None,
        quantization_config=BitsAndBytesConfig(**quantization) if quantization else None,
    )
    result = trainer.train()
    trainer.save_model(str(options.output_dir))
    evaluation = trainer.evaluate() if "validation" in dataset else {}
    summary = {
        "model": model,
        "device": device,
        "decisions": notes,
        "global_step": trainer.state.global_step,
        "train_loss": result.training_loss,
        "eval": evaluation,
    }
    options.output_dir.mkdir(parents=True, exist_ok=True)
    (options.output_dir / SUMMARY).write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
