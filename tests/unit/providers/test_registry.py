"""The registry the app builds by default, and what it says about redrive safety."""

from __future__ import annotations

import pytest

from app.domain.providers import PROVIDERS, SERVICES, PurchaseMode
from app.providers import default_registry

REAL_MODES = (PurchaseMode.DRY_RUN, PurchaseMode.LIVE)


def test_the_default_registry_has_the_simulator_and_each_clouds_sdk():
    registry = default_registry()
    for name in PROVIDERS:
        assert type(registry.get(name, PurchaseMode.SIMULATE)).__name__ == "SimulatedProvider"
        for mode in REAL_MODES:
            assert registry.get(name, mode) is not None
            assert registry.get(name, mode).name == name
    assert registry.get("oracle", PurchaseMode.LIVE) is None


@pytest.mark.parametrize("provider", PROVIDERS)
def test_every_service_items_may_name_can_be_looked_up_after_a_lost_outcome(provider):
    """The services an item may name (the item rules) are exactly those whose lost
    purchases the provider can find: a retry of any of them is safe."""
    registry = default_registry()
    for mode in REAL_MODES:
        for service in SERVICES[provider]:
            assert registry.redrivable(mode, provider, service), (mode, provider, service)
        assert not registry.redrivable(mode, provider, "not-a-service")


def test_an_unknown_provider_is_never_redrivable():
    registry = default_registry()
    for mode in PurchaseMode:
        assert not registry.redrivable(mode, "oracle", "compute")
        assert not registry.redrivable(mode, "", "")
