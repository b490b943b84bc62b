"""The imports API: upload a file of a kind, list and read import runs.

`POST /api/v1/imports/{kind}` takes the file as a multipart field (`-F file=@till.csv`)
or as the raw body (`--data-binary @till.csv?filename=till.csv`). The body is streamed
to a temporary folder, never held in memory, and the import runs in a worker thread.
"""

from __future__ import annotations

import mmap
import re
import tempfile
from email.parser import HeaderParser
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from omnicanal.auth.api import AdminDep
from omnicanal.collect import importers
from omnicanal.collect.importers import ImportOptions, ImportRead
from omnicanal.collect.segment import Limits
from omnicanal.collect.tabular.columns import parse_mapping
from omnicanal.core.errors import BadRequestError, PayloadTooLargeError
from omnicanal.store.engine import Database

router = APIRouter(prefix="/api/v1/imports", tags=["imports"])

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_COPY_BLOCK = 1024 * 1024
_UPLOAD_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
            "text/csv": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
        "description": "A CSV, Parquet or XLSX file (see docs/how-to/import-files.md).",
    },
    "responses": {
        "413": {"description": "The file is above OMNICANAL_COLLECT__MAX_IMPORT_BYTES."},
        "422": {"description": "The file was refused; `errors` lists each bad row."},
    },
}


@router.get("/kinds", summary="The import kinds and their columns.")
def list_kinds(_: AdminDep) -> list[dict[str, Any]]:
    """List the kinds of file that can be imported, with their columns and aliases."""
    return [
        {
            "name": kind.name,
            "summary": kind.summary,
            "columns": [
                {
                    "name": c.name,
                    "type": str(c.type),
                    "required": c.required,
                    "aliases": list(c.aliases),
                }
                for c in kind.columns
            ],
        }
        for kind in importers.list_kinds()
    ]


@router.get("", response_model=list[ImportRead])
def list_imports(
    request: Request, _: AdminDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[ImportRead]:
    """List import runs, newest first."""
    return importers.list_imports(db=_db(request), limit=limit)


@router.get("/{import_id}", response_model=ImportRead)
def get_import(import_id: int, request: Request, _: AdminDep) -> ImportRead:
    """Read one import run with its error report."""
    return importers.get_import(db=_db(request), import_id=import_id)


@router.post("/{kind}", response_model=ImportRead, status_code=201, openapi_extra=_UPLOAD_DOC)
async def create_import(
    kind: str,
    request: Request,
    _: AdminDep,
    map_: Annotated[
        list[str], Query(alias="map", description="file_column=canonical, repeatable.")
    ] = [],  # noqa: B006 - FastAPI copies defaults
    rate: Annotated[list[str], Query(description="CODE=euros per unit, e.g. USD=0.92.")] = [],  # noqa: B006
    filename: Annotated[str | None, Query(description="The file's name, for a raw body.")] = None,
) -> ImportRead:
    """Import a file of a kind, all or nothing (201), or list every bad row (422)."""
    importers.get_kind(kind)  # an unknown kind is refused before the body is read
    settings = request.app.state.settings.collect
    options = ImportOptions(
        mapping=parse_mapping(map_),
        rates=importers.parse_rates(rate),
        limits=Limits(settings.max_event_bytes, settings.max_depth),
    )
    with tempfile.TemporaryDirectory(prefix="omnicanal-import-") as folder:
        path, name = await _receive(request, Path(folder), filename, settings.max_import_bytes)
        return await run_in_threadpool(
            importers.run_import,
            db=_db(request),
            kind=kind,
            path=path,
            filename=name,
            options=options,
        )


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def _receive(
    request: Request, folder: Path, filename: str | None, limit: int
) -> tuple[Path, str]:
    """Stream the body to disk, up to `limit` bytes; return the uploaded file's path and name."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:  # refused before anything is written
        raise _too_large(declared, limit)
    body = folder / "body"
    size = 0
    with body.open("wb") as out:
        async for block in request.stream():
            size += len(block)
            if size > limit:
                raise _too_large(f"{size} or more", limit)
            out.write(block)
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/"):
        named = body.rename(folder / f"upload{_suffix(filename or '')}")
        return named, filename or "upload"
    match = _BOUNDARY.search(content_type)
    if match is None:
        raise BadRequestError("The multipart body names no boundary.")
    return await run_in_threadpool(_file_part, body, match.group(1).encode(), folder)


def _too_large(size: str, limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"The upload is {size} bytes; the limit is {limit} bytes per file "
        "(OMNICANAL_COLLECT__MAX_IMPORT_BYTES). Split the file or raise the limit.",
        limit=limit,
    )


def _suffix(name: str) -> str:
    """The file's extension, kept on the stored copy: readers such as openpyxl go by it."""
    suffix = Path(name.replace("\\", "/")).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""


def _file_part(body: Path, boundary: bytes, folder: Path) -> tuple[Path, str]:
    """Copy the first file field of a multipart body to its own file."""
    if body.stat().st_size == 0:
        raise BadRequestError("The body is empty; send the file as a multipart field `file`.")
    delimiter = b"--" + boundary
    with body.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as m:
        position = m.find(delimiter)
        while position != -1 and m[position + len(delimiter) : position + len(delimiter) + 2] != (
            b"--"
        ):
            head_start = position + len(delimiter) + 2
            head_end = m.find(b"\r\n\r\n", head_start)
            end = m.find(b"\r\n" + delimiter, head_end + 4) if head_end != -1 else -1
            if end == -1:
                break
            headers = HeaderParser().parsestr(m[head_start:head_end].decode("utf-8", "replace"))
            name = headers.get_filename()
            if name is not None:
                target = folder / f"upload{_suffix(name)}"
                with target.open("wb") as out:
                    for start in range(head_end + 4, end, _COPY_BLOCK):
                        out.write(m[start : min(start + _COPY_BLOCK, end)])
                return target, Path(name.replace("\\", "/")).name or "upload"
            position = end + 2
    raise BadRequestError("The multipart body holds no file; send it as a field `file`.")
