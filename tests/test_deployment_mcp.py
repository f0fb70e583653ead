"""estimate_deployment and package://hardware through an in-process MCP client."""

import json
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import TextResourceContents

from server.settings import Settings, load_settings
from tests.fake_hub import FakeHub
from tests.support import CLOSED_PORT_URL, connect, isolated_env, llama_1b_model_step, record_steps

DEPLOYMENT = "TRAINING_PACKAGE_MCP__DEPLOYMENT__"
HUB_ENDPOINT = "TRAINING_PACKAGE_MCP__MODELS__HUB__ENDPOINT"
LLAMA_8B_CONFIG = {
    "model_type": "llama",
    "num_hidden_layers": 32,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "tie_word_embeddings": False,
}
LLAMA_1B_MODEL_STEP = llama_1b_model_step()
DATASETS_STEP = {"datasets": [], "split": {}, "train_tokens": 2_000_000, "token_stats": {}}


def deployment_settings(tmp_path: Path, **env: str) -> Settings:
    """Shipped settings without GPU detection (tests must not depend on the machine)."""
    return load_settings(
        env=isolated_env(tmp_path, **{f"{DEPLOYMENT}LOCAL__DETECT": "false", **env})
    )


@pytest.fixture
def quiet(tmp_path: Path) -> Settings:
    return deployment_settings(tmp_path)


async def estimate(client: Client, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool("estimate_deployment", arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def tool_error(client: Client, **arguments: Any) -> str:
    result = await client.call_tool("estimate_deployment", arguments)
    assert result.is_error
    return result.content[0].text


async def read_json(client: Client, uri: str) -> Any:
    (content,) = (await client.read_resource(uri)).contents
    assert isinstance(content, TextResourceContents)
    return json.loads(content.text)


async def new_draft(client: Client) -> str:
    created = await client.call_tool("create_draft", {"title": "deployment test"})
    return created.structured_content["draft_id"]


async def lora_draft(client: Client, settings: Settings) -> str:
    """A draft with Llama 3.2 1B, the lora template and 2M tokens of data: ready to estimate."""
    draft_id = await new_draft(client)
    applied = await client.call_tool("apply_template", {"template": "lora", "draft_id": draft_id})
    assert not applied.is_error, applied.content
    await record_steps(settings, draft_id, model=LLAMA_1B_MODEL_STEP, datasets=DATASETS_STEP)
    return draft_id


async def test_tool_and_resource_are_listed(quiet: Settings) -> None:
    async with connect(quiet) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        tool = tools["estimate_deployment"]
        assert {"draft_id", "architecture", "training", "train_tokens", "targets"} <= set(
            tool.input_schema["properties"]
        )
        assert "model_config" not in tool.input_schema["properties"]
        assert {"options", "recommended", "budget_usd"} <= set(tool.output_schema["properties"])
        assert tool.annotations.read_only_hint is False and tool.annotations.idempotent_hint
        templates = {
            t.uri_template for t in (await client.list_resource_templates()).resource_templates
        }
        assert "package://hardware{?refresh}" in templates


async def test_explicit_inputs_give_ranked_options_and_a_recommendation(quiet: Settings) -> None:
    run = {
        "model_config": LLAMA_8B_CONFIG,  # architecture's name until 0.2: still accepted
        "training": {"adapter": "lora", "batch_size": 2, "max_seq_length": 2048},
        "train_tokens": 5_000_000,
        "budget_usd": 100,
    }
    async with connect(quiet) as client:
        out = await estimate(client, **run)
        named = await estimate(client, **run, targets=list(quiet.deployment.flavors))
    options, others = out["options"], out["others"]
    assert [o["target"] for o in options] == sorted(
        (o["target"] for o in options),
        key=lambda t: next(
            (not o["fits"], not o["compatible"], o["cost_usd"], o["hours"])
            for o in options
            if o["target"] == t
        ),
    )
    # listed in full: what fits and runs, beaten by none on both cost and time; a line each else
    listed = {o["target"] for o in options}
    assert listed | {line.split(":")[0] for line in others} == set(quiet.deployment.flavors)
    assert len(options) + len(others) == len(quiet.deployment.flavors) and len(options) < 6
    assert all(o["fits"] and o["compatible"] for o in options)
    for o in options:
        assert not any(p["cost_usd"] <= o["cost_usd"] and p["hours"] < o["hours"] for p in options)
    assert out["recommended"] == options[0]["target"]
    t4 = next(line for line in others if line.startswith("t4-small:"))
    assert "does not fit" in t4 and "usable" in t4
    # the targets the caller names are all listed in full, the same figures
    assert {o["target"] for o in named["options"]} == set(quiet.deployment.flavors)
    assert not named["others"]
    assert all(o in named["options"] for o in options)
    small = next(o for o in named["options"] if o["target"] == "t4-small")
    assert not small["fits"] and small["peak_memory_gb"] > small["usable_memory_gb"]
    assert out["inputs"]["train_tokens"] == 5_000_000 and out["inputs"]["training"] == "lora"
    assert out["draft_uri"] is None and "draft_id" in out["next_action"]
    assert out["prices"].startswith("prices: configs/deployment.yaml")


async def test_unknown_hardware_is_a_clear_tool_error(quiet: Settings) -> None:
    async with connect(quiet) as client:
        message = await tool_error(
            client,
            architecture=LLAMA_8B_CONFIG,
            training={"adapter": "qlora"},
            train_tokens=1000,
            targets=["h100-large"],
        )
    assert "Unknown hardware 'h100-large'" in message and "a100-large" in message


async def test_a_gpu_name_target_is_costed_as_the_user_s_own_card(quiet: Settings) -> None:
    async with connect(quiet) as client:
        out = await estimate(
            client,
            architecture=LLAMA_8B_CONFIG,
            training={"adapter": "qlora"},
            train_tokens=1_000_000,
            targets=["NVIDIA GeForce RTX 4090"],
        )
    (option,) = out["options"]
    assert option["target"] == "RTX-4090" and option["fits"]
    assert any("electricity only" in note for note in option["notes"])
    assert 0 < option["cost_usd"] < 1


async def test_a_draft_without_earlier_steps_says_which_to_run(quiet: Settings) -> None:
    async with connect(quiet) as client:
        draft_id = await new_draft(client)
        message = await tool_error(client, draft_id=draft_id)
        assert "select_model" in message and "apply_template" in message
        assert "validate_datasets" in message
        await record_steps(quiet, draft_id, model=LLAMA_1B_MODEL_STEP)
        message = await tool_error(client, draft_id=draft_id)
        assert "select_model" not in message and "apply_template" in message


async def test_the_draft_plan_is_recorded_then_a_choice_selected(quiet: Settings) -> None:
    async with connect(quiet) as client:
        draft_id = await lora_draft(client, quiet)

        out = await estimate(client, draft_id=draft_id, budget_usd=20)
        assert out["inputs"] is None  # the draft keeps the run's inputs
        assert out["recommended"] is not None and out["selected"] is None
        draft = await read_json(client, out["draft_uri"])
        section = draft["deployment"]
        assert section["payload"]["inputs"]["model"] == LLAMA_1B_MODEL_STEP["model_id"]
        assert section["payload"]["inputs"]["train_tokens"] == DATASETS_STEP["train_tokens"]
        assert section["status"] == "invalid"
        assert section["issues"][0]["code"] == "deployment.not_selected"
        assert out["recommended"] in section["issues"][0]["fix"]
        assert section["payload"]["budget_usd"] == 20
        assert section["payload"]["recommended"] == out["recommended"]
        assert {"gpu", "fits", "cost_usd"} <= set(section["payload"]["options"][0])

        chosen = await estimate(client, draft_id=draft_id, select=out["recommended"])
        assert chosen["budget_usd"] == 20  # remembered from the draft
        assert chosen["options"] == [] and chosen["others"] == []  # the choice alone
        assert chosen["selected"]["target"] == out["recommended"]
        draft = await read_json(client, chosen["draft_uri"])
        assert draft["deployment"]["status"] == "valid"
        assert draft["deployment"]["payload"]["selected"]["gpu"] == chosen["selected"]["gpu"]
        assert draft["next_step"] is None

        again = await estimate(client, draft_id=draft_id, train_tokens=4_000_000)
        assert again["selected"]["target"] == out["recommended"]  # the choice is kept
        assert again["selected"]["hours"] > chosen["selected"]["hours"]


async def test_each_answer_stays_its_own(quiet: Settings) -> None:
    """A call's selection and notes are its own: the next call reads the draft's choice."""
    async with connect(quiet) as client:
        draft_id = await lora_draft(client, quiet)
        first = await estimate(client, draft_id=draft_id, budget_usd=20)
        chosen = await estimate(client, draft_id=draft_id, budget_usd=20, select="l4x1")
        again = await estimate(client, draft_id=draft_id, budget_usd=20)
        other = await estimate(client, draft_id=draft_id, budget_usd=30)
    assert first["selected"] is None and chosen["selected"]["target"] == "l4x1"
    assert again["selected"]["target"] == "l4x1"  # the draft's choice
    assert first["notes"] == chosen["notes"] == again["notes"]  # the local GPU's note once each
    assert first["options"] == again["options"] and other["budget_usd"] == 30


async def test_explicit_arguments_override_the_draft(quiet: Settings) -> None:
    async with connect(quiet) as client:
        draft_id = await new_draft(client)
        await record_steps(
            quiet,
            draft_id,
            model=LLAMA_1B_MODEL_STEP,
            config={"template": "lora", "config": {"adapter": "lora", "batch_size": 2}},
            datasets=DATASETS_STEP,
        )
        base = await estimate(client, draft_id=draft_id, targets=["a100-large"])
        base_inputs = (await read_json(client, base["draft_uri"]))["deployment"]["payload"][
            "inputs"
        ]
        bigger = await estimate(
            client,
            draft_id=draft_id,
            targets=["a100-large"],
            training={"batch_size": 8},
            train_tokens=4_000_000,
        )
        inputs = (await read_json(client, bigger["draft_uri"]))["deployment"]["payload"]["inputs"]
    assert base_inputs["batch_size"] == 2 and inputs["batch_size"] == 8
    assert inputs["train_tokens"] == 4_000_000
    assert bigger["options"][0]["peak_memory_gb"] > base["options"][0]["peak_memory_gb"]


async def test_select_is_checked(quiet: Settings) -> None:
    async with connect(quiet) as client:
        explicit = {
            "architecture": LLAMA_8B_CONFIG,
            "training": {"adapter": "lora"},
            "train_tokens": 1000,
        }
        assert "pass draft_id" in await tool_error(client, **explicit, select="a100-large")
        assert "No draft 'nope'" in await tool_error(client, **explicit, draft_id="nope")
        draft_id = await new_draft(client)
        message = await tool_error(client, draft_id=draft_id, **explicit, select="nowhere")
        assert "not among the estimated options" in message
        message = await tool_error(client, draft_id=draft_id, **explicit, select="t4-small")
        assert "t4-small does not fit" in message


async def test_nothing_fitting_is_recorded_with_the_fix(quiet: Settings) -> None:
    async with connect(quiet) as client:
        draft_id = await new_draft(client)
        out = await estimate(
            client,
            draft_id=draft_id,
            architecture=LLAMA_8B_CONFIG,
            training={"adapter": "none", "gradient_checkpointing": False},
            train_tokens=1_000_000,
            targets=["t4-small", "l4x1"],
        )
        assert out["recommended"] is None and out["suggestions"]
        draft = await read_json(client, out["draft_uri"])
    codes = [issue["code"] for issue in draft["deployment"]["issues"]]
    assert codes == ["deployment.no_fit", "deployment.not_selected"]
    first = out["suggestions"][0]
    assert (
        draft["deployment"]["issues"][0]["fix"]
        == f"{'; '.join(first['changes'])} ({first['target']})"
    )


async def test_hardware_resource_lists_gpus_flavors_and_prices(quiet: Settings) -> None:
    async with connect(quiet) as client:
        catalog = await read_json(client, "package://hardware")
    assert catalog["flavors"]["a100-large"]["usd_per_hour"] == 2.5
    assert catalog["gpus"]["H200"]["memory_gb"] == 141
    assert catalog["local"]["gpu"] is None and "nvidia-smi" in catalog["local"]["note"]
    assert catalog["prices"].startswith("prices: configs/deployment.yaml")


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    """Live prices are skipped under HF_HUB_OFFLINE; these tests use a local server."""
    monkeypatch.setattr("tools.deployment_estimator.hardware.is_offline_mode", lambda: False)


@pytest.mark.usefixtures("online")
async def test_live_prices_come_from_the_hub_when_enabled(
    tmp_path: Path, fake_hub: tuple[FakeHub, str]
) -> None:
    _, hub_url = fake_hub
    settings = deployment_settings(
        tmp_path,
        **{f"{DEPLOYMENT}LIVE_PRICES__ENABLED": "true", HUB_ENDPOINT: hub_url},
    )
    async with connect(settings) as client:
        catalog = await read_json(client, "package://hardware")
        out = await estimate(
            client,
            architecture=LLAMA_8B_CONFIG,
            training={"adapter": "qlora"},
            train_tokens=1000,
            targets=["a100-large", "t4-small"],
        )
    assert catalog["prices"] == "prices: the Hub's live hardware list"
    assert catalog["flavors"]["a100-large"]["usd_per_hour"] == 2.1
    assert catalog["flavors"]["t4-small"]["usd_per_hour"] == 0.4  # not listed: YAML price
    assert out["prices"] == catalog["prices"]


@pytest.mark.usefixtures("online")
async def test_an_unreachable_hub_falls_back_to_the_yaml_prices(tmp_path: Path) -> None:
    settings = deployment_settings(
        tmp_path,
        **{
            f"{DEPLOYMENT}LIVE_PRICES__ENABLED": "true",
            f"{DEPLOYMENT}LIVE_PRICES__TIMEOUT_S": "2",
            HUB_ENDPOINT: CLOSED_PORT_URL,
        },
    )
    async with connect(settings) as client:
        catalog = await read_json(client, "package://hardware")
    assert catalog["prices"].endswith("the Hub's live list did not answer")
    assert catalog["flavors"]["a100-large"]["usd_per_hour"] == 2.5
