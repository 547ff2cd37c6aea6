"""The embedded default provider: buys nothing, answers like a cloud API would.

Its purchase id is derived from the idempotency key, so it is idempotent as a real
provider's client token makes a purchase idempotent: asked twice under one key, it
answers the same purchase. Two knobs on an item drive it for demos and tests:
`simulate_error` (the purchase fails with that text) and `simulate_delay_seconds` (the
purchase takes that long, at most a minute: time to stop a worker mid-purchase).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.providers import PurchaseFailed

MAX_DELAY_SECONDS = 60.0


@dataclass(frozen=True)
class SimulatedProvider:
    name: str
    idempotent: bool = True

    def purchase(self, key: str, item: Mapping[str, Any]) -> str:
        delay = _seconds(item.get("simulate_delay_seconds"))
        if delay:
            time.sleep(delay)
        if item.get("simulate_error"):
            raise PurchaseFailed(str(item["simulate_error"]))
        digest = hashlib.sha256(f"{self.name}:{key}".encode()).hexdigest()[:20]
        return f"sim-{self.name}-{digest}"


def _seconds(value: Any) -> float:
    if isinstance(value, bool):
        return 0.0
    try:
        return max(0.0, min(float(value), MAX_DELAY_SECONDS))
    except (TypeError, ValueError):
        return 0.0
