"""Uploaded files: how a Binary binding names one, and where it lies in the files dir.

An upload is kept in the shared files directory (``INFERQ_FILES_DIR``, like the model
store: one volume that ingest writes and runners read) as ``<id>`` with its metadata in
``<id>.json``. Bindings name it ``inferq-file://<id>``; runners read it from disk, so no
outbound fetch is made and the URL guard for http(s) inputs stays as it is.
"""

from __future__ import annotations

import re

import msgspec

FILE_SCHEME = "inferq-file"
FILE_URI_PREFIX = FILE_SCHEME + "://"
_ID_RE = re.compile(r"^file_[0-9a-f]{32}$")


def file_uri(file_id: str) -> str:
    return FILE_URI_PREFIX + file_id


def valid_file_id(file_id: str) -> bool:
    """Ids are generated, never chosen: anything else (``..``, slashes) is refused."""
    return bool(_ID_RE.match(file_id))


def file_id_of(url: str) -> str | None:
    """The id an ``inferq-file://<id>`` URL names (None: not such a URL, or malformed)."""
    if not url.startswith(FILE_URI_PREFIX):
        return None
    file_id = url[len(FILE_URI_PREFIX):]
    return file_id if valid_file_id(file_id) else None


class FileMeta(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    account_id: str
    filename: str
    content_type: str
    size: int
    sha256: str
    created_at_ms: int


meta_decoder = msgspec.json.Decoder(FileMeta)
meta_encoder = msgspec.json.Encoder()
