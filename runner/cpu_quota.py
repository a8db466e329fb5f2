"""How many cores this process may use: its CPU affinity, capped by a cgroup CPU quota.

Containers are usually limited by a CFS quota, not by affinity: Docker's ``--cpus`` and
a Kubernetes CPU limit set ``cpu.max`` (cgroup v2) or ``cpu.cfs_quota_us`` (v1), while
``sched_getaffinity`` still lists every core of the node. A runner limited to 2 CPUs on a
64-core node that sized ONNX Runtime's pool by affinity would start 64 threads on a
2-core budget, and the kernel would throttle it for most of each period.

The limit that applies is the smallest quota on the process's cgroup and its ancestors.
Its path comes from ``/proc/self/cgroup``; where that path is not under the mount (a
container without a cgroup namespace sees its host path, but the mount's root is its
own cgroup), the mount's root is read instead. A quota of 1.5 CPUs gives 1 core: a
thread more than the quota pays for is what the throttling comes from.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


@dataclass(frozen=True, slots=True)
class Cores:
    #: Cores the scheduler may run this process on.
    affinity: int
    #: CPUs the cgroup quota grants (None: no quota, or none readable).
    quota: float | None

    @property
    def usable(self) -> int:
        """The affinity, capped by the quota's whole CPUs (at least one)."""
        if self.quota is None:
            return self.affinity
        return max(1, min(self.affinity, math.floor(self.quota)))


def usable_cores(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> Cores:
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        affinity = os.cpu_count() or 1
    return Cores(affinity, cgroup_cpu_quota(root, proc_cgroup))


def cgroup_cpu_quota(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP
                     ) -> float | None:
    """The smallest CPU quota (in CPUs) on this process's cgroup and its ancestors, v2
    or v1; None when there is none or nothing can be read (not Linux, no cgroupfs)."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    quotas: list[float] = []
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "" and (root / "cgroup.controllers").exists():
            quotas += (q for d in _dirs(root, path) if (q := _v2_quota(d)) is not None)
        elif "cpu" in controllers.split(","):
            for mount in (root / "cpu", root / controllers):
                if mount.is_dir():
                    quotas += (q for d in _dirs(mount, path) if (q := _v1_quota(d)) is not None)
                    break
    return min(quotas, default=None)


def _dirs(mount: Path, path: str) -> list[Path]:
    """The cgroup at ``path`` under ``mount`` and each ancestor up to the mount's root
    (only those that exist); the root alone when ``path`` is not there."""
    parts = [p for p in path.strip("/").split("/") if p and p != ".."]
    found = [mount.joinpath(*parts[:i]) for i in range(len(parts), 0, -1)]
    return [d for d in found if d.is_dir()] + [mount]


def _v2_quota(cgroup: Path) -> float | None:
    """``cpu.max``: ``"<quota> <period>"`` or ``"max <period>"``."""
    try:
        fields = cgroup.joinpath("cpu.max").read_text().split()
        if fields[:1] == ["max"]:
            return None
        return _ratio(int(fields[0]), int(fields[1]))
    except (OSError, ValueError, IndexError) as exc:
        _unreadable(cgroup, exc)
        return None


def _v1_quota(cgroup: Path) -> float | None:
    """``cpu.cfs_quota_us`` (-1: none) over ``cpu.cfs_period_us``."""
    try:
        quota = int(cgroup.joinpath("cpu.cfs_quota_us").read_text())
        period = int(cgroup.joinpath("cpu.cfs_period_us").read_text())
        return None if quota < 0 else _ratio(quota, period)
    except (OSError, ValueError) as exc:
        _unreadable(cgroup, exc)
        return None


def _ratio(quota: int, period: int) -> float | None:
    return quota / period if quota > 0 and period > 0 else None


def _unreadable(cgroup: Path, exc: Exception) -> None:
    if not isinstance(exc, FileNotFoundError):  # no cpu controller there: no quota
        log.warning("cannot read the CPU quota of %s: %s", cgroup, exc)
