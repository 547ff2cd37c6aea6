import pytest

from app.auth.session import safe_next_url


@pytest.mark.parametrize("target", ["/admin/", "/admin/purchases/?page=2", "/login"])
def test_paths_on_this_site_are_kept(target):
    assert safe_next_url(target) == target


@pytest.mark.parametrize(
    "target",
    [
        None,
        "",
        "https://evil.example.com/",
        "//evil.example.com/admin",
        "/\\evil.example.com",
        "javascript:alert(1)",
        "admin/",
        "http:/evil.example.com",
    ],
)
def test_anything_leaving_the_site_is_dropped(target):
    assert safe_next_url(target) is None
