"""apply_template and package://templates through an in-process MCP client."""

import json
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import TextResourceContents

from server.drafts import DraftPackage, StepName, StepSection, StepStatus
from server.drafts.model import utc_now
from server.settings import Settings
from server.steps import facts_from_draft
from tests.support import connect, llama_1b_model_step, record_steps

# context shortened so the lora template's 2048 exceeds it
LLAMA_1B_MODEL_STEP = llama_1b_model_step(context_length=1024)
PREFERENCE_DATA_STEP = {
    "datasets": [
        {
            "ref": "data/pairs.jsonl",
            "format": "preference",
            "records": 100,
            "valid_records": 100,
            "sha256": "0" * 64,
            "size_bytes": 12345,
        }
    ],
    "split": {},
    "train_tokens": 50000,
    "token_stats": {},
}
T4_OPTION = {
    "target": "t4-small",
    "hardware": "Nvidia T4 (Hugging Face)",
    "gpu": "T4",
    "gpu_count": 1,
    "fits": True,
    "peak_memory_gb": 9.5,
    "hours": 1.2,
    "cost_usd": 0.5,
    "within_budget": True,
}


async def call(client: Client, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool("apply_template", arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def read_json(client: Client, uri: str) -> Any:
    (content,) = (await client.read_resource(uri)).contents
    assert isinstance(content, TextResourceContents)
    return json.loads(content.text)


def valid(payload: dict[str, Any]) -> StepSection:
    return StepSection(status=StepStatus.VALID, payload=payload)


async def test_tool_and_resource_are_listed(settings: Settings) -> None:
    async with connect(settings) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        tool = tools["apply_template"]
        assert tool.output_schema is not None
        assert {"config", "provenance", "errors", "warnings", "valid"} <= set(
            tool.output_schema["properties"]
        )
        assert tool.input_schema["required"] == ["template"]
        assert tool.annotations is not None and tool.annotations.read_only_hint is False
        listed = (await client.list_resource_templates()).resource_templates
        assert "package://templates{?template}" in {t.uri_template for t in listed}


async def test_apply_without_a_draft_returns_config_and_provenance(settings: Settings) -> None:
    async with connect(settings) as client:
        out = await call(client, template="lora", overrides={"learning_rate": 1e-4})
        assert out["valid"] is True and out["draft_id"] is None
        assert out["config"]["learning_rate"] == 1e-4
        assert out["provenance"]["learning_rate"] == "override"
        assert "lora_r" not in out["provenance"]  # the template's own: only the draft lists it
        assert out["provenance"]["seed"] == "default"
        assert out["derived"]["effective_batch_size"] == 8


async def test_errors_come_back_as_data(settings: Settings) -> None:
    async with connect(settings) as client:
        out = await call(client, template="qlora", overrides={"load_in_4bit": False, "lr": 1})
        assert out["valid"] is False
        assert {e["code"] for e in out["errors"]} == {"qlora_needs_4bit", "unknown_key"}
        unknown = next(e for e in out["errors"] if e["code"] == "unknown_key")
        assert unknown["message"] == "Unknown key 'lr'. Did you mean 'learning_rate'?"


async def test_unknown_template_is_a_tool_error(settings: Settings) -> None:
    async with connect(settings) as client:
        result = await client.call_tool("apply_template", {"template": "qlroa"})
        assert result.is_error
        assert "There is no template 'qlroa'. Did you mean 'qlora'?" in result.content[0].text


async def test_draft_records_and_updates_the_config_step(settings: Settings) -> None:
    async with connect(settings) as client:
        created = (await client.call_tool("create_draft", {})).structured_content
        draft_id = created["draft_id"]

        first = await call(
            client, template="lora", overrides={"learning_rate": 1e-4}, draft_id=draft_id
        )
        assert first["draft_id"] == draft_id and first["draft_uri"] == created["uri"]
        draft = await read_json(client, created["uri"])
        assert draft["version"] == 2
        assert draft["config"]["status"] == "valid"
        assert draft["config"]["payload"]["config"]["learning_rate"] == 1e-4
        assert draft["config"]["payload"]["provenance"]["learning_rate"] == "override"

        # A second call adds to the overrides recorded before.
        second = await call(client, template="lora", overrides={"lora_r": 32}, draft_id=draft_id)
        overridden = {k for k, source in second["provenance"].items() if source == "override"}
        assert overridden == {"learning_rate", "lora_r"}
        assert second["provenance"]["learning_rate"] == "override"
        # null reverts one; keep_overrides=false starts over
        third = await call(
            client, template="lora", overrides={"learning_rate": None}, draft_id=draft_id
        )
        assert {k for k, v in third["provenance"].items() if v == "override"} == {"lora_r"}
        assert third["config"]["learning_rate"] == 2e-4
        fourth = await call(
            client,
            template="qlora",
            overrides={"lora_alpha": 16},
            draft_id=draft_id,
            keep_overrides=False,
        )
        overridden = {k for k, v in fourth["provenance"].items() if v == "override"}
        assert overridden == {"lora_alpha"} and fourth["template"] == "qlora"

        draft = await read_json(client, created["uri"])
        assert draft["version"] == 5
        assert draft["config"]["payload"]["template"] == "qlora"
        assert draft["config"]["payload"]["config"]["lora_r"] == 16


async def test_a_template_switch_names_the_overrides_it_carries(settings: Settings) -> None:
    """lora -> full keeps LoRA's learning rate (the user set it) and says the full template's
    own value, so the assistant asks; the next call on the same template says nothing more."""
    async with connect(settings) as client:
        draft_id = (await client.call_tool("create_draft", {})).structured_content["draft_id"]
        await call(client, template="lora", overrides={"learning_rate": 1e-4}, draft_id=draft_id)
        switched = await call(client, template="full", draft_id=draft_id)
        again = await call(client, template="full", overrides={"seed": 1}, draft_id=draft_id)
    assert switched["config"]["learning_rate"] == 1e-4
    assert switched["provenance"]["learning_rate"] == "override"
    (note,) = switched["notes"]
    assert note.startswith("learning_rate 0.0001 is carried over from your earlier overrides")
    assert "the full template's value is 2e-05. Ask the user which to keep" in note
    assert again["notes"] == []


async def test_the_qlora_adapter_brings_a_4bit_base(settings: Settings) -> None:
    async with connect(settings) as client:
        out = await call(client, template="lora", overrides={"adapter": "qlora"})
        refused = await call(
            client, template="lora", overrides={"adapter": "qlora", "load_in_4bit": False}
        )
    assert out["valid"] and out["config"]["load_in_4bit"] is True
    assert out["provenance"]["load_in_4bit"] == "implied"
    assert [e["code"] for e in refused["errors"]] == ["qlora_needs_4bit"]


async def test_an_invalid_config_marks_the_step_invalid_with_its_issues(
    settings: Settings,
) -> None:
    async with connect(settings) as client:
        created = (await client.call_tool("create_draft", {})).structured_content
        await call(
            client,
            template="lora",
            overrides={"load_in_4bit": True, "lora_alpha": 200},
            draft_id=created["draft_id"],
        )
        draft = await read_json(client, created["uri"])
        assert draft["config"]["status"] == "invalid"
        issues = {(i["severity"], i["code"]) for i in draft["config"]["issues"]}
        assert issues == {("error", "4bit_lora_is_qlora"), ("warning", "lora_alpha_over_r")}
        assert all(i["fix"] for i in draft["config"]["issues"])


async def test_unknown_draft_is_a_tool_error(settings: Settings) -> None:
    async with connect(settings) as client:
        result = await client.call_tool(
            "apply_template", {"template": "lora", "draft_id": "doesnotexist"}
        )
        assert result.is_error and "No draft 'doesnotexist' was found" in result.content[0].text


async def test_the_other_steps_results_are_checked(settings: Settings) -> None:
    async with connect(settings) as client:
        created = (await client.call_tool("create_draft", {})).structured_content
        draft_id = created["draft_id"]
        quiet = await call(client, template="lora", draft_id=draft_id)
        assert quiet["valid"] and len(quiet["pending"]) == 2

        await record_steps(
            settings,
            draft_id,
            model=valid(LLAMA_1B_MODEL_STEP),
            datasets=valid(PREFERENCE_DATA_STEP),
            deployment=valid({"budget_usd": 50, "options": [T4_OPTION], "selected": T4_OPTION}),
        )
        checked = await call(client, template="lora", draft_id=draft_id)
        assert checked["pending"] == []
        assert {e["code"] for e in checked["errors"]} == {
            "max_seq_length_over_context",
            "bf16_unsupported",
        }
        assert checked["derived"]["trainable_params"] == 11_272_192

        fixed = await call(
            client,
            template="dpo",
            overrides={"bf16": False, "fp16": True},
            draft_id=draft_id,
            keep_overrides=False,
        )
        assert fixed["valid"] and fixed["errors"] == []
        draft = await read_json(client, created["uri"])
        assert draft["config"]["status"] == "valid"


async def test_templates_resource(settings: Settings) -> None:
    async with connect(settings) as client:
        catalog = await read_json(client, "package://templates")
        assert [t["id"] for t in catalog["templates"]] == ["lora", "qlora", "full", "dpo", "kto"]
        lora = catalog["templates"][0]
        assert lora["description"] and lora["defaults"]["learning_rate"] == 2e-4
        assert catalog["keys"]["beta"]["recommended"] == 0.1
        one = await read_json(client, "package://templates?template=dpo")
        assert [t["id"] for t in one["templates"]] == ["dpo"]
        with pytest.raises(MCPError) as exc:
            await client.read_resource("package://templates?template=nope")
        assert "There is no template 'nope'" in str(exc.value)


# --- reading the other steps from a draft -------------------------------------------------------


def draft_with(**sections: StepSection) -> DraftPackage:
    now = utc_now()
    draft = DraftPackage(id="d1", owner="me", title="t", created_at=now, updated_at=now, version=1)
    for step, section in sections.items():
        draft = draft.with_section(StepName(step), section)
    return draft


def test_facts_stay_empty_until_steps_are_valid(settings: Settings) -> None:
    assert facts_from_draft(draft_with(), settings.deployment).model_dump() == {
        "model": None,
        "target": None,
    }
    invalid = StepSection(status=StepStatus.INVALID, payload=LLAMA_1B_MODEL_STEP)
    assert facts_from_draft(draft_with(model=invalid), settings.deployment).model is None


def test_facts_read_model_data_and_target(settings: Settings) -> None:
    facts = facts_from_draft(
        draft_with(
            model=valid(LLAMA_1B_MODEL_STEP),
            datasets=valid(PREFERENCE_DATA_STEP),
            deployment=valid({"options": [T4_OPTION], "recommended": "t4-small", "selected": None}),
        ),
        settings.deployment,
    )
    assert facts.model is not None and facts.model.context_length == 1024
    assert facts.model.architecture is not None and facts.model.architecture.head_dim == 64
    assert facts.target is not None
    assert (facts.target.target, facts.target.gpu, facts.target.supports_bf16) == (
        "t4-small",
        "T4",
        False,
    )


def test_facts_tolerate_an_architecture_with_extra_or_missing_keys(settings: Settings) -> None:
    extra = {**LLAMA_1B_MODEL_STEP["architecture"], "rope_theta": 500000.0}
    model = valid({**LLAMA_1B_MODEL_STEP, "architecture": extra})
    facts = facts_from_draft(draft_with(model=model), settings.deployment)
    assert facts.model is not None and facts.model.architecture is not None
    partial = valid({**LLAMA_1B_MODEL_STEP, "architecture": {"model_type": "llama"}})
    facts = facts_from_draft(draft_with(model=partial), settings.deployment)
    assert facts.model is not None and facts.model.architecture is None
