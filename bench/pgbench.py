"""The baseline: pgbench running the bare three writes of a retry in one transaction,
on the benchmark's own database once the product has stopped.

1. insert the successor, a pending copy of the predecessor;
2. point the failed predecessor at it, only if nobody did so first;
3. insert its suppression.

Only these three: not the outbox row the product now writes with them (`notifications`),
nor the retry request, the audit events or anything the approval email needs. The
ratio compares the whole product with the floor those writes set.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, text

from bench import BenchError, log

SCRIPT = """\
-- The bare three writes of a retry, one transaction per retry, each on a
-- distinct failed predecessor from the pre-seeded pool.
SELECT p.execution_id AS pred, gen_random_uuid() AS succ
  FROM bench_pgbench_pool p WHERE p.n = (SELECT nextval('bench_pgbench_seq')) \\gset
BEGIN;
INSERT INTO purchase_executions (execution_id, status, recommendations, error,
    created_by_user_id, retry_attempt_n, cloud_account_id, plan_id, step_number,
    total_upfront_cost, estimated_savings)
  SELECT :succ, 'pending', recommendations, NULL, created_by_user_id, retry_attempt_n + 1,
    cloud_account_id, plan_id, step_number, total_upfront_cost, estimated_savings
  FROM purchase_executions WHERE execution_id = :pred;
UPDATE purchase_executions SET retry_execution_id = :succ, updated_at = now()
  WHERE execution_id = :pred AND status = 'failed' AND retry_execution_id IS NULL;
INSERT INTO purchase_suppressions (execution_id, account_id, provider, service, region,
    resource_type, engine, suppressed_count, expires_at)
  VALUES (:succ, '123456789012', 'aws', 'ec2', 'us-east-1', 'm5.large', '', 2,
    now() + interval '7 days');
END;
"""


def seed_pool(engine: Engine, *, size: int, like: uuid.UUID) -> None:
    """`size` failed rows, copies of the failed row `like`, numbered for the script's
    sequence to hand out: each transaction retries a row of its own, as each retry of
    the product does."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE bench_pgbench_pool"
                " (n integer PRIMARY KEY, execution_id uuid NOT NULL)"
            )
        )
        conn.execute(text("CREATE SEQUENCE bench_pgbench_seq"))
        conn.execute(
            text(
                "WITH made AS ("
                " INSERT INTO purchase_executions (execution_id, status, recommendations, error,"
                " created_by_user_id, retry_attempt_n, cloud_account_id, plan_id, step_number,"
                " total_upfront_cost, estimated_savings)"
                " SELECT gen_random_uuid(), 'failed', recommendations, error, created_by_user_id,"
                " 0, cloud_account_id, plan_id, step_number, total_upfront_cost, estimated_savings"
                " FROM purchase_executions, generate_series(1, :size)"
                " WHERE execution_id = :like"
                " RETURNING execution_id)"
                " INSERT INTO bench_pgbench_pool (n, execution_id)"
                " SELECT row_number() OVER (), execution_id FROM made"
            ),
            {"size": size, "like": like},
        )


def vacuum(engine: Engine) -> None:
    with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text("VACUUM ANALYZE"))


@dataclass
class PgbenchResult:
    tps: float
    transactions: int


def run_pgbench(
    engine: Engine, *, clients: int, seconds: int, pool: int, work_dir: Path
) -> PgbenchResult:
    """Run the script for `seconds`; check that every transaction linked one pool row."""
    script = work_dir / "three_writes.sql"
    script.write_text(SCRIPT)
    vacuum(engine)
    url = engine.url
    argv = f"pgbench -n -M prepared -f {script} -c {clients} -j 2 -T {seconds}".split()
    argv += ["-h", url.host or "127.0.0.1", "-p", str(url.port or 5432)]
    argv += ["-U", url.username or "postgres", str(url.database)]
    log(f"pgbench: {' '.join(argv)}")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120)  # noqa: S603
    output = result.stdout + result.stderr
    tps_match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", output)
    done_match = re.search(r"number of transactions actually processed: (\d+)", output)
    if "expected one row, got 0" in output:
        raise BenchError(f"the pgbench pool of {pool} rows ran out: raise --pgbench-pool")
    if result.returncode != 0 or not tps_match or not done_match:
        raise BenchError(f"pgbench failed (exit {result.returncode}):\n{output}")
    done = int(done_match.group(1))
    if "aborted" in output and re.search(r"number of failed transactions: [1-9]", output):
        raise BenchError(f"pgbench had failed transactions:\n{output}")
    with engine.connect() as conn:
        linked = conn.scalar(
            text(
                "SELECT count(*) FROM bench_pgbench_pool p JOIN purchase_executions e"
                " USING (execution_id) WHERE e.retry_execution_id IS NOT NULL"
            )
        )
    if linked != done:
        raise BenchError(
            f"pgbench reported {done} transactions but {linked} pool rows are "
            f"linked (pool of {pool}: raise --pgbench-pool if it ran out)"
        )
    return PgbenchResult(float(tps_match.group(1)), done)
