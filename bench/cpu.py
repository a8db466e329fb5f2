"""CPU per request over a load run's measured window: the server's event loop(s) (each
process's main thread), its other threads (ONNX Runtime's, for inferq), the broker, and
the load generator itself, all on the same cores."""

from __future__ import annotations

import resource
from dataclasses import dataclass, field

from bench.procs import Proc

#: Columns of the table, in order.
PARTS = ("loop", "threads", "broker", "client")


@dataclass
class CpuMeter:
    procs: list[Proc]
    broker: Proc | None = None
    marks: list[dict[str, float]] = field(default_factory=list)

    def mark(self) -> None:
        """Read every clock (called as the measure window opens and as it closes)."""
        loop = other = 0.0
        for p in self.procs:
            main, rest = p.thread_cpu_s()
            loop += main
            other += rest
        own = resource.getrusage(resource.RUSAGE_SELF)
        self.marks.append({"loop": loop, "threads": other,
                           "broker": self.broker.cpu_s() if self.broker else float("nan"),
                           "client": own.ru_utime + own.ru_stime})

    def per_request_us(self, requests: int) -> dict[str, float]:
        """Microseconds of CPU per answered request between the first and last mark."""
        if len(self.marks) < 2 or requests <= 0:
            return {}
        first, last = self.marks[0], self.marks[-1]
        return {k: (last[k] - first[k]) / requests * 1e6 for k in PARTS}
