"""CPU time per process group, from /proc: where the time of a run went.

A snapshot before and after the timed part; the difference per group, per unit of work
(a retry), with how busy the whole machine was and how much the hypervisor stole.
"""

from __future__ import annotations

import glob
import os
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessGroups:
    """Which group a process's CPU counts for: the product's processes by the tree they
    were started in, PostgreSQL's backends by the database they serve."""

    trees: dict[str, set[int]]
    db_name: str

    def group_of(self, pid: int, cmdline: str) -> str:
        for group, pids in self.trees.items():
            if pid in pids:
                return group
        if pid == os.getpid():
            return "bench: clients + SMTP server"
        if cmdline.startswith("postgres:"):
            if f" {self.db_name} " in cmdline:
                return "postgres backends (bench db)"
            return "postgres (other: wal, other dbs)"
        if "redis-server" in cmdline:
            return "redis"
        return "other processes"


def _ticks(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[11]) + int(fields[12])  # utime + stime


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        return raw.replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _machine_ticks() -> tuple[int, int, int]:
    """(total, idle + iowait, steal) ticks of the whole machine."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(values[:8]), values[3] + values[4], values[7]


@dataclass
class CpuSnapshot:
    per_pid: dict[int, tuple[str, int]]
    machine: tuple[int, int, int]
    at: float


def cpu_snapshot(groups: ProcessGroups) -> CpuSnapshot:
    per_pid: dict[int, tuple[str, int]] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        pid = int(stat.split("/")[2])
        ticks = _ticks(pid)
        if ticks is None:
            continue
        per_pid[pid] = (groups.group_of(pid, _cmdline(pid)), ticks)
    return CpuSnapshot(per_pid, _machine_ticks(), time.time())


def cpu_report(
    before: CpuSnapshot, after: CpuSnapshot, units: int, *, unit: str
) -> tuple[list[str], dict[str, float]]:
    """Lines to print, and {group: CPU ms per unit} (plus `busy %` and `steal %` of the
    machine)."""
    hz = os.sysconf("SC_CLK_TCK")
    groups: dict[str, float] = defaultdict(float)
    for pid, (group, ticks) in after.per_pid.items():
        start = before.per_pid.get(pid, (group, 0))[1]
        groups[group] += (ticks - start) / hz
    total, idle, steal = (a - b for a, b in zip(after.machine, before.machine, strict=True))
    wall = after.at - before.at
    cores = os.cpu_count() or 1
    busy = 100 * (total - idle) / max(total, 1)
    stolen = 100 * steal / max(total, 1)
    lines = [
        f"  machine busy {busy:.0f}% of {cores} cores over {wall:.1f}s "
        f"(stolen by the hypervisor: {stolen:.0f}%)"
    ]
    per_unit = {group: 1000 * seconds / max(units, 1) for group, seconds in groups.items()}
    per_unit["busy %"] = busy
    per_unit["steal %"] = stolen
    for group, seconds in sorted(groups.items(), key=lambda kv: -kv[1]):
        if seconds < 0.05:
            continue
        lines.append(f"  {group:<34} {seconds:7.2f} CPU-s  {per_unit[group]:6.2f} ms/{unit}")
    # The machine's busy time that no process alive at both snapshots accounts for:
    # processes that came and went (a neighbour's tests, say), and interrupts.
    unattributed = (total - idle - steal) / hz - sum(groups.values())
    per_unit["unattributed"] = 1000 * unattributed / max(units, 1)
    if unattributed >= 0.05:
        lines.append(
            f"  {'unattributed (short-lived procs)':<34} {unattributed:7.2f} CPU-s  "
            f"{per_unit['unattributed']:6.2f} ms/{unit}"
        )
    return lines, per_unit
