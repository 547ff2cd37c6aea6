"""The browser half of scripts/screenshot: sign in to a running panel as the demo admin
and save a full-page PNG of Purchase History.

    .venv/bin/python scripts/screenshot.py --base-url http://127.0.0.1:PORT --out FILE.png

Run scripts/screenshot instead: it prepares a throwaway database with the demo data,
serves the panel, calls this, and stops everything. Drives Debian's Chromium
(/usr/bin/chromium) through Playwright, like the browser tests.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from playwright.sync_api import Error, expect, sync_playwright

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--base-url", required=True, help="the running panel, e.g. http://127.0.0.1:5000"
    )
    parser.add_argument("--out", required=True, type=Path, help="where to write the PNG")
    parser.add_argument("--email", default=DEMO_USERS[0][0], help="default: the demo admin")
    parser.add_argument("--password", default=DEMO_PASSWORD)
    parser.add_argument("--path", default="/admin/purchases/", help="default: %(default)s")
    parser.add_argument(
        "--width", type=int, default=1600, help="viewport width (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    base = args.base_url.rstrip("/")

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport={"width": args.width, "height": 900})
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()

            page.goto(f"{base}/login")
            page.get_by_label("Email").fill(args.email)
            page.get_by_label("Password").fill(args.password)
            page.get_by_role("button", name="Sign in").click()
            expect(page.locator("[data-current-user]")).to_have_text(args.email)

            response = page.goto(f"{base}{args.path}")
            if response is None or not response.ok:
                status = response.status if response else "no response"
                print(f"[screenshot] {args.path} answered {status}", file=sys.stderr)
                return 1
            page.wait_for_load_state("networkidle")
            rows = page.locator("td[data-row-actions]").count()
            if rows == 0:
                print(f"[screenshot] {args.path} shows no rows", file=sys.stderr)
                return 1

            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=True)
            print(f"[screenshot] {args.out}: {args.path} with {rows} rows, {args.width}px wide")
        except Error as exc:
            print(f"[screenshot] the browser failed: {exc}", file=sys.stderr)
            return 1
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
