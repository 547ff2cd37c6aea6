"""Time zones as a person picks them: an IANA name from the zone database Python reads
(`zoneinfo`), such as "Europe/Paris", or none at all, which means UTC.

`parse_time_zone` is the one check a chosen name passes (the panel's settings page and
`flask users set-timezone` alike); `zone_of` turns a stored name back into a zone and
falls back to UTC for one the zone database no longer knows, so a page never fails
over a stale setting.
"""

from __future__ import annotations

from datetime import UTC, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from app.domain.errors import DomainError
from app.domain.inputs import text_problem

# The longest IANA name is about 30 characters; the column holds 64.
MAX_LENGTH = 64
EXAMPLES = "Europe/Paris, America/New_York or Asia/Tokyo"


@lru_cache(maxsize=1)
def known_time_zones() -> frozenset[str]:
    """Every name the zone database offers (read once: it does not change while we run)."""
    return frozenset(available_timezones())


def parse_time_zone(raw: object) -> str | None:
    """The IANA name in `raw`, surrounding blanks removed; None for blank (UTC). Anything
    else is a 400 `DomainError` that says what is expected (echoing at most 64
    characters of what came)."""
    if raw is None:
        return None
    if not isinstance(raw, str) or text_problem(raw) is not None:
        raise DomainError(400, f"a time zone is a name such as {EXAMPLES}")
    name = raw.strip()
    if not name:
        return None
    if name not in known_time_zones():
        shown = name if len(name) <= MAX_LENGTH else name[:MAX_LENGTH] + "…"
        raise DomainError(
            400,
            f"unknown time zone {shown!r}: pick an IANA name such as {EXAMPLES}",
            time_zone=shown,
        )
    return name


def zone_of(name: str | None) -> tzinfo:
    """The zone a stored name stands for; UTC for none, or for a name the zone database
    no longer knows (after an upgrade of tzdata, say)."""
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC
