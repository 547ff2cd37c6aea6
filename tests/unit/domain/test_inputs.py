import uuid

import pytest

from app.domain.errors import DomainError
from app.domain.inputs import clean_text, is_text, parse_bool, parse_uuid, text_problem


@pytest.mark.parametrize(
    ("raw", "value"),
    [(None, False), ("", False), (" TRUE ", True), ("yes", True), ("1", True), ("off", False)],
)
def test_booleans_in_their_usual_spellings(raw, value):
    assert parse_bool(raw) is value


@pytest.mark.parametrize("raw", ["maybe", "2", "truthy", "ja"])
def test_anything_else_is_for_the_caller_to_refuse(raw):
    assert parse_bool(raw) is None


def test_uuids_in_any_spelling_and_refusals_that_never_echo_huge_input():
    value = uuid.uuid4()
    assert parse_uuid(f"  {str(value).upper()} ") == value
    with pytest.raises(DomainError) as refused:
        parse_uuid("x" * 10_000, "retry request id")
    assert refused.value.status == 400
    assert refused.value.message.startswith("malformed retry request id")
    assert len(refused.value.message) < 120


def test_text_with_a_lone_surrogate_is_not_text():
    assert is_text("ok ✓")
    assert not is_text("\ud800@x")
    assert not is_text(b"bytes")


@pytest.mark.parametrize(
    "raw", ["a\x00b", "\x1b[31m", "tab\x0bvertical", "del\x7f", "c1\x85", "\udfff"]
)
def test_control_characters_and_lone_surrogates_are_refused_naming_the_field(raw):
    assert not is_text(raw)
    with pytest.raises(DomainError) as refused:
        clean_text(raw, "email")
    assert refused.value.status == 400
    assert refused.value.message.startswith("email ")


@pytest.mark.parametrize("raw", ["", "line one\nline two\r\n\ttabbed", "Zürich ✓ 東京"])
def test_ordinary_text_with_tabs_and_line_breaks_is_taken_as_it_is(raw):
    assert text_problem(raw) is None
    assert clean_text(raw, "note") == raw
