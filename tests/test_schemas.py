"""Compacted schemas: outputs accept every valid result, inputs differ only on explicit nulls."""

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel, Field

from server.schemas import compact_schema


class Inner(BaseModel):
    title: str = Field(description="A field literally named title.")
    size: int | None = None


class Outer(BaseModel):
    name: str | None = Field(default=None, description="optional")
    inner: Inner | None = None
    items: list[Inner] = []
    extra: dict[str, object] = {}


SCHEMA = Outer.model_json_schema()
SAMPLES = [
    {},
    {"name": None, "inner": None},
    {"name": "x", "inner": {"title": "t", "size": 3}, "items": [{"title": "u"}], "extra": {"a": 1}},
    {"name": 3},
    {"inner": {"size": 1}},
    {"inner": {"title": "t", "size": "big"}},
    {"items": [{"title": None}]},
]


@pytest.mark.parametrize("sample", SAMPLES)
def test_output_compaction_still_accepts_every_valid_result(sample: dict) -> None:
    original = Draft202012Validator(SCHEMA).is_valid(sample)
    assert Draft202012Validator(compact_schema(SCHEMA, output=True)).is_valid(sample) >= original


@pytest.mark.parametrize("sample", SAMPLES)
def test_input_compaction_accepts_a_subset_that_omits_explicit_nulls(sample: dict) -> None:
    """Inputs may only get stricter, and only about an explicit null where omitting is the same."""
    compact = Draft202012Validator(compact_schema(SCHEMA)).is_valid(sample)
    original = Draft202012Validator(SCHEMA).is_valid(sample)
    assert compact <= original
    without_nulls = {k: v for k, v in sample.items() if v is not None}
    assert Draft202012Validator(compact_schema(SCHEMA)).is_valid(without_nulls) == original


def test_titles_go_but_a_property_named_title_stays() -> None:
    compact = compact_schema(SCHEMA)
    assert "title" not in compact and "title" not in compact["$defs"]["Inner"]
    assert "title" in compact["$defs"]["Inner"]["properties"]
    # an optional input is offered as its plain type; an output keeps its null branch
    assert compact["properties"]["name"] == {"description": "optional", "type": "string"}
    output = compact_schema(SCHEMA, output=True)["properties"]["name"]
    assert output == {"anyOf": [{"type": "string"}, {"type": "null"}], "description": "optional"}
