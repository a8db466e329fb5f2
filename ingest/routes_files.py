"""Files: ``POST /files`` (multipart upload), ``GET`` and ``DELETE /files/{id}``.

The body is read with the same hard bound as every other body (``INFERQ_MAX_FILE_BYTES``
plus room for the multipart framing) before it is parsed, so a large upload is refused
with 413 without being spooled anywhere.
"""

from __future__ import annotations

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingest.auth import authenticate
from ingest.body import api_key, read_body
from ingest.context import IngestContext
from ingest.errors import BadRequest, PayloadTooLarge
from ingest.responses import versioned_response
from schemas.files import FileMeta, file_uri
from schemas.tasks_api import FileDTO, rfc3339

#: Multipart boundaries and part headers on top of the file itself.
_FRAMING = 64 * 1024


def file_dto(meta: FileMeta) -> FileDTO:
    return FileDTO(id=meta.id, uri=file_uri(meta.id), filename=meta.filename,
                   content_type=meta.content_type, size=meta.size, sha256=meta.sha256,
                   created_at=rfc3339(meta.created_at_ms))


def routes(ctx: IngestContext) -> list[Route]:
    limit = ctx.settings.max_file_bytes

    async def upload(request: Request) -> Response:
        account = authenticate(ctx.registry, api_key(request))
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise BadRequest("upload a file as multipart/form-data with a part named 'file'")
        raw = await read_body(request, limit + _FRAMING)
        request._body = raw  # noqa: SLF001 - Starlette parses the form from the bounded body
        try:
            form = await request.form(max_files=1, max_fields=10)
        except MultiPartException as exc:
            raise BadRequest(f"malformed multipart body: {exc.message}") from None
        part = form.get("file")
        if not isinstance(part, UploadFile):
            raise BadRequest("the multipart body needs a file part named 'file'")
        data = await part.read(limit + 1)
        await form.close()
        if len(data) > limit:
            raise PayloadTooLarge(f"the file exceeds the limit of {limit} bytes")
        meta = ctx.files.save(account, part.filename or "upload",
                              part.content_type or "application/octet-stream", data)
        return versioned_response(request, file_dto(meta), 201,
                                  {"Location": f"/files/{meta.id}"})

    async def get_file(request: Request) -> Response:
        account = authenticate(ctx.registry, api_key(request))
        return versioned_response(request, file_dto(ctx.files.get(request.path_params["id"],
                                                                  account)))

    async def delete_file(request: Request) -> Response:
        account = authenticate(ctx.registry, api_key(request))
        file_id = request.path_params["id"]
        ctx.files.delete(file_id, account)
        return versioned_response(request, {"id": file_id, "deleted": True})

    return [
        Route("/files", upload, methods=["POST"]),
        Route("/files/{id}", get_file, methods=["GET"]),
        Route("/files/{id}", delete_file, methods=["DELETE"]),
    ]
