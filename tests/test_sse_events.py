"""server.sse_events: events are encoded as sse_starlette encodes them, without its regex scan
when the data has no line break."""

import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from sse_starlette.event import ServerSentEvent

from server import sse_events
from server.app import build_server
from server.http import http_app
from server.settings import Secrets, load_settings
from tests.support import isolated_env

ORIGINAL = re.compile(r"\r\n|\r|\n")  # sse_starlette 3.x's _LINE_SEP_EXPR
LINE_TEXT = st.lists(st.sampled_from(["a", "é", "\u2028", "\r", "\n", "\r\n", '"', " "])).map(
    "".join
)


def encoded(pattern: object, data: str, event: str, event_id: str, comment: str) -> bytes:
    saved = ServerSentEvent._LINE_SEP_EXPR
    ServerSentEvent._LINE_SEP_EXPR = pattern  # type: ignore[assignment]
    try:
        return ServerSentEvent(data, event=event, id=event_id, comment=comment).encode()
    finally:
        ServerSentEvent._LINE_SEP_EXPR = saved


@given(data=LINE_TEXT | st.text(), event=LINE_TEXT, event_id=LINE_TEXT, comment=LINE_TEXT)
def test_every_event_is_encoded_byte_for_byte_as_before(
    data: str, event: str, event_id: str, comment: str
) -> None:
    fast = sse_events.LineBreaks(ORIGINAL)
    assert encoded(fast, data, event, event_id, comment) == encoded(
        ORIGINAL, data, event, event_id, comment
    )


def test_data_without_a_line_break_skips_the_pattern() -> None:
    class Refusing:
        def split(self, text: str) -> list[str]:
            raise AssertionError("the pattern ran on text without a line break")

        sub = split

    fast = sse_events.LineBreaks(Refusing())  # type: ignore[arg-type]
    message = '{"jsonrpc":"2.0","id":1,"result":{"text":"a\\nb"}}'  # an escaped \n only
    assert fast.split(message) == [message] and fast.sub("", "message") == "message"


def test_the_http_app_installs_the_fast_path_once(tmp_path: Path) -> None:
    settings = load_settings(env=isolated_env(tmp_path))
    for _ in range(2):
        http_app(build_server(settings, Secrets()), settings, "127.0.0.1")
    installed = ServerSentEvent._LINE_SEP_EXPR
    assert isinstance(installed, sse_events.LineBreaks)
    assert not isinstance(installed.pattern, sse_events.LineBreaks)
    assert installed.pattern.pattern == ORIGINAL.pattern
