"""The comparisons in the store with their derived figures, and uploading comparison files: the same
validation and all-or-nothing as `newsletter import` (`content.import_files`), with every problem
shown by file, line and reason. Uploads are the one multipart form of the console, bounded in
count and size before anything is parsed."""

from __future__ import annotations

import re
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool

from newsletter import editor_log
from newsletter.console.overview import rows
from newsletter.console.state import Console, ConsoleState, EditorAt, back_to, render
from newsletter.content import import_files
from newsletter.curation import Week
from newsletter.db import session_scope
from newsletter.importing import MAX_FILE_BYTES, ImportFailed, ImportProblem
from newsletter.models import Comparison

router = APIRouter()
UPLOAD_PATH = "/content/upload"
MAX_FILES = 20
UPLOAD_LIMIT = MAX_FILE_BYTES + 64 * 1024  # one full-size file and its form around it
LISTED = 200
NOTICES = {"pinned": "Pinned: it is picked first.", "unpinned": "Unpinned."}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _listing(state: ConsoleState, week: Week | None):
    with session_scope(state.store()) as session:
        query = (
            select(Comparison).order_by(col(Comparison.published_at).desc(), Comparison.slug).limit(LISTED)
        )
        if week is not None:
            start, end = week.bounds(state.settings.zone)
            query = query.where(col(Comparison.published_at) >= start, col(Comparison.published_at) < end)
        found = list(session.exec(query))
        return rows(session, found, state.settings)


async def content_page(
    request: Request,
    state: ConsoleState,
    *,
    week: str | None = None,
    notice: str | None = None,
    problems: list[ImportProblem] | None = None,
    status: int = 200,
) -> HTMLResponse:
    chosen = None
    if week:
        try:
            chosen = Week.parse(week)
        except ValueError as exc:
            problems, status = [ImportProblem("week", "", str(exc))], 422
    listing = await run_in_threadpool(_listing, state, chosen)
    return render(
        request,
        "web/console/content.html.j2",
        status,
        listing=listing,
        week=chosen.label if chosen else "",
        listed=LISTED,
        notice=notice,
        problems=problems or [],
        max_files=MAX_FILES,
        max_mb=MAX_FILE_BYTES // (1024 * 1024),
        zone=state.settings.zone,
    )


@router.get("/content", response_class=HTMLResponse)
async def content(request: Request, state: Console, week: str | None = None, done: str | None = None):
    state.store()
    return await content_page(request, state, week=week, notice=NOTICES.get(done or "") or _imported(done))


def _imported(done: str | None) -> str | None:
    match = re.fullmatch(r"imported-(\d+)-(\d+)", done or "")
    return f"Imported: {match[1]} new, {match[2]} updated comparison(s)." if match else None


def safe_name(name: str | None, index: int) -> str:
    """A file name to keep the upload under (its suffix decides JSON or YAML): the client's own,
    reduced to safe characters, else a made-up one."""
    base = _UNSAFE.sub("_", Path(name or "").name).strip("._")[:100]
    return base or f"upload-{index}"


async def _read_bounded(upload: UploadFile) -> bytes | None:
    """The file's bytes, or None when it is over MAX_FILE_BYTES (reading stops there)."""
    chunks, size = [], 0
    while chunk := await upload.read(256 * 1024):
        size += len(chunk)
        if size > MAX_FILE_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _as_uploaded(problems: list[ImportProblem], names: dict[str, str]) -> list[ImportProblem]:
    """The problems with each file named as the editor uploaded it, never by its temporary path."""

    def named(text: str) -> str:
        for path, shown in names.items():
            text = text.replace(path, shown)
        return text

    return [replace(p, file=named(p.file), reason=named(p.reason), place=named(p.place)) for p in problems]


@router.post(UPLOAD_PATH, response_class=HTMLResponse)
async def upload(
    request: Request,
    state: Console,
    editor: EditorAt,
    files: Annotated[list[UploadFile], File()],
) -> Response:
    engine = state.store()
    if not files or len(files) > MAX_FILES:
        problem = ImportProblem("upload", "", f"choose 1 to {MAX_FILES} files")
        return await content_page(request, state, problems=[problem], status=422)
    with tempfile.TemporaryDirectory(prefix="console-upload-") as work:
        names: dict[str, str] = {}
        paths: list[Path] = []
        problems: list[ImportProblem] = []
        for index, upload_file in enumerate(files):
            shown = safe_name(upload_file.filename, index)
            data = await _read_bounded(upload_file)
            if data is None:
                problems.append(ImportProblem(shown, "", f"the file is over {MAX_FILE_BYTES:,} bytes"))
                continue
            path = Path(work) / str(index) / shown
            path.parent.mkdir()
            path.write_bytes(data)
            names[str(path)] = shown
            paths.append(path)
        if problems:
            return await content_page(request, state, problems=problems, status=422)

        def store():
            with session_scope(engine) as session:
                summary = import_files(session, paths, state.settings.zone)
                detail = f"{', '.join(names.values())}: new {summary.created}, updated {summary.updated}"
                editor_log.record(session, editor.name, "import", detail=detail)
                return summary

        try:
            summary = await run_in_threadpool(store)
        except ImportFailed as failed:
            return await content_page(
                request, state, problems=_as_uploaded(failed.problems, names), status=422
            )
    return back_to("/content", done=f"imported-{len(summary.created)}-{len(summary.updated)}")
