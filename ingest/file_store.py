"""The files directory on ingest's side: write uploads, read their metadata, delete.

Writes go to a temporary name and are renamed into place, so a runner never reads a
half-written file. Another account's file is answered exactly like a missing one.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from pathlib import Path

import msgspec

from ingest.errors import NotFound
from schemas.files import FileMeta, meta_decoder, meta_encoder, valid_file_id


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _paths(self, file_id: str) -> tuple[Path, Path]:
        return self.root / file_id, self.root / f"{file_id}.json"

    def save(self, account_id: str, filename: str, content_type: str, data: bytes) -> FileMeta:
        self.root.mkdir(parents=True, exist_ok=True)
        file_id = "file_" + secrets.token_hex(16)
        meta = FileMeta(id=file_id, account_id=account_id, filename=filename[:255],
                        content_type=content_type[:255], size=len(data),
                        sha256=hashlib.sha256(data).hexdigest(),
                        created_at_ms=int(time.time() * 1000))
        body, meta_path = self._paths(file_id)
        for path, content in ((body, data), (meta_path, meta_encoder.encode(meta))):
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(content)
            os.replace(tmp, path)
        return meta

    def get(self, file_id: str, account_id: str) -> FileMeta:
        if not valid_file_id(file_id):
            raise NotFound(f"file {file_id} not found")
        _, meta_path = self._paths(file_id)
        try:
            meta = meta_decoder.decode(meta_path.read_bytes())
        except (FileNotFoundError, msgspec.DecodeError, msgspec.ValidationError):
            raise NotFound(f"file {file_id} not found") from None
        if meta.account_id != account_id:
            raise NotFound(f"file {file_id} not found")
        return meta

    def delete(self, file_id: str, account_id: str) -> None:
        self.get(file_id, account_id)
        body, meta_path = self._paths(file_id)
        meta_path.unlink(missing_ok=True)  # first: the file stops being visible at once
        body.unlink(missing_ok=True)
