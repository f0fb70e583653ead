"""configs/templates.yaml is cross-checked at start-up: each mistake is named, with its key."""

import copy
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from server.paths import shipped_dir
from tools.template_loader.config import TemplatesConfig

SHIPPED = yaml.safe_load((shipped_dir("configs") / "templates.yaml").read_text(encoding="utf-8"))


def rule(data: dict[str, Any], code: str) -> dict[str, Any]:
    return next(r for r in data["cross_field"] if r["code"] == code)


def set_in(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = data
        for part in parents:
            node = node[part]
        node[last] = value

    return change


def drop(path: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = data
        for part in parents:
            node = node[part]
        del node[last]

    return change


def in_rule(code: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        rule(data, code)[key] = value

    return change


def test_shipped_file_is_accepted() -> None:
    config = TemplatesConfig.model_validate(SHIPPED)
    assert set(config.templates) == {"lora", "qlora", "full", "dpo", "kto"}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            set_in("templates.lora.defaults.learning_rate", 0.5),
            "templates.lora.defaults.learning_rate: learning_rate 0.5 is above the maximum",
        ),
        (
            set_in("templates.lora.defaults.num_epochs", 20),
            "templates.lora.defaults.num_epochs: num_epochs 20 is unusually high",
        ),
        (set_in("templates.lora.defaults.foo", 1), "no rule in `keys` for foo"),
        (
            drop("templates.full.defaults.learning_rate"),
            "templates.full.defaults: required keys missing: learning_rate",
        ),
        (
            set_in("templates.lora.defaults.warmup_steps", 10),
            "templates.lora.defaults: sets more than one of warmup_ratio, warmup_steps",
        ),
        (set_in("keys.beta.only_with", {"lora_r": [16]}), "conditions may not chain"),
        (set_in("keys.beta.only_with", {"nope": [1]}), "keys.beta.only_with: unknown key nope"),
        (drop("keys.lora_r.default"), "keys.lora_r: a required key with only_with needs a default"),
        (set_in("keys.seed.default", -1), "keys.seed: seed -1 is below the minimum of 0"),
        (set_in("keys.bf16.min", 0), "need a numeric type, not bool"),
        (drop("keys.lora_r.max"), "a numeric key needs min and max"),
        (
            in_rule("qlora_needs_4bit", "when", {"adapter": ["qlor"], "load_in_4bit": [False]}),
            "cross_field[qlora_needs_4bit].when.adapter: adapter 'qlor' is not one of",
        ),
        (
            in_rule("4bit_needs_adapter", "code", "qlora_needs_4bit"),
            "codes used more than once: qlora_needs_4bit",
        ),
        (
            in_rule("effective_batch_size", "figure", "nope"),
            "figure 'nope' is neither a numeric key nor one of",
        ),
        (
            in_rule("qlora_needs_4bit", "message", "Broken {nope}."),
            "cross_field[qlora_needs_4bit]: unknown message fields nope",
        ),
        (
            in_rule("qlora_needs_4bit", "fix", "Set {lora_r:d}."),
            "use plain {name} fields in messages",
        ),
        (
            in_rule("max_seq_length_over_context", "key", "bf16"),
            "key bf16 must be of type int",
        ),
        (in_rule("warmup_exclusive", "exclusive", ["warmup_ratio", "wu"]), "unknown key wu"),
        (in_rule("qlora_needs_4bit", "kind", "sometimes"), "does not match any of the expected"),
        (
            in_rule("qlora_means_4bit", "implies", {"load_in_4bits": True}),
            "cross_field[qlora_means_4bit]: unknown key load_in_4bits",
        ),
        (
            in_rule("qlora_means_4bit", "implies", {"load_in_4bit": "yes"}),
            "implies.load_in_4bit: load_in_4bit must be true or false",
        ),
        (
            in_rule("qlora_means_4bit", "implies", {"adapter": "lora"}),
            "implies adapter, which an implication's `when` names",
        ),
        (
            in_rule("qlora_means_4bit", "note", "4-bit {nope}."),
            "cross_field[qlora_means_4bit]: unknown message fields nope",
        ),
        (
            set_in("templates.qlora.defaults.load_in_4bit", False),
            "templates.qlora.defaults: contradicts cross_field[qlora_means_4bit].implies",
        ),
    ],
)
def test_mistakes_are_named(change: Callable[[dict[str, Any]], None], expected: str) -> None:
    data = copy.deepcopy(SHIPPED)
    change(data)
    with pytest.raises(ValidationError) as exc:
        TemplatesConfig.model_validate(data)
    assert expected in str(exc.value)


def test_a_band_needs_a_limit() -> None:
    data = copy.deepcopy(SHIPPED)
    band = rule(data, "full_finetune_learning_rate")
    del band["above"]
    with pytest.raises(ValidationError, match="a band needs `below`, `above` or both"):
        TemplatesConfig.model_validate(data)
