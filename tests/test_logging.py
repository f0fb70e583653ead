"""The log scrubber: secrets never reach a log line, whatever field carries them."""

from server.logging import REDACTED, SecretScrubber


def test_known_secret_values_are_removed_everywhere() -> None:
    scrub = SecretScrubber(["hf_abc123456", "sb-service-key"])
    event = scrub(
        None,
        "info",
        {
            "event": "hub.search failed with hf_abc123456",
            "detail": {"nested": ["sb-service-key in a list"]},
            "count": 3,
        },
    )
    assert event["event"] == f"hub.search failed with {REDACTED}"
    assert event["detail"] == {"nested": [f"{REDACTED} in a list"]}
    assert event["count"] == 3


def test_fields_named_like_secrets_are_redacted() -> None:
    event = SecretScrubber()(None, "info", {"event": "x", "hf_token": "anything", "api_key": "k"})
    assert event == {"event": "x", "hf_token": REDACTED, "api_key": REDACTED}


def test_bearer_tokens_and_url_credentials_are_redacted() -> None:
    event = SecretScrubber()(
        None,
        "info",
        {
            "event": "request",
            "headers": "Authorization: Bearer eyJhbGciOi.payload.sig",
            "url": "postgresql://app:pa55word@db.example.supabase.co:5432/postgres",
        },
    )
    assert "eyJhbGciOi" not in event["headers"]
    assert "pa55word" not in event["url"] and "db.example.supabase.co" in event["url"]
