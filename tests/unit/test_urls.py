"""Credentials in URLs are masked whatever characters the password holds (issue 20)."""

from __future__ import annotations

import pytest

from harvester.util.urls import mask, scrub


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://app:s3cr/t@db:5432/l", "postgresql+psycopg://app:***@db:5432/l"),
        ("postgresql+psycopg://app:a/b@c?d#e@db/l", "postgresql+psycopg://app:***@db/l"),
        ("https://user:pa/ss@jenkins.example.com/ci/", "https://user:***@jenkins.example.com/ci/"),
        ("https://user:plain@host/", "https://user:***@host/"),
        (
            "postgresql://db/l?user=app&password=s3cr/t&sslmode=require",
            "postgresql://db/l?user=app&password=***&sslmode=require",
        ),
        (
            "https://sei.example.com/hook?api_key=abc&x=1",
            "https://sei.example.com/hook?api_key=***&x=1",
        ),
        ("https://jenkins.example.com:8443/job/a/", "https://jenkins.example.com:8443/job/a/"),
        ("sqlite:///harvester.db", "sqlite:///harvester.db"),
    ],
)
def test_no_password_survives_masking(url: str, shown: str) -> None:
    assert mask(url) == shown


def test_a_message_with_a_url_inside_is_scrubbed() -> None:
    text = "ledger: cannot open postgresql://app:x/y@z@db/l (connection refused); sslpassword=q"
    assert (
        scrub(text)
        == "ledger: cannot open postgresql://app:***@db/l (connection refused); sslpassword=***"
    )
