"""Where a bulk-retried row's milliseconds go: the worker's steps run in this process,
one chunk at a time, timed and profiled.

    .venv/bin/python -m bench.bulk_retry_profile [--rows 5000] [--accounts 20] [--cprofile]

`bench.bulk_retry` measures the whole pipeline; this takes it apart. On a throwaway
database (as the benchmarks borrow one), seeded as `bench.bulk_retry` seeds it, it
records one batch (`retry.record_batch`, the web's part, timed once) and then,
for each chunk, does what `purchases.retry_execution` and
`notifications.send_approval_emails` do, step by step, without Celery:

1. settle: `claim_chunk` (the lease, committed), then `settle_chunk` in one unit of
   work, then the commit;
2. claim: `claim_approval_emails` in one unit of work (the claim UPDATE, loading the
   executions, the link tokens, rendering each message), then the commit;
3. send: `app.mail.send_message` for each email over one kept connection, to an
   aiosmtpd server in a process of its own (`aiosmtpd.handlers.Sink`);
4. record: `record_all_sent` every `RECORD_SENT_EVERY` emails, each in its own unit of
   work.

Each step's wall time is split into SQL (between SQLAlchemy's before/after cursor
execute: the round trip and the server's work), commit, and the Python rest; the
CPU of this process (`time.process_time`) and of the database's backends (from /proc)
are counted too. Rendering (`approval_email.render`), link tokens (`issue_links`),
the message's serialisation (`Message.as_bytes`) and the SMTP dialogue
(`smtplib.SMTP.sendmail`) are timed by wrapping them here; nothing in the product
changes. `--cprofile` adds each step's top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import glob
import io
import os
import pstats
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import Message
from pathlib import Path
from typing import Any

from sqlalchemy import event, select

from bench import BenchError, log, services, wait_for
from bench.cpu import _ticks
from bench.pgbench import vacuum
from bench.retries import ADMIN_EMAIL, seed
from bench.services import Borrowed
from tests.support.commands import BIN, REPO
from tests.support.smtp import SmtpServer, free_port

# Redis databases 8 and 10-13 are other test runs' on this machine: claim one of 7..1.
REDIS_DBS = tuple(range(7, 0, -1))
STEPS = ("settle", "claim", "send", "record")

# The lease owner of the steps run here, as a task run's id would be.
OWNER = "bench-profile"


@dataclass
class Step:
    """What one step cost over the whole batch."""

    wall: float = 0.0
    sql: float = 0.0
    statements: int = 0
    commit: float = 0.0
    cpu: float = 0.0  # this process
    pg_cpu: float = 0.0  # the database's backends
    parts: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    sql_by_kind: dict[str, list[float]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0.0])
    )
    profile: cProfile.Profile | None = None


class Meter:
    """SQL time per step (engine events), and the step being measured."""

    def __init__(self, engine: Any, db_name: str, profile: bool) -> None:
        self.steps = {name: Step(profile=cProfile.Profile() if profile else None) for name in STEPS}
        self.current: Step | None = None
        self.db_name = db_name
        self.backends: list[int] = []
        self._started: list[float] = []
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self._started.append(time.perf_counter())

    def _after(
        self,
        _conn: Any,
        _cursor: Any,
        statement: str,
        _parameters: Any,
        _context: Any,
        executemany: bool,
    ) -> None:
        spent = time.perf_counter() - self._started.pop()
        if self.current is not None:
            self.current.sql += spent
            self.current.statements += 1
            words = statement.split()
            kind = " ".join(words[:3]) if words else "?"
            if words and words[0] == "SELECT":
                kind = "SELECT " + next(
                    (words[i + 1] for i, w in enumerate(words[:-1]) if w == "FROM"), "?"
                )
            if executemany:
                kind += " (executemany)"
            entry = self.current.sql_by_kind[kind]
            entry[0] += 1
            entry[1] += spent

    def find_backends(self) -> None:
        """The PostgreSQL backends serving the database now (the pool's connections)."""
        self.backends = []
        for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
            try:
                raw = Path(cmdline).read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if raw.startswith("postgres:") and f" {self.db_name} " in raw:
                self.backends.append(int(cmdline.split("/")[2]))

    def backends_cpu(self) -> float:
        """CPU seconds so far of the backends `find_backends` found."""
        return sum(_ticks(pid) or 0 for pid in self.backends) / os.sysconf("SC_CLK_TCK")

    @contextmanager
    def step(self, name: str) -> Iterator[Step]:
        step = self.steps[name]
        self.current = step
        pg_before = self.backends_cpu()
        cpu_before = time.process_time()
        started = time.perf_counter()
        if step.profile is not None:
            step.profile.enable()
        try:
            yield step
        finally:
            if step.profile is not None:
                step.profile.disable()
            step.wall += time.perf_counter() - started
            step.cpu += time.process_time() - cpu_before
            step.pg_cpu += self.backends_cpu() - pg_before
            self.current = None


def timed(meter: Meter, part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn`, adding its wall time to `part` of the current step."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            if meter.current is not None:
                meter.current.parts[part] += time.perf_counter() - started

    return wrapper


@contextmanager
def sink_smtp() -> Iterator[SmtpServer]:
    """An SMTP server that accepts and discards, in a process of its own (so its CPU
    and the GIL are not this process's)."""
    port = free_port()
    argv = [str(BIN / "python"), "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}"]
    argv += ["-c", "aiosmtpd.handlers.Sink"]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # noqa: S603
    try:
        import smtplib

        def answers() -> bool:
            if proc.poll() is not None:
                raise BenchError(f"aiosmtpd exited: {proc.stderr.read() if proc.stderr else ''}")
            try:
                smtplib.SMTP("127.0.0.1", port, timeout=2).quit()
            except OSError:
                return False
            return True

        wait_for(answers, timeout=30, what="the sink SMTP server")
        yield SmtpServer("127.0.0.1", port, None)  # type: ignore[arg-type]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def profile_batch(args: argparse.Namespace, borrowed: Borrowed) -> None:
    from bench.processes import loopback_deployment

    engine = borrowed.engine
    with sink_smtp() as smtp:
        deployed = loopback_deployment(
            args,
            database_url=engine.url.render_as_string(hide_password=False),
            redis_url=borrowed.redis_url,
            smtp=smtp,
        )
        deployed.migrate()
        warmup, rows = seed(engine, args.warmup, args.rows, accounts=args.accounts)
        vacuum(engine)  # as bench.bulk_retry does before its run
        log(f"seeded {args.warmup} + {args.rows} failed rows over {args.accounts} accounts")
        os.environ.update(deployed.env())
        run_in_process(args, str(engine.url.database), warmup, rows)


def run_in_process(
    args: argparse.Namespace, db_name: str, warmup: list[uuid.UUID], rows: list[uuid.UUID]
) -> None:
    import smtplib

    from app import create_app
    from app.config import get_settings
    from app.db import db, unit_of_work, utcnow
    from app.domain.bulk_retry import BatchKind
    from app.mail import send_message
    from app.models import User
    from app.services import (
        approval_email,
        approvals,
        deliveries,
        notifications,
        retry,
        retry_settle,
    )
    from app.services.identity import principal_for
    from tasks.notifications import RECORD_SENT_EVERY

    app = create_app()
    with app.app_context():
        settings = get_settings()
        meter = Meter(db.engine, db_name, args.cprofile)
        # Wrapped where the product looks them up (module attributes), for this run only.
        approval_email.render = timed(
            meter, "render (approval_email.render)", approval_email.render
        )
        notifications.issue_links = timed(
            meter, "link tokens (issue_links)", notifications.issue_links
        )
        Message.as_bytes = timed(meter, "serialise (Message.as_bytes)", Message.as_bytes)  # type: ignore[method-assign]
        smtplib.SMTP.sendmail = timed(meter, "SMTP dialogue (SMTP.sendmail)", smtplib.SMTP.sendmail)  # type: ignore[method-assign]

        with unit_of_work() as session:
            admin = session.scalar(select(User).where(User.email == ADMIN_EMAIL))
            assert admin is not None
            principal = principal_for(admin)
        policy = retry.current_policy()
        grace = timedelta(days=settings.grace_period_days)

        def record(ids: Sequence[uuid.UUID]) -> tuple[uuid.UUID, list[int], float]:
            started = time.perf_counter()
            with unit_of_work() as session:
                batch, chunks = retry.record_batch(
                    session,
                    principal,
                    tuple(str(i) for i in ids),
                    kind=BatchKind.BULK,
                    selection={"execution_ids": len(ids)},
                    force=False,
                    policy=policy,
                    now=utcnow(),
                )
                batch_id = batch.id
            return batch_id, chunks, time.perf_counter() - started

        def commit_mark(name: str) -> tuple[float, float]:
            return time.perf_counter(), meter.steps[name].sql

        def commit_done(name: str, mark: tuple[float, float]) -> None:
            """The unit of work's exit (ORM flush and COMMIT), less the SQL in it."""
            started, sql = mark
            step = meter.steps[name]
            if meter.current is step:
                step.commit += time.perf_counter() - started - (step.sql - sql)

        def chunk(batch_id: uuid.UUID, number: int, measured: bool) -> int:
            @contextmanager
            def step(name: str) -> Iterator[None]:
                if measured:
                    with meter.step(name):
                        yield
                else:
                    yield

            meter.find_backends()
            with step("settle"):
                with unit_of_work() as session:
                    retry_settle.claim_chunk(session, batch_id, number, owner=OWNER, now=utcnow())
                with unit_of_work() as session:
                    created = retry_settle.settle_chunk(
                        session,
                        batch_id,
                        number,
                        owner=OWNER,
                        policy=policy,
                        approvals=approvals.current_policy(),
                        grace=grace,
                        now=utcnow(),
                    )
                    committing = commit_mark("settle")
                commit_done("settle", committing)
            with step("claim"):
                with unit_of_work() as session:
                    emails = notifications.claim_approval_emails(
                        session, created, owner=OWNER, settings=settings, now=utcnow()
                    )
                    committing = commit_mark("claim")
                commit_done("claim", committing)
            sent: list[deliveries.OutgoingEmail] = []
            for email in emails:
                with step("send"):
                    send_message(settings, email.message)
                sent.append(email)
                if len(sent) >= RECORD_SENT_EVERY or email is emails[-1]:
                    with step("record"):
                        with unit_of_work() as session:
                            deliveries.record_all_sent(session, sent, now=utcnow())
                            committing = commit_mark("record")
                        commit_done("record", committing)
                    sent = []
            return len(emails)

        log(f"warm-up: a batch of {len(warmup)} rows in process (untimed)")
        batch_id, chunks, _ = record(warmup)
        for number in chunks:
            chunk(batch_id, number, measured=False)
        log(f"recording a batch of {len(rows)} rows (the web's part)")
        batch_id, chunks, record_seconds = record(rows)
        if args.analyze:
            with db.engine.connect() as conn:  # what autovacuum would do, given time
                conn.exec_driver_sql("ANALYZE retry_batch_items")
                conn.commit()
            log("analyzed retry_batch_items (--analyze)")
        log(f"settling and emailing its {len(chunks)} chunks, one after the other")
        started = time.perf_counter()
        emailed = sum(chunk(batch_id, number, measured=True) for number in chunks)
        wall = time.perf_counter() - started
        if emailed != len(rows):
            raise BenchError(f"{emailed} emails for {len(rows)} rows")
    report(args, meter, len(rows), record_seconds, wall)


def report(
    args: argparse.Namespace, meter: Meter, n: int, record_seconds: float, wall: float
) -> None:
    def ms(seconds: float) -> str:
        return f"{1000 * seconds / n:6.3f}"

    print()
    print(
        f"{n} rows over {args.accounts} accounts, in this process, one chunk after the other: "
        f"{wall:.2f}s = {n / wall:.0f} rows/s on one core"
    )
    print(
        "recording the batch (web: record_batch + commit): "
        f"{record_seconds:.2f}s = {ms(record_seconds)} ms/row"
    )
    print()
    print("'commit': the unit of work's exit (ORM flush, COMMIT) less the SQL in it;")
    print("'Python': the rest of the step's wall time in this process.")
    print("ms per row        wall     SQL  commit  Python   CPU(this)  CPU(postgres)  statements")
    total = Step()
    for name in STEPS:
        step = meter.steps[name]
        python = step.wall - step.sql - step.commit
        print(
            f"  {name:<12} {ms(step.wall)}  {ms(step.sql)}  {ms(step.commit)}  {ms(python)}"
            f"     {ms(step.cpu)}       {ms(step.pg_cpu)}     {step.statements}"
        )
        total.wall += step.wall
        total.sql += step.sql
        total.commit += step.commit
        total.cpu += step.cpu
        total.pg_cpu += step.pg_cpu
        total.statements += step.statements
    python = total.wall - total.sql - total.commit
    print(
        f"  {'total':<12} {ms(total.wall)}  {ms(total.sql)}  {ms(total.commit)}  {ms(python)}"
        f"     {ms(total.cpu)}       {ms(total.pg_cpu)}     {total.statements}"
    )
    print()
    print("inside the steps (wall ms per row):")
    for name in STEPS:
        for part, seconds in sorted(meter.steps[name].parts.items(), key=lambda kv: -kv[1]):
            print(f"  {name:<8} {part:<36} {ms(seconds)}")
    print()
    print("SQL by statement (count, wall ms per row):")
    for name in STEPS:
        kinds = sorted(meter.steps[name].sql_by_kind.items(), key=lambda kv: -kv[1][1])
        for kind, (count, seconds) in kinds[:8]:
            print(f"  {name:<8} {count:6d}  {ms(seconds)}  {kind[:70]}")
    if args.cprofile:
        for name in STEPS:
            profile = meter.steps[name].profile
            assert profile is not None
            if args.cprofile_dir:
                args.cprofile_dir.mkdir(parents=True, exist_ok=True)
                profile.dump_stats(str(args.cprofile_dir / f"{name}.prof"))
            out = io.StringIO()
            stats = pstats.Stats(profile, stream=out)
            stats.sort_stats("tottime").print_stats(args.cprofile_top)
            print(f"\n--- cProfile: {name} (by own time) ---")
            print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:6000])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5000, help="rows in the measured batch (5000)")
    parser.add_argument("--accounts", type=int, default=20, help="cloud accounts (20)")
    parser.add_argument(
        "--warmup", type=int, default=250, help="rows of an untimed batch first (250)"
    )
    parser.add_argument(
        "--analyze",
        action="store_true",
        help="ANALYZE retry_batch_items once the batch is recorded (an experiment: "
        "does the planner's view of the fresh items matter?)",
    )
    parser.add_argument(
        "--cprofile", action="store_true", help="profile each step (slower: the times inflate)"
    )
    parser.add_argument(
        "--cprofile-dir", type=Path, help="also save each step's profile (<step>.prof) here"
    )
    parser.add_argument("--cprofile-top", type=int, default=25, help="functions per step (25)")
    services.add_arguments(parser, redis_dbs=REDIS_DBS)
    parser.set_defaults(
        web_workers=2, web_worker_class="sync", web_threads=1, env=[], worker_arg=[]
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return services.run(lambda borrowed: profile_batch(args, borrowed), args)


if __name__ == "__main__":
    sys.exit(main())
