"""How the panel writes values for a person to read at a glance, in one place: a status as
a coloured badge, money as "$12,000.00", an id as its first 8 characters (the whole id on
hover, one click copies it: panel/copy_id.js), a moment in the reader's own time zone
with the zone's abbreviation (UTC on hover).

`register(app)` makes them Jinja filters once, for every panel template:

    {{ model.status|status_badge }}   {{ status|status_class }}   {{ amount|money }}
    {{ id|id_chip }}   {{ id|short_id }}   {{ moment|local_time }}

and the `*_column` functions are the same formatters in the shapes Flask-Admin's
`column_formatters` / `column_type_formatters` call. Everything returned as `Markup`
is built with `Markup.format`, which escapes what it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import Any

from flask import Flask
from flask_login import current_user
from markupsafe import Markup, escape

from app.domain.money import usd
from app.domain.statuses import Status
from app.domain.time_zones import zone_of

NOTHING = "—"
SHORT_ID_LENGTH = 8
# Bootstrap 4 badge classes, the one mapping of a status to its colour: waiting is
# yellow, on its way blue, done green, partly done orange (panel.css), failed red, and
# what ended without running grey.
STATUS_BADGES: dict[str, str] = {
    Status.PENDING: "badge-warning",
    Status.APPROVED: "badge-info",
    Status.RUNNING: "badge-primary",
    Status.COMPLETED: "badge-success",
    Status.PARTIALLY_COMPLETED: "badge-partial",
    Status.FAILED: "badge-danger",
    Status.CANCELLED: "badge-secondary",
    Status.EXPIRED: "badge-dark",
}
UNKNOWN_STATUS_BADGE = "badge-light"
LOCAL_FORMAT = "%Y-%m-%d %H:%M %Z"
UTC_FORMAT = "%Y-%m-%d %H:%M:%S UTC"


def status_class(status: str | None) -> str:
    """The Bootstrap badge class of a status (`STATUS_BADGES`)."""
    return STATUS_BADGES.get(status or "", UNKNOWN_STATUS_BADGE)


def status_badge(status: str | None) -> Markup:
    """A status as a coloured badge carrying `data-status`, underscores read as spaces."""
    if not status:
        return escape(NOTHING)
    return Markup('<span class="badge {} status-badge" data-status="{}">{}</span>').format(
        status_class(status), status, status.replace("_", " ")
    )


def money(value: Any) -> str:
    """An amount as "$12,000.00" (`app.domain.money.usd`), an em dash for none."""
    if value is None or value == "":
        return NOTHING
    return usd(value)


def short_id(value: Any) -> str:
    """The first 8 characters of an id: enough to tell rows apart at a glance."""
    return NOTHING if value is None else str(value)[:SHORT_ID_LENGTH]


def id_chip(value: Any) -> Markup:
    """An id as its short form; the whole id on hover, and one click (or Enter) copies it."""
    if value is None:
        return escape(NOTHING)
    full = str(value)
    return Markup(
        '<code class="id-chip" role="button" tabindex="0" data-copy-id="{}" '
        'title="{} (click to copy)">{}</code>'
    ).format(full, full, short_id(full))


def local_text(moment: datetime, zone: tzinfo) -> str:
    """`moment` in `zone` with the zone's abbreviation: "2026-03-08 03:00 EDT". A naive
    moment is taken as UTC (how the database hands them back)."""
    return _aware(moment).astimezone(zone).strftime(LOCAL_FORMAT)


def utc_text(moment: datetime) -> str:
    return _aware(moment).astimezone(UTC).strftime(UTC_FORMAT)


def local_time_in(moment: datetime | None, zone_name: str | None) -> Markup:
    """A `<time>` showing `moment` in the zone named `zone_name` (None: UTC), with UTC
    on hover."""
    if moment is None:
        return escape(NOTHING)
    return Markup('<time class="moment" datetime="{}" title="{}">{}</time>').format(
        _aware(moment).astimezone(UTC).isoformat(),
        utc_text(moment),
        local_text(moment, zone_of(zone_name)),
    )


def reader_time_zone() -> str | None:
    """The signed-in user's time zone (None: UTC, and for nobody signed in)."""
    if current_user and current_user.is_authenticated:
        return getattr(current_user, "time_zone", None)
    return None


def local_time(moment: datetime | None) -> Markup:
    """`moment` in the signed-in reader's time zone (the `local_time` filter)."""
    return local_time_in(moment, reader_time_zone())


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# --- Flask-Admin's shapes ----------------------------------------------------------------


def time_column(_view: Any, value: datetime, _name: str) -> Markup:
    """`column_type_formatters[datetime]`."""
    return local_time(value)


def money_column(_view: Any, _context: Any, model: Any, name: str) -> str:
    """`column_formatters` for an amount column."""
    return money(getattr(model, name))


def id_column(_view: Any, _context: Any, model: Any, name: str) -> Markup:
    """`column_formatters` for an id column."""
    return id_chip(getattr(model, name))


FILTERS: dict[str, Callable[..., Any]] = {
    "status_badge": status_badge,
    "status_class": status_class,
    "money": money,
    "short_id": short_id,
    "id_chip": id_chip,
    "local_time": local_time,
}


def register(app: Flask) -> None:
    """Make the formatters Jinja filters of `app` (once, from `init_admin`)."""
    for name, formatter in FILTERS.items():
        app.add_template_filter(formatter, name)
