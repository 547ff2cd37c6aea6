"""Who may read /metrics (`app.observability.access`), and the METRICS_TOKEN setting."""

from __future__ import annotations

import pytest

from app.config import ConfigError, Settings
from app.observability.access import scrape_refusal

TOKEN = "t" * 32


def refusal(
    *,
    token: str | None = None,
    production: bool = False,
    authorization: str | None = None,
    peer: str | None = "127.0.0.1",
    headers: tuple[str, ...] = (),
) -> str | None:
    return scrape_refusal(
        token=token,
        production=production,
        authorization=authorization,
        peer=peer,
        header_names=headers,
    )


@pytest.mark.parametrize("peer", ["127.0.0.1", "127.0.0.2", "::1"])
def test_without_a_token_this_machine_may_scrape(peer):
    assert refusal(peer=peer) is None


@pytest.mark.parametrize("peer", ["10.0.0.5", "192.168.1.2", "2001:db8::1", "", None, "nonsense"])
def test_without_a_token_another_machine_may_not(peer):
    assert "only this machine" in (refusal(peer=peer) or "")


@pytest.mark.parametrize("header", ["X-Forwarded-For", "x-real-ip", "FORWARDED"])
def test_without_a_token_a_proxied_request_may_not(header):
    """A proxy on the same host makes every visitor look like 127.0.0.1."""
    assert "only this machine" in (refusal(headers=("Accept", header)) or "")


def test_without_a_token_production_refuses_everyone():
    assert "set METRICS_TOKEN" in (refusal(production=True) or "")


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
@pytest.mark.parametrize("production", [False, True])
def test_the_token_opens_from_anywhere(scheme, production):
    assert (
        refusal(
            token=TOKEN,
            production=production,
            authorization=f"{scheme} {TOKEN}",
            peer="203.0.113.9",
            headers=("X-Forwarded-For",),
        )
        is None
    )


@pytest.mark.parametrize(
    "authorization",
    [None, "", TOKEN, f"Basic {TOKEN}", f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x", "Bearer "],
)
def test_with_a_token_nothing_else_opens_not_even_loopback(authorization):
    assert "Authorization: Bearer" in (refusal(token=TOKEN, authorization=authorization) or "")


def test_the_setting_is_read_and_checked():
    assert Settings.from_env({}).metrics_token is None
    assert Settings.from_env({"METRICS_TOKEN": TOKEN}).metrics_token == TOKEN
    for bad in ("short", "a" * 30 + " b", "a" * 30 + "é"):
        with pytest.raises(ConfigError, match="METRICS_TOKEN must be at least 24") as raised:
            Settings.from_env({"METRICS_TOKEN": bad})
        assert bad not in str(raised.value)  # a secret is never repeated
