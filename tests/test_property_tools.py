"""Property: whatever arguments a model sends, every tool ends in a result or a clear tool error.

Hypothesis draws argument dictionaries for each tool from its own input schema — the right
names with values of every JSON type (and, half the time, plausible values), plus stray keys —
and calls the tool through an in-process MCP client. A crash (the SDK's bare "Error executing
tool X", or an exception) or a call that does not finish in bounded time fails the test.
"""

import string
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from server.settings import load_settings
from tests.support import CLOSED_PORT_URL, connect, hub_env

CALL_BOUND_S = 60
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.text(alphabet=string.ascii_letters + "/._-", max_size=30)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=8,
)
PLAUSIBLE = {
    "model_id": st.sampled_from(["Qwen/Qwen2.5-0.5B-Instruct", "nobody/nothing", "x", "../.."]),
    "template": st.sampled_from(["lora", "qlora", "full", "dpo", "LoRA", "nope"]),
    "datasets": st.lists(
        st.sampled_from(
            ["samples/support_chat.jsonl", "/etc/passwd", "../x.jsonl", "hf:a/b", "supabase:x"]
        ),
        max_size=3,
    ),
    "overrides": st.dictionaries(
        st.sampled_from(["learning_rate", "lora_r", "batch_size", "bogus_key"]),
        JSON_SCALARS,
        max_size=3,
    ),
    "targets": st.lists(st.sampled_from(["local", "a100-large", "t4-small", "nope"]), max_size=3),
}


@pytest.fixture(scope="module")
def session(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[BlockingPortal, Client, dict]]:
    """One server and client for all examples, driven from Hypothesis's thread via a portal."""
    tmp = tmp_path_factory.mktemp("property")
    settings_ = load_settings(env=hub_env(Path(tmp), CLOSED_PORT_URL))
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(connect(settings_)) as client,
    ):
        listed = portal.call(client.list_tools)
        schemas = {tool.name: tool.input_schema for tool in listed.tools}
        draft = portal.call(client.call_tool, "create_draft", {"title": "property"})
        schemas["__draft__"] = draft.structured_content["draft_id"]
        yield portal, client, schemas


@st.composite
def tool_call(draw: st.DrawFn, schemas: dict) -> tuple[str, dict]:
    name = draw(st.sampled_from(sorted(k for k in schemas if not k.startswith("__"))))
    properties = schemas[name].get("properties", {})
    arguments = {}
    for key in draw(st.lists(st.sampled_from(sorted(properties) or ["_"]), unique=True)):
        if key == "draft_id" and draw(st.booleans()):
            arguments[key] = schemas["__draft__"]
        elif key in PLAUSIBLE and draw(st.booleans()):
            arguments[key] = draw(PLAUSIBLE[key])
        else:
            arguments[key] = draw(JSON_VALUES)
    if draw(st.integers(0, 9)) == 0:
        arguments[draw(st.text(min_size=1, max_size=8))] = draw(JSON_SCALARS)
    return name, arguments


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_call_ends_in_a_result_or_a_clear_error(session, data) -> None:
    portal, client, schemas = session
    name, arguments = data.draw(tool_call(schemas))

    async def call():
        with anyio.fail_after(CALL_BOUND_S):
            return await client.call_tool(name, arguments)

    result = portal.call(call)
    if result.is_error:
        text = " ".join(getattr(c, "text", "") for c in result.content)
        assert text.strip() != f"Error executing tool {name}", f"{name} crashed on {arguments}"
        assert len(text) > len(f"Error executing tool {name}: "), text
