"""Every threshold that decides when work is presumed lost, in one place, derived from
each other where they must agree.

Work a worker has claimed (a retry batch's chunk, a running execution, an email being
sent) carries a lease: who holds it and until when. The worker's heartbeat renews the
lease while the work runs, however long a provider or an SMTP server takes; a worker
that dies stops renewing, its leases lapse within `LEASE_TTL`, and the sweep (every
`SWEEP_EVERY`) hands the work to another worker. Work that waits in the broker holds a
lease too, of `UNSTARTED_AFTER`: a message the broker lost (a Redis restart) or that a
dead worker had reserved but not started is queued again once that lapses.

Bounds: a worker killed mid-task has its work queued again at most `LEASE_TTL +
SWEEP_EVERY` later, and its reserved messages at most `UNSTARTED_AFTER + SWEEP_EVERY`
later; both are under `RECOVERY_WITHIN`.
"""

from __future__ import annotations

from datetime import timedelta

# How often a worker renews the leases it holds.
HEARTBEAT_EVERY = timedelta(seconds=5)
# A lease not renewed for this long belongs to a dead worker: three missed heartbeats.
LEASE_TTL = 3 * HEARTBEAT_EVERY
# How often beat looks for lapsed leases.
SWEEP_EVERY = timedelta(seconds=5)
# How long a message may wait in the broker before the work is queued again. A
# duplicate is harmless (every claim is conditional), so this is short: a healthy queue
# under load may hand out a few duplicates, never a second outcome.
UNSTARTED_AFTER = timedelta(seconds=20)
# The promise: work of a dead worker is queued again within this of its death.
RECOVERY_WITHIN = timedelta(seconds=30)

# A pending row this old with no approval email on record (inserted by hand) gets one.
UNOWED_AFTER = timedelta(minutes=1)

# Backoff of retried tasks: 1, 2, 4 ... seconds, capped here.
MAX_RETRY_DELAY = timedelta(minutes=10)
# The longest a task may run (Celery's hard time limit); the soft limit comes first.
TASK_TIME_LIMIT = timedelta(minutes=5)
TASK_SOFT_TIME_LIMIT = TASK_TIME_LIMIT - timedelta(seconds=30)
# Redis hands an unacknowledged message to another worker after this. Nothing waits on
# it (the sweep recovers a dead worker's work), but a delayed retry sits unacknowledged
# in Redis until its countdown ends, so it must outlast the longest countdown and the
# longest run, or Redis would deliver it twice.
VISIBILITY_TIMEOUT = 2 * (MAX_RETRY_DELAY + TASK_TIME_LIMIT)

assert LEASE_TTL + SWEEP_EVERY < RECOVERY_WITHIN
assert UNSTARTED_AFTER + SWEEP_EVERY <= RECOVERY_WITHIN
assert VISIBILITY_TIMEOUT > MAX_RETRY_DELAY + TASK_TIME_LIMIT
