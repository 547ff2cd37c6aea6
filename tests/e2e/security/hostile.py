"""Hypothesis strategies for hostile requests: the values an attacker types, as text for
paths, query strings and form fields, and as JSON documents and raw bodies.

Text may hold what the product must refuse cleanly rather than crash on: NUL and other
control characters, lone surrogates (sent percent-encoded in URLs and forms, and as
`\\ud800` escapes in JSON), very long text, numbers where text is expected and the
reverse, dates at and past the calendar's ends.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

NASTY = [
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    "\x1b[31m",
    "\r\nSet-Cookie: x=1",
    "\u202e",
    "x" * 10_000,
    "",
    " ",
    "abc",
    "-1",
    "0",
    "²",  # a digit to str.isdigit, not to int()
    "\uff11\uff12",  # fullwidth digits
    "2147483648",
    "9223372036854775808",
    "-9223372036854775809",
    "9" * 400,
    "1e309",
    "NaN",
    "9999-12-31",
    "0000-00-00",
    "9999-12-31 23:59:59",
    "0001-01-01 00:00:00",
    "2024-02-30",
    "not-a-uuid",
    "ffffffff-ffff-ffff-ffff-fffffffffffff",
    "00000000-0000-0000-0000-000000000000",
    "../../etc/passwd",
    "' OR 1=1 --",
    "<script>alert(1)</script>",
    "null",
    "[]",
    "{}",
    "csv",
    "approve",
    "retry",
    "failed",
]

# Query parameters the panel and the API read (Flask-Admin's list arguments among them).
QUERY_KEYS = [
    "page",
    "page_size",
    "sort",
    "desc",
    "search",
    "id",
    "url",
    "next",
    "token",
    "status",
    "limit",
    "cursor",
    "before",
    "after",
    "created_from",
    "created_to",
    "creator",
    "account",
    "plan",
    "flt0_0",
    "flt1_1",
]
FORM_KEYS = [
    "email",
    "password",
    "action",
    "rowid",
    "id",
    "next",
    "url",
    "force",
    "token",
    "name",
    "permissions",
    "restricts_defaults",
    "active",
    "groups",
    "provider",
    "external_id",
    "contact_email",
]
JSON_KEYS = [
    "email",
    "password",
    "token",
    "force",
    "execution_ids",
    "filter",
    "status",
    "account",
    "creator",
    "created_from",
    "created_to",
    "search",
]

control_text = st.text(
    st.characters(min_codepoint=0, max_codepoint=0x1F) | st.characters(categories=["Cs"]),
    min_size=1,
    max_size=4,
)
hostile_text = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=30),
    control_text,
    st.builds(lambda a, b: a + b, st.sampled_from(NASTY), control_text),
)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=2**63, max_value=2**200),
    st.integers(max_value=-(2**63)),
    st.floats(allow_nan=False, allow_infinity=False),
)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | hostile_text,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(JSON_KEYS) | hostile_text, inner, max_size=4)
    ),
    max_leaves=12,
)
# Bodies the JSON parser itself must survive: deep nesting, broken documents.
RAW_JSON = [
    "[" * 100_000 + "]" * 100_000,
    '{"email":' * 50_000 + "1" + "}" * 50_000,
    '{"execution_ids": ' + "[" * 20_000 + "]" * 20_000 + "}",
    "{",
    '"\\ud800"',
    '{"email": "\\u0000", "password": "\\ud800"}',
    "1" * 5000,
    "",
]


def url_text(value: str) -> str:
    """`value` percent-encoded as UTF-8 (lone surrogates as their would-be bytes)."""
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def query_string(params: dict[str, str]) -> str:
    return "&".join(f"{url_text(key)}={url_text(value)}" for key, value in params.items())


def json_body(value: Any) -> str:
    """The JSON text of `value`; lone surrogates become `\\ud800`-style escapes."""
    return json.dumps(value, ensure_ascii=True)


def without_surrogates(value: str) -> str:
    """For multipart bodies, which the test client encodes strictly: a NUL instead."""
    return "".join("\x00" if 0xD800 <= ord(char) <= 0xDFFF else char for char in value)
