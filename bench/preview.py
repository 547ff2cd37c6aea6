"""A purchase's preview at 10 and at 1,000 items: the same number of queries?

    .venv/bin/python -m bench.preview [--repeats 5] [--postgresql URL]

1. Migrates a throwaway SQLite file (the embedded default), and the PostgreSQL database
   given, if any; seeds a user with `create-any`, a simulated account, and a spend
   limit on the user's group (so the limits' queries are part of what is counted).
2. Signs in through the app's own test client and calls `POST /api/purchases?preview=true`
   with 10 items (the baseline) and with 1,000, `--repeats` times each after one untimed
   round, counting every statement the database is sent.
3. Prints per size the median time and the statements, and the ratios 1,000 : 10 of the
   statements (target 1.0: a constant number, not one per item) and of the time per
   item (below 1.0: the fixed cost is shared).

Exit status 0, 1 when the statements differ between sizes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from flask_migrate import upgrade

from app import create_app
from app.config import Settings
from app.db import db, unit_of_work
from app.models import Group, SpendLimit
from app.services.identity import create_group
from tests.factories import PASSWORD, make_account, make_user
from tests.support.statements import recorded_statements

SIZES = (10, 1000)


def item(n: int) -> dict[str, Any]:
    return {
        "provider": "aws",
        "service": "ec2",
        "region": "us-east-1",
        "resource_type": f"m5.{n}",
        "account_id": "123456789012",
        "count": 1,
        "term_years": 3,
        "payment_option": "partial-upfront",
        "upfront_cost": "100.00",
        "monthly_cost": "2.50",
        "monthly_savings": "9.00",
    }


def measure(database_url: str, repeats: int) -> dict[int, tuple[float, int]]:
    settings = Settings(
        database_url=database_url,
        secret_key="bench",  # noqa: S106  (a throwaway app, never served)
        sign_in_rate_limit="10000 per minute",
    )
    app = create_app(settings)
    app.config.update(TESTING=True)
    with app.app_context():
        upgrade()
        with unit_of_work() as session:
            create_group(session, "Bench buyers", ["create-any:purchases"])
            make_user(session, "buyer@bench.example", groups=("Bench buyers",))
            account = make_account(session)
            account_id = str(account.id)
            group = session.query(Group).filter_by(name="Bench buyers").one()
            session.add(SpendLimit(group_id=group.id, max_per_purchase=10**9, max_per_day=10**10))
        engine = db.engine
    assert engine is not None
    # Each request in an app context of its own, as when served: nothing is cached between
    # them.
    client = app.test_client()
    login = client.post(
        "/api/auth/login", json={"email": "buyer@bench.example", "password": PASSWORD}
    )
    token = login.json["csrf_token"]
    results: dict[int, tuple[float, int]] = {}
    for size in SIZES:
        body = {
            "cloud_account_id": account_id,
            "recommendations": [item(n) for n in range(size)],
        }
        times, counts = [], set()
        for round_ in range(repeats + 1):
            with recorded_statements(engine) as seen:
                started = time.perf_counter()
                response = client.post(
                    "/api/purchases?preview=true", json=body, headers={"X-CSRFToken": token}
                )
                elapsed = time.perf_counter() - started
            if response.status_code != 200:
                raise SystemExit(f"preview answered {response.status_code}: {response.json}")
            if round_:
                times.append(elapsed)
                counts.add(len(seen))
        results[size] = (statistics.median(times), max(counts))
    engine.dispose()
    return results


def report(name: str, results: dict[int, tuple[float, int]]) -> bool:
    (base_time, base_queries), (big_time, big_queries) = results[SIZES[0]], results[SIZES[1]]
    for size, (elapsed, queries) in results.items():
        print(f"{name}: {size:>5} items  {elapsed * 1000:8.1f} ms  {queries} statements")
    per_item = (big_time / SIZES[1]) / (base_time / SIZES[0])
    print(
        f"{name}: statements 1000:10 ratio {big_queries / base_queries:.2f} (target 1.00); "
        f"time per item 1000:10 ratio {per_item:.2f}"
    )
    return big_queries == base_queries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--postgresql", help="a throwaway PostgreSQL database URL to migrate")
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'bench.db'}"
        ok &= report("sqlite", measure(url, args.repeats))
    if args.postgresql:
        ok &= report("postgresql", measure(args.postgresql, args.repeats))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
