"""Purchase History at 1,000 and at 1,000,000 rows: does a page cost the same?

    .venv/bin/python -m bench.history_list [--sizes 1000,1000000] [--backends postgresql,sqlite]

1. Borrows a throwaway PostgreSQL database and a Redis database (`bench.services`), and
   one more throwaway database per further size; for SQLite, a file per size. Migrates
   each (`flask db upgrade`) and seeds an administrator, 20 creators, 5 cloud accounts
   and 3 plans.
2. Fills each with its size of executions by set-based SQL (PostgreSQL
   `generate_series`, SQLite a recursive CTE; never the ORM), 31 seconds apart, most
   completed, a fifth failed with an error; then VACUUM ANALYZE (ANALYZE) and a
   checkpoint, so the load's writes are not measured.
3. Serves each database with its own web app (`gunicorn -w 1`, one sync worker), signed
   in as the administrator, and follows `/api/history`'s `next` 19 times to the cursor
   of its page 20.
4. Times, in rounds that take every measure of every size in turn (so whatever else
   loads the machine weighs on all sizes alike): the panel's first page
   (`/admin/purchases/`) and its page 20 (`?page=19`), `/api/history`'s first page and
   its page 20 (the 20th request), and the home page with its capped per-status counts.
   Three untimed rounds, then `--repeats`; the median counts.
5. Prints the medians per size and, for each, the ratio of the largest size to the
   smallest against the 1.5 target.

Needs PostgreSQL (TEST_DATABASE_ADMIN_URL), Redis and the project's .venv, like every
benchmark here. Exit status 0, 1 on a failed run, 2 when a prerequisite is missing.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import PurchasePlan
from bench import BenchError, log, services
from bench.http_client import Client
from bench.processes import Deployment, start_process, stop_process, wait_for_http
from bench.services import Borrowed
from tests.factories import PASSWORD, make_account, make_user
from tests.support.commands import BIN
from tests.support.smtp import free_port

TARGET_RATIO = 1.5
ADMIN_EMAIL = "admin@bench.example"
PAGE = 20  # "page 20": the panel's ?page=19, the API's 20th request
# Of every 10 rows: 6 completed, 2 failed, one pending, one of the other ends in turn.
STATUS_CYCLE = ["completed"] * 6 + ["failed"] * 2 + ["pending", "cancelled"]
MEASURES = ("panel first page", "panel page 20", "api first page", "api page 20", "home")
# The home page's counts are capped (execution_reads.STATUS_COUNT_CAP per status): bounded,
# but they grow up to the cap, so the ratio target is not theirs.
TARGETED = MEASURES[:4]

# $status is the status of row g; the rest is the same on both databases.
COLUMNS = (
    "execution_id, plan_id, step_number, cloud_account_id, status, recommendations,"
    " total_upfront_cost, estimated_savings, error, created_by_user_id, retry_attempt_n,"
    " created_at, updated_at"
)
POSTGRES_FILL = f"""
INSERT INTO purchase_executions ({COLUMNS})
SELECT gen_random_uuid(),
       CASE WHEN g % 4 = 0 THEN (CAST(:plans AS uuid[]))[1 + g % 3] END, 1 + g % 3,
       (CAST(:accounts AS uuid[]))[1 + g % 5], status, '[]', g % 5000 + 0.5, g % 700,
       CASE WHEN status = 'failed' THEN 'InsufficientInstanceCapacity in us-east-1a #' || g END,
       (CAST(:creators AS uuid[]))[1 + g % 20], 0,
       now() - g * interval '31 seconds', now() - g * interval '31 seconds'
FROM (SELECT g, (CAST(:statuses AS text[]))[1 + g % 10] AS status
      FROM generate_series(1, :n) AS g) AS numbered
"""  # noqa: S608 - built of constants; every value is a bound parameter
SQLITE_UUID = (
    "lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' ||"
    " substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + abs(random()) % 4, 1) ||"
    " substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))"
)
SQLITE_MOMENT = "strftime('%Y-%m-%d %H:%M:%f000', 'now', '-' || (g * 31) || ' seconds')"
SQLITE_FILL = f"""
WITH RECURSIVE seq(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM seq WHERE g < :n),
numbered AS (SELECT g, json_extract(:statuses, '$[' || (g % 10) || ']') AS status FROM seq)
INSERT INTO purchase_executions ({COLUMNS})
SELECT {SQLITE_UUID},
       CASE WHEN g % 4 = 0 THEN json_extract(:plans, '$[' || (g % 3) || ']') END, 1 + g % 3,
       json_extract(:accounts, '$[' || (g % 5) || ']'), status, '[]', g % 5000 + 0.5, g % 700,
       CASE WHEN status = 'failed' THEN 'InsufficientInstanceCapacity in us-east-1a #' || g END,
       json_extract(:creators, '$[' || (g % 20) || ']'), 0, {SQLITE_MOMENT}, {SQLITE_MOMENT}
FROM numbered
"""  # noqa: S608 - built of constants; every value is a bound parameter


def seed_references(engine: Engine) -> dict[str, list[str]]:
    """The administrator, creators, accounts and plans the rows point at: their ids."""
    with Session(engine) as session, session.begin():
        make_user(session, ADMIN_EMAIL, ("Administrators",))
        creators = [make_user(session, f"creator-{i}@bench.example") for i in range(20)]
        accounts = [make_account(session) for _ in range(5)]
        plans = [PurchasePlan(name=f"ramp {i}", total_steps=3) for i in range(3)]
        session.add_all(plans)
        session.flush()
        return {
            "creators": [str(user.id) for user in creators],
            "accounts": [str(account.id) for account in accounts],
            "plans": [str(plan.id) for plan in plans],
        }


def fill(engine: Engine, rows: int, refs: dict[str, list[str]]) -> float:
    """Replace every execution with `rows` new ones; the seconds it took."""
    started = time.perf_counter()
    postgres = engine.dialect.name == "postgresql"
    params: dict[str, object] = {"n": rows, "statuses": STATUS_CYCLE, **refs}
    if not postgres:
        params = {k: v if k == "n" else json.dumps(v) for k, v in params.items()}
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM purchase_executions"))
        conn.execute(text(POSTGRES_FILL if postgres else SQLITE_FILL), params)
    with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text("VACUUM ANALYZE purchase_executions" if postgres else "ANALYZE"))
        # Write the load's dirty pages out now, not during the timed requests.
        conn.execute(text("CHECKPOINT" if postgres else "PRAGMA wal_checkpoint(TRUNCATE)"))
    return time.perf_counter() - started


@dataclass
class Served:
    """One size's database, filled and served by its own web app, signed in."""

    size: int
    client: Client
    paths: dict[str, str]  # measure -> the URL it requests


def database_for(stack: ExitStack, borrowed: Borrowed, backend: str, first: bool, size: int) -> str:
    """A database of its own for one size: the borrowed one for the first, more
    throwaway ones (dropped with `stack`) for the others; on SQLite, files."""
    if backend == "sqlite":
        return f"sqlite:///{borrowed.work_dir / f'history_{size}.db'}"
    if first:
        return borrowed.engine.url.render_as_string(hide_password=False)
    return stack.enter_context(services.throwaway_database("ccp_bench", keep=False))


def serve(stack: ExitStack, borrowed: Borrowed, database_url: str, size: int) -> Served:
    """Migrate, seed and fill the database with `size` rows, then start and sign in to
    its own `gunicorn -w 1` (stopped when `stack` closes)."""
    settings = Settings(
        database_url=database_url, redis_url=borrowed.redis_url, secret_key=secrets.token_hex(16)
    )
    deployment = Deployment(settings, {"PYTHONUNBUFFERED": "1"}, free_port())
    deployment.migrate()
    engine = create_engine(database_url)
    stack.callback(engine.dispose)
    seconds = fill(engine, size, seed_references(engine))
    log(f"{engine.dialect.name}: {size:,} rows in {seconds:.1f}s")
    argv = [str(BIN / "gunicorn"), "-w", "1", "-b", f"127.0.0.1:{deployment.web_port}"]
    name = f"web-{engine.dialect.name}-{size}"
    web = start_process(name, [*argv, "app:create_app()"], deployment.env(), borrowed.work_dir)
    stack.callback(stop_process, web)
    wait_for_http(deployment.web_port, web)
    client = Client(deployment.web_port)
    stack.callback(client.close)
    client.login(ADMIN_EMAIL, PASSWORD)
    cursor = None
    for _ in range(PAGE - 1):  # follow `next` to the cursor of page 20
        _status, payload = client.call(
            "GET", "/api/history" + (f"?before={cursor}" if cursor else "")
        )
        cursor = json.loads(payload)["next"]
        if cursor is None:
            raise BenchError(f"fewer than {PAGE} pages of history")
    paths = {
        "panel first page": "/admin/purchases/",
        "panel page 20": f"/admin/purchases/?page={PAGE - 1}",
        "api first page": "/api/history",
        "api page 20": f"/api/history?before={cursor}",
        "home": "/admin/",
    }
    return Served(size, client, paths)


def timed(served: Served, measure: str) -> float:
    """One request's milliseconds."""
    started = time.perf_counter()
    status, payload = served.client.call("GET", served.paths[measure])
    elapsed = time.perf_counter() - started
    if status != 200:
        raise BenchError(f"{measure} at {served.size:,} answered {status}: {payload[:300]!r}")
    return elapsed * 1000


def measure_backend(
    args: argparse.Namespace, borrowed: Borrowed, backend: str
) -> dict[int, dict[str, float]]:
    """Every size served at once; each round requests every measure of every size in
    turn, so whatever else loads the machine weighs on all sizes alike. The median of
    `--repeats` rounds, after three untimed ones."""
    with ExitStack() as stack:
        served = [
            serve(stack, borrowed, database_for(stack, borrowed, backend, i == 0, size), size)
            for i, size in enumerate(args.sizes)
        ]
        log(f"{backend}: measuring, {args.repeats} rounds")
        samples: dict[tuple[int, str], list[float]] = defaultdict(list)
        for round_number in range(args.repeats + 3):
            for measure in MEASURES:
                for one in served:
                    elapsed = timed(one, measure)
                    if round_number >= 3:
                        samples[(one.size, measure)].append(elapsed)
    return {
        size: {m: statistics.median(samples[(size, m)]) for m in MEASURES} for size in args.sizes
    }


def report(backend: str, results: dict[int, dict[str, float]]) -> list[str]:
    sizes = sorted(results)
    small, large = sizes[0], sizes[-1]
    head = f"{backend:<12}" + "".join(f"{size:>14,}" for size in sizes) + "    ratio"
    lines = [head + f" ({large:,} / {small:,}, target <= {TARGET_RATIO})"]
    for name in MEASURES:
        ratio = results[large][name] / results[small][name]
        verdict = "ok" if ratio <= TARGET_RATIO else "OVER"
        if name not in TARGETED:
            verdict = "(capped counts: bounded, no target)"
        cells = "".join(f"{results[size][name]:>11.1f} ms" for size in sizes)
        lines.append(f"  {name:<18}{cells}   x{ratio:.2f} {verdict}")
    return lines


def measure(args: argparse.Namespace, borrowed: Borrowed) -> None:
    numbers = {backend: measure_backend(args, borrowed, backend) for backend in args.backends}
    print(f"\nmedian of {args.repeats} rounds, page size 50, gunicorn -w 1 (sync) per size")
    for backend, results in numbers.items():
        print("\n".join(report(backend, results)))
    if args.json:
        args.json.write_text(json.dumps({"argv": sys.argv[1:], "medians_ms": numbers}, indent=2))


def _list(kind: Callable[[str], object]) -> Callable[[str], list]:
    return lambda value: [kind(part) for part in value.split(",") if part.strip()]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Purchase History (panel and /api/history), first page and page 20, "
        "at each size; the ratio of the largest to the smallest."
    )
    parser.add_argument("--sizes", type=_list(int), default=[1_000, 1_000_000], help="1000,1000000")
    parser.add_argument(
        "--backends", type=_list(str), default=["postgresql"], help="postgresql (default), sqlite"
    )
    parser.add_argument("--repeats", type=int, default=21, help="timed requests per measure (21)")
    parser.add_argument("--json", type=Path, help="also write the medians to this file")
    services.add_arguments(parser)
    args = parser.parse_args(argv)
    if sorted(args.sizes) != args.sizes or not args.sizes or min(args.sizes) < 50 * PAGE:
        parser.error(f"--sizes: ascending, each at least {50 * PAGE:,} (page {PAGE} must exist)")
    if set(args.backends) - {"postgresql", "sqlite"} or args.repeats < 1:
        parser.error("--backends takes postgresql and/or sqlite; --repeats at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return services.run(lambda borrowed: measure(args, borrowed), args)


if __name__ == "__main__":
    sys.exit(main())
