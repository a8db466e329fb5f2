"""The ``Prefer`` request header (RFC 7240): ``respond-async`` and ``wait=N``.

Preferences are hints: unknown ones are ignored, as the RFC asks. ``wait`` is in
seconds; with ``respond-async`` it bounds how long we wait before answering 202,
without it how long a synchronous call blocks before answering ``pending``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ingest.errors import BadRequest


@dataclass(frozen=True, slots=True)
class Preferences:
    respond_async: bool = False
    wait_s: float | None = None


def parse_prefer(values: list[str]) -> Preferences:
    respond_async = False
    wait_s: float | None = None
    for value in values:
        for pref in value.split(","):
            token, _, _params = pref.strip().partition(";")
            name, eq, raw = token.partition("=")
            name = name.strip().lower()
            raw = raw.strip().strip('"')
            if name == "respond-async":
                respond_async = True
            elif name == "wait" and eq:
                try:
                    wait_s = float(raw)
                except ValueError:
                    raise BadRequest(f"Prefer: wait={raw!r} is not a number of seconds"
                                     ) from None
                if not 0 <= wait_s < 1e9:
                    raise BadRequest(f"Prefer: wait={raw} must be zero or more seconds")
    return Preferences(respond_async=respond_async, wait_s=wait_s)
