"""The accounts pages' "Import recommendations" button: on every account in the list and
on the edit page, a link (it changes nothing itself) to the New purchase page for that
account, asking it to import."""

from __future__ import annotations

import html
import re

import pytest

from tests.e2e.helpers import page_login
from tests.factories import PASSWORD, make_account, make_user


@pytest.fixture
def root(client, db_session):
    user = make_user(db_session, "root@example.com", groups=("Administrators",))
    assert page_login(client, user.email, PASSWORD).status_code == 302
    return user


def import_links(page: str) -> dict[str, str]:
    """The button's href by the account id it carries."""
    found = re.findall(
        r'<a [^>]*href="([^"]*)"[^>]*data-action="import-recommendations" '
        r'data-account-id="([^"]*)"',
        page,
    )
    return {account: html.unescape(href) for href, account in found}


def test_each_account_offers_an_import_to_a_new_purchase(client, db_session, root):
    aws = make_account(db_session, provider="aws")
    gcp = make_account(db_session, provider="gcp", mode="dry_run")

    listed = import_links(client.get("/admin/accounts/").text)
    edited = import_links(client.get(f"/admin/accounts/edit/?id={gcp.id}").text)

    for account in (aws, gcp):
        href = listed[str(account.id)]
        assert href.startswith("/admin/purchases/new/?")
        assert f"account={account.id}" in href and "import=1" in href
    assert edited == {str(gcp.id): listed[str(gcp.id)]}
