"""Fixtures of the worker tests."""

from __future__ import annotations

import pytest
from aiosmtpd.controller import Controller

from tests.support.smtp import ScriptedSmtp, free_port


@pytest.fixture
def scripted_smtp(app, settings, monkeypatch):
    """Start SMTP servers on demand; the app's settings point at the latest one."""
    controllers: list[Controller] = []

    def start(reply: str | None = None, port: int | None = None, **overrides) -> ScriptedSmtp:
        handler = ScriptedSmtp(reply)
        port = port or free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        controllers.append(controller)
        point_settings_at(port, **overrides)
        return handler

    def point_settings_at(port: int, **overrides) -> None:
        changed = settings.with_overrides(smtp_port=port, **overrides)
        monkeypatch.setitem(app.extensions, "settings", changed)

    start.point_settings_at = point_settings_at
    yield start
    for controller in controllers:
        controller.stop()
