"""The panel's formatters (admin.formatting) and the rules under them: money
(`app.domain.money.usd`), short ids, statuses as badges, times in a zone
(`app.domain.time_zones`). Pure: no database, no request."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from admin import formatting
from app.domain.errors import DomainError
from app.domain.money import usd
from app.domain.statuses import Status
from app.domain.time_zones import parse_time_zone, zone_of
from app.services.purchase_summary import money as summary_money

# --- Money ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (Decimal("12000.00"), "$12,000.00"),
        (12000, "$12,000.00"),
        ("1234567.891", "$1,234,567.89"),
        (Decimal("2.675"), "$2.68"),  # a Decimal is taken as it is: no float on the way
        (-5.5, "-$5.50"),
        ("-0.001", "$0.00"),  # never "-$0.00"
        (0, "$0.00"),
        (" 42 ", "$42.00"),
    ],
)
def test_usd_writes_dollars_with_separators_and_cents(value, shown):
    assert usd(value) == shown


@pytest.mark.parametrize("value", [None, "", "abc", True, "NaN", "Infinity", Decimal("NaN"), []])
def test_usd_writes_a_question_mark_for_what_is_not_an_amount(value):
    assert usd(value) == "$?"


def test_the_email_summary_and_the_panel_write_money_the_same_way():
    for value in (Decimal("12000"), "3173", -1, "x"):
        assert summary_money(value) == usd(value)
    assert formatting.money(Decimal("12000")) == "$12,000.00"
    assert formatting.money(None) == formatting.money("") == "—"


# --- Ids and statuses ---------------------------------------------------------------------


def test_a_short_id_is_the_first_eight_characters():
    assert formatting.short_id("3f2c9a1e-0b4d-4c6e-9f00-1234567890ab") == "3f2c9a1e"
    assert formatting.short_id("abc") == "abc"
    assert formatting.short_id(None) == "—"


def test_an_id_chip_carries_the_whole_id_escaped():
    full = "3f2c9a1e-0b4d-4c6e-9f00-1234567890ab"
    chip = str(formatting.id_chip(full))
    assert ">3f2c9a1e</code>" in chip
    assert f'data-copy-id="{full}"' in chip and f'title="{full} (click to copy)"' in chip
    hostile = str(formatting.id_chip('"><script>alert(1)</script>'))
    assert "<script>" not in hostile and "&#34;&gt;&lt;script&gt;" in hostile


def test_every_status_has_its_own_colour():
    classes = [formatting.status_class(status) for status in Status]
    assert len(set(classes)) == len(classes), "two statuses share a colour"
    assert formatting.UNKNOWN_STATUS_BADGE not in classes


def test_a_status_badge_reads_as_words_and_keeps_the_status():
    badge = str(formatting.status_badge("partially_completed"))
    assert re.fullmatch(
        r'<span class="badge badge-partial status-badge" data-status="partially_completed">'
        r"partially completed</span>",
        badge,
    )
    assert 'class="badge badge-light ' in str(formatting.status_badge("<odd>"))
    assert "&lt;odd&gt;" in str(formatting.status_badge("<odd>"))
    assert str(formatting.status_badge(None)) == "—"


# --- Time zones ----------------------------------------------------------------------------


def test_a_moment_shows_in_the_zone_with_its_abbreviation():
    moment = datetime(2026, 7, 1, 12, 30, tzinfo=UTC)
    assert formatting.local_text(moment, ZoneInfo("Europe/Paris")) == "2026-07-01 14:30 CEST"
    assert formatting.local_text(moment, ZoneInfo("Asia/Tokyo")) == "2026-07-01 21:30 JST"
    assert formatting.local_text(moment, UTC) == "2026-07-01 12:30 UTC"


def test_daylight_saving_time_moves_the_offset_and_the_abbreviation():
    new_york = ZoneInfo("America/New_York")
    # Clocks go forward at 2:00 EST on 8 March 2026 (07:00 UTC).
    before = datetime(2026, 3, 8, 6, 59, tzinfo=UTC)
    after = datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    assert formatting.local_text(before, new_york) == "2026-03-08 01:59 EST"
    assert formatting.local_text(after, new_york) == "2026-03-08 03:00 EDT"
    # And back at 2:00 EDT on 1 November 2026: 1:30 happens twice.
    first = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    second = datetime(2026, 11, 1, 6, 30, tzinfo=UTC)
    assert formatting.local_text(first, new_york) == "2026-11-01 01:30 EDT"
    assert formatting.local_text(second, new_york) == "2026-11-01 01:30 EST"


def test_a_naive_moment_is_taken_as_utc():
    naive = datetime(2026, 1, 15, 9, 0)
    assert formatting.local_text(naive, ZoneInfo("Europe/London")) == "2026-01-15 09:00 GMT"


def test_the_time_element_shows_local_time_and_utc_on_hover():
    moment = datetime(2026, 1, 15, 9, 0, 5, tzinfo=UTC)
    shown = str(formatting.local_time_in(moment, "Asia/Kolkata"))
    assert shown == (
        '<time class="moment" datetime="2026-01-15T09:00:05+00:00" '
        'title="2026-01-15 09:00:05 UTC">2026-01-15 14:30 IST</time>'
    )
    assert ">2026-01-15 09:00 UTC</time>" in str(formatting.local_time_in(moment, None))
    assert str(formatting.local_time_in(None, "Asia/Kolkata")) == "—"


def test_a_stored_zone_the_database_no_longer_knows_shows_utc():
    assert zone_of("Mars/Olympus_Mons") is UTC
    assert zone_of(None) is UTC and zone_of("") is UTC
    moment = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
    assert ">2026-01-15 09:00 UTC</time>" in str(formatting.local_time_in(moment, "Nowhere/X"))


@pytest.mark.parametrize(
    ("raw", "zone"),
    [
        ("Europe/Paris", "Europe/Paris"),
        ("  America/New_York ", "America/New_York"),
        ("UTC", "UTC"),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_a_chosen_zone_is_an_iana_name_or_blank_for_utc(raw, zone):
    assert parse_time_zone(raw) == zone


@pytest.mark.parametrize(
    "raw",
    [
        "Mars/Olympus_Mons",
        "europe/paris",  # names are case-sensitive in the zone database
        "../../etc/passwd",
        "Europe/Paris\x00",
        "x" * 10_000,
        "\ud800",
        42,
        ["Europe/Paris"],
    ],
)
def test_an_unknown_zone_is_refused_with_400_saying_what_is_expected(raw):
    with pytest.raises(DomainError) as refused:
        parse_time_zone(raw)
    assert refused.value.status == 400
    assert "Europe/Paris" in refused.value.message  # an example of what is expected
    assert len(refused.value.message) < 200  # huge input is not echoed whole
