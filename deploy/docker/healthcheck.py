"""Container healthcheck: GET /readyz of the service this container runs.

The service is argv[1] or, by default, the one named on PID 1's command line
(``inferq ingest|runner|notifier``); its port comes from the same INFERQ_* variable
the service reads. Exit 0 when ready, 1 otherwise (Docker's contract).
"""

from __future__ import annotations

import os
import sys
import urllib.request

PORTS = {"ingest": ("INFERQ_PORT", "8000"), "runner": ("INFERQ_RUNNER_PORT", "8001"),
         "notifier": ("INFERQ_NOTIFIER_PORT", "8002")}


def service() -> str:
    if len(sys.argv) > 1:
        return sys.argv[1]
    try:
        with open("/proc/1/cmdline", "rb") as f:
            words = f.read().decode(errors="replace").split("\0")
    except OSError:
        words = []
    return next((w for w in words if w in PORTS), "ingest")


def main() -> int:
    var, default = PORTS[service()]
    url = f"http://127.0.0.1:{os.environ.get(var, default)}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:  # noqa: S310 - fixed loopback URL
            return 0 if resp.status == 200 else 1
    except OSError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
