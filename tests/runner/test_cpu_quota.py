"""The runner sizes ONNX Runtime's pool by the cores it may use: affinity capped by a
cgroup CPU quota, read from cgroupfs trees laid out as v2 and v1 hosts and containers
lay them out."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from runner.cpu_quota import Cores, cgroup_cpu_quota, usable_cores
from runner.models import fitted_intra_op_threads


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _v2(tmp_path: Path, own: str, limits: dict[str, str]) -> tuple[Path, Path]:
    """A v2 hierarchy with ``cpu.max`` at each path of ``limits``; the process in ``own``."""
    root = tmp_path / "cgroup"
    _write(root / "cgroup.controllers", "cpuset cpu io memory pids\n")
    for path, cpu_max in limits.items():
        _write(root / path.strip("/") / "cpu.max", cpu_max + "\n")
    (root / own.strip("/")).mkdir(parents=True, exist_ok=True)
    proc = tmp_path / "proc-cgroup"
    _write(proc, f"0::{own}\n")
    return root, proc


def _v1(tmp_path: Path, own: str, limits: dict[str, tuple[int, int]],
        mount: str = "cpu,cpuacct") -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for path, (quota, period) in limits.items():
        d = root / mount / path.strip("/")
        _write(d / "cpu.cfs_quota_us", f"{quota}\n")
        _write(d / "cpu.cfs_period_us", f"{period}\n")
    proc = tmp_path / "proc-cgroup"
    _write(proc, f"12:memory:{own}\n4:cpu,cpuacct:{own}\n0::/\n")
    return root, proc


def test_v2_container_quota_at_the_namespace_root(tmp_path: Path) -> None:
    # Docker --cpus=2 with a cgroup namespace: the process sees itself at "/".
    root, proc = _v2(tmp_path, "/", {"/": "200000 100000"})
    assert cgroup_cpu_quota(root, proc) == 2.0


def test_v2_no_limit_is_none(tmp_path: Path) -> None:
    root, proc = _v2(tmp_path, "/kubepods/pod1/c1", {"/kubepods": "max 100000",
                                                     "/kubepods/pod1/c1": "max"})
    assert cgroup_cpu_quota(root, proc) is None


def test_v2_smallest_quota_up_the_hierarchy_wins(tmp_path: Path) -> None:
    # The pod's limit (1.5 CPUs) is tighter than the container's own (4).
    root, proc = _v2(tmp_path, "/kubepods/pod1/c1", {"/kubepods/pod1": "150000 100000",
                                                     "/kubepods/pod1/c1": "400000 100000"})
    assert cgroup_cpu_quota(root, proc) == 1.5


def test_v1_quota_with_a_host_path_not_under_the_mount(tmp_path: Path) -> None:
    # v1 without a cgroup namespace: /proc/self/cgroup names the host's path, while the
    # container's own cgroup is mounted at the root.
    root, proc = _v1(tmp_path, "/docker/abc123", {"/": (300000, 100000)})
    assert cgroup_cpu_quota(root, proc) == 3.0


def test_v1_unlimited_and_nested(tmp_path: Path) -> None:
    root, proc = _v1(tmp_path, "/a/b", {"/": (-1, 100000), "/a": (50000, 100000),
                                        "/a/b": (-1, 100000)}, mount="cpu")
    assert cgroup_cpu_quota(root, proc) == 0.5
    root, proc = _v1(tmp_path / "free", "/", {"/": (-1, 100000)})
    assert cgroup_cpu_quota(root, proc) is None


def test_no_cgroupfs_or_garbage_reads_as_no_quota(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    assert cgroup_cpu_quota(tmp_path / "none", tmp_path / "no-proc-file") is None
    root, proc = _v2(tmp_path, "/", {"/": "200000"})  # no period
    with caplog.at_level(logging.WARNING, logger="runner.cpu_quota"):
        assert cgroup_cpu_quota(root, proc) is None
    assert "cpu quota" in caplog.text.lower() and "cgroup" in caplog.text


@pytest.mark.parametrize(("cores", "executors", "threads"), [
    (Cores(64, None), 1, 64),
    (Cores(64, 2.0), 1, 2),      # a 2-CPU container on a 64-core node
    (Cores(64, 1.5), 1, 1),      # never more threads than whole CPUs paid for
    (Cores(64, 0.25), 1, 1),     # but always one
    (Cores(4, 16.0), 2, 2),      # affinity tighter than the quota
    (Cores(64, 8.0), 2, 4),      # shared among executor threads
])
def test_intra_op_threads_fit_the_quota(cores: Cores, executors: int, threads: int) -> None:
    assert fitted_intra_op_threads(0, executors, cores) == threads
    assert fitted_intra_op_threads(3, executors, cores) == 3  # asked for: as asked


def test_this_host(tmp_path: Path) -> None:
    here = usable_cores()
    assert here.affinity == len(os.sched_getaffinity(0))
    assert 1 <= here.usable <= here.affinity
    root, proc = _v2(tmp_path, "/", {"/": "100000 100000"})
    assert usable_cores(root, proc) == Cores(here.affinity, 1.0)
