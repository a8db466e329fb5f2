"""The CLI's client for the admin API (keys and tasks go through a running ingest)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


class AdminError(RuntimeError):
    pass


class AdminClient:
    def __init__(self, url: str, token: str | None, data_dir: Path) -> None:
        self.url = url.rstrip("/")
        if token is None:
            path = data_dir / "admin-token"
            if not path.exists():
                raise AdminError("no admin token: set INFERQ_ADMIN_TOKEN or pass --admin-token "
                                 f"(inferq up keeps one in {path})")
            token = path.read_text().strip()
        self._token = token

    def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
             content_type: str = "application/json") -> Any:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self._token}", "Content-Type": content_type})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read())["error"]["message"]
            except (ValueError, KeyError, TypeError):
                detail = exc.reason
            raise AdminError(f"{method} {path}: HTTP {exc.code}: {detail}") from None
        except urllib.error.URLError as exc:
            raise AdminError(f"cannot reach inferq at {self.url}: {exc.reason}") from None


def default_url() -> str:
    return os.environ.get("INFERQ_URL", "http://127.0.0.1:8000")
