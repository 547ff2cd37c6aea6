"""The browser half of scripts/screenshot: sign in to a running panel as the demo admin
and save a PNG of each page asked for, at a 1,280 px wide viewport.

    .venv/bin/python scripts/screenshot.py --base-url http://127.0.0.1:PORT \
        --out-dir docs/screenshots /admin/ /admin/purchases/ /admin/causes/

Each page is saved as OUT_DIR/<name>.png, the name from its path (`page_name`). A page
that answers an error (one not built yet, say) is reported and skipped; the exit status
is then 1, after the other pages were taken. Run scripts/screenshot instead: it prepares
a throwaway database with the demo data, serves the panel, calls this, and stops
everything. Drives Debian's Chromium (/usr/bin/chromium) through Playwright, like the
browser tests.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from playwright.sync_api import Error, Page, expect, sync_playwright

from app.services.demo import DEMO_PASSWORD, DEMO_USERS

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium keeps dialing Google services, refused on a closed network.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
TIMEOUT_MS = 20_000
DEFAULT_PAGES = ("/admin/", "/admin/purchases/", "/admin/causes/")
DETAILS = "/admin/purchases/details/"  # without an id: a row's, picked from the list
# A full page is cut at this height: the top of a long list says what it looks like,
# and the PNG stays small.
MAX_HEIGHT = 1_200


def page_name(path: str) -> str:
    """The file name of a page: its path without /admin/ and the query, slashes as
    dashes; the panel's home is "home". "/admin/purchases/" -> "purchases"."""
    bare = path.split("?", 1)[0].strip("/")
    if bare == "admin" or not bare:
        return "home"
    bare = bare.removeprefix("admin/")
    return bare.replace("/", "-") or "home"


def sign_in(page: Page, base: str, email: str, password: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("[data-current-user]")).to_have_text(email)


def details_path(page: Page, base: str) -> str:
    """The details page of a row of Purchase History: a partly completed one (the page
    then shows every kind of item) if there is one, else the newest."""
    page.goto(f"{base}/admin/purchases/")
    rows = page.locator("table.model-list > tbody > tr")
    partial = rows.filter(has=page.locator('[data-status="partially_completed"]'))
    row = partial.first if partial.count() else rows.first
    href = row.locator('a[href*="/details/"]').first.get_attribute("href") or ""
    return href.split("&url=", 1)[0]


def take(page: Page, base: str, path: str, out: Path, width: int, max_height: int) -> bool:
    """Save `path` as `out`; False (and why, on stderr) if the page answered an error.
    `DETAILS` stands for a row's details page (`details_path`)."""
    if path == DETAILS:
        path = details_path(page, base)
    response = page.goto(f"{base}{path}")
    if response is None or not response.ok:
        status = response.status if response else "no response"
        print(f"[screenshot] {path} answered {status}: skipped", file=sys.stderr)
        return False
    page.wait_for_load_state("networkidle")
    height = page.evaluate("document.documentElement.scrollHeight")
    clip = {"x": 0, "y": 0, "width": width, "height": min(int(height), max_height)}
    page.screenshot(path=str(out), clip=clip, full_page=True)
    size_kb = out.stat().st_size // 1024
    print(f"[screenshot] {out}: {path}, {width}px wide, {size_kb} KB")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--base-url", required=True, help="the running panel, e.g. http://127.0.0.1:5000"
    )
    parser.add_argument("--out-dir", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--email", default=DEMO_USERS[0][0], help="default: the demo admin")
    parser.add_argument("--password", default=DEMO_PASSWORD)
    parser.add_argument(
        "--width", type=int, default=1280, help="viewport width (default: %(default)s)"
    )
    parser.add_argument(
        "--max-height",
        type=int,
        default=MAX_HEIGHT,
        help="a longer page is cut at this height (default: %(default)s)",
    )
    parser.add_argument(
        "pages", nargs="*", default=list(DEFAULT_PAGES), help="default: %(default)s"
    )
    args = parser.parse_args(argv)
    base = args.base_url.rstrip("/")
    args.out_dir.mkdir(parents=True, exist_ok=True)

    expect.set_options(timeout=TIMEOUT_MS)
    taken = 0
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport={"width": args.width, "height": 800})
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()
            sign_in(page, base, args.email, args.password)
            for path in args.pages:
                out = args.out_dir / f"{page_name(path)}.png"
                taken += take(page, base, path, out, args.width, args.max_height)
        except Error as exc:
            print(f"[screenshot] the browser failed: {exc}", file=sys.stderr)
            return 1
        finally:
            browser.close()
    return 0 if taken == len(args.pages) else 1


if __name__ == "__main__":
    sys.exit(main())
