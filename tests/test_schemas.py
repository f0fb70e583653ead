"""Compacted schemas accept exactly what the originals accept."""

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


@pytest.mark.parametrize("output", [False, True])
@pytest.mark.parametrize("sample", SAMPLES)
def test_compaction_keeps_validation_identical(sample: dict, output: bool) -> None:
    original = Draft202012Validator(SCHEMA).is_valid(sample)
    assert Draft202012Validator(compact_schema(SCHEMA, output=output)).is_valid(sample) == original


def test_titles_go_but_a_property_named_title_stays() -> None:
    compact = compact_schema(SCHEMA)
    assert "title" not in compact and "title" not in compact["$defs"]["Inner"]
    assert "title" in compact["$defs"]["Inner"]["properties"]
    assert compact["properties"]["name"] == {"type": ["string", "null"], "description": "optional"}
    assert "description" not in compact_schema(SCHEMA, output=True)["properties"]["name"]
