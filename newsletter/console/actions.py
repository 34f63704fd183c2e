"""What an editor does to the week's issue from the console: compose, reorder, drop and add
comparisons, pin, edit the subject and preheader (checked as they type), approve, unapprove,
cancel and send now. Each is the service the CLI calls (`newsletter.editions`, `quality`,
`delivery`), and each change is an `EditorEvent` in the same transaction.

Every form posts back to the page it came from (`next`: the home page or the issue's page), which
shows the outcome; a refusal shows that page again with the reason (and the failing checks)."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from newsletter import editions, editor_log
from newsletter.console.issue_pages import issue_key, issue_page, preview_of
from newsletter.console.overview import readers_owed
from newsletter.console.state import Console, ConsoleState, EditorAt, back_to, render
from newsletter.curation import Week
from newsletter.db import session_scope
from newsletter.editions import ComposeOutcome, EditionError
from newsletter.headers import HeaderValueError, check_header_value
from newsletter.issue_words import default_preheader, default_subject
from newsletter.lengths import preheader_problem, subject_problem
from newsletter.models import Comparison, Issue, IssueStatus
from newsletter.quality import GateFailed, check_issue, check_view, enforce

router = APIRouter()
Next = Annotated[str, Form(alias="next", max_length=200)]
Id = Annotated[int, Form(ge=1, le=2**31 - 1)]


def _return_to(key: str, next_path: str) -> str:
    return "/" if next_path == "/" else f"/issues/{key}"


async def _refused(request: Request, state: ConsoleState, key: str, next_path: str, exc: Exception, **more):
    """The page the form came from, again, with why it was refused (and the failing checks)."""
    findings = exc.report if isinstance(exc, GateFailed) else None
    status = 422 if findings or more.get("typed") else 409
    return await issue_page(
        request, state, key, home=next_path == "/", error=str(exc), findings=findings, status=status, **more
    )


def _issue(session: Session, key: str) -> Issue:
    return editions.require_issue(session, Week.parse(key))


async def _act(
    request: Request, state: ConsoleState, key: str, next_path: str, done: str, change
) -> Response:
    """Run `change(session)` in one transaction with its event; back to the page with `done`."""
    engine = state.store()

    def work() -> None:
        with session_scope(engine) as session:
            change(session)

    try:
        await run_in_threadpool(work)
    except EditionError as exc:
        return await _refused(request, state, key, next_path, exc)
    return back_to(_return_to(key, next_path), done=done)


@router.post("/issues/{key}/compose")
async def compose(request: Request, state: Console, editor: EditorAt, key: str, next_path: Next = "/"):
    key = issue_key(key)

    def change(session: Session) -> None:
        result = editions.compose(session, Week.parse(key), state.settings)
        if result.outcome == ComposeOutcome.EMPTY:
            raise EditionError(
                f"nothing to compose for {key}: no comparison published that week is free to pick"
            )
        if result.outcome == ComposeOutcome.UNCHANGED:
            raise EditionError(f"issue {key} is {result.issue.status}; its picks are fixed")
        titles = "; ".join(c.title for c in result.picks)
        editor_log.record(session, editor.name, "compose", issue_id=result.issue.id, detail=titles)

    return await _act(request, state, key, next_path, "composed", change)


@router.post("/issues/{key}/move")
async def move(
    request: Request,
    state: Console,
    editor: EditorAt,
    key: str,
    comparison: Id,
    offset: Annotated[int, Form(ge=-20, le=20)],
    next_path: Next = "/",
):
    key = issue_key(key)

    def change(session: Session) -> None:
        issue = _issue(session, key)
        order = editions.move_item(session, issue, comparison, offset)
        detail = " > ".join(c.slug for c in order)
        editor_log.record(
            session, editor.name, "reorder", issue_id=issue.id, comparison_id=comparison, detail=detail
        )

    return await _act(request, state, key, next_path, "moved", change)


@router.post("/issues/{key}/drop")
async def drop(
    request: Request, state: Console, editor: EditorAt, key: str, comparison: Id, next_path: Next = "/"
):
    key = issue_key(key)

    def change(session: Session) -> None:
        issue = _issue(session, key)
        dropped = editions.drop_item(session, issue, comparison)
        editor_log.record(
            session, editor.name, "drop", issue_id=issue.id, comparison_id=comparison, detail=dropped.slug
        )

    return await _act(request, state, key, next_path, "dropped", change)


@router.post("/issues/{key}/add")
async def add(
    request: Request, state: Console, editor: EditorAt, key: str, comparison: Id, next_path: Next = "/"
):
    key = issue_key(key)

    def change(session: Session) -> None:
        issue = _issue(session, key)
        added = editions.add_item(session, issue, comparison, state.settings)
        editor_log.record(
            session, editor.name, "add", issue_id=issue.id, comparison_id=comparison, detail=added.slug
        )

    return await _act(request, state, key, next_path, "added", change)


@router.post("/comparisons/{slug}/pin")
async def pin(
    request: Request,
    state: Console,
    editor: EditorAt,
    slug: str,
    pinned: Annotated[bool, Form()],
    next_path: Next = "/content",
):
    engine = state.store()

    def change() -> bool:
        with session_scope(engine) as session:
            found = session.exec(select(Comparison).where(Comparison.slug == slug)).first()
            if found is None:
                return False
            found.pinned = pinned
            session.add(found)
            editor_log.record(
                session, editor.name, "pin" if pinned else "unpin", comparison_id=found.id, detail=slug
            )
            return True

    if not await run_in_threadpool(change):
        raise HTTPException(404, f"There is no comparison {slug[:60]!r}.")
    target = next_path if next_path in ("/", "/content") or next_path.startswith("/issues/") else "/content"
    return back_to(target, done="pinned" if pinned else "unpinned")


# --- subject and preheader ------------------------------------------------------------------------


def _field_problem(text: str, field: str, problem_of) -> str | None:
    """What the edit would refuse in `text` (the same words as `editions.set_overrides`)."""
    if not text.strip():
        return None
    try:
        value = check_header_value(text, field=field)
    except HeaderValueError as exc:
        return str(exc)
    return problem_of(value)


@router.post("/issues/{key}/edit")
async def edit(
    request: Request,
    state: Console,
    editor: EditorAt,
    key: str,
    subject: Annotated[str, Form(max_length=1000)] = "",
    preheader: Annotated[str, Form(max_length=1000)] = "",
    next_path: Next = "/",
):
    """Save the editor's subject and preheader (blank: the generated words come back)."""
    key = issue_key(key)
    engine = state.store()

    def work() -> None:
        with session_scope(engine) as session:
            issue = _issue(session, key)
            editions.set_overrides(session, issue, subject=subject, preheader=preheader)
            words = (issue.subject_override or "(generated)", issue.preheader_override or "(generated)")
            detail = "subject: {} | preheader: {}".format(*words)
            editor_log.record(session, editor.name, "edit", issue_id=issue.id, detail=detail)

    try:
        await run_in_threadpool(work)
    except EditionError as exc:
        typed = {"subject": subject, "preheader": preheader}
        return await _refused(request, state, key, next_path, exc, typed=typed)
    return back_to(_return_to(key, next_path), done="edited")


@router.post("/issues/{key}/check")
async def check(
    state: Console,
    key: str,
    subject: Annotated[str, Form(max_length=1000)] = "",
    preheader: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """The checks of the issue as it would be with this subject and preheader (nothing is saved):
    what the page shows as the editor types. The same rules run again when the form is saved."""
    key = issue_key(key)
    preview = await preview_of(state, key)
    if preview is None:
        raise HTTPException(404, f"There is nothing to check for {key}.")
    problems = {
        "subject": _field_problem(subject, "subject", subject_problem),
        "preheader": _field_problem(preheader, "preheader", preheader_problem),
    }
    answer: dict[str, object] = {"problems": problems, "gates": [], "errors": None, "warnings": None}
    if not any(problems.values()):
        view = preview.view
        generated_subject, generated_preheader = (
            default_subject(view.comparisons),
            default_preheader(view.comparisons),
        )
        edited = replace(
            view,
            subject=subject.strip() or generated_subject,
            preheader=preheader.strip() or generated_preheader,
        )
        try:
            report = await run_in_threadpool(check_view, edited, state.settings, state.sources.renderer)
        except Exception as exc:  # a template that does not render: said, not a 500
            problems["render"] = f"the issue does not render: {exc}"
        else:
            answer |= {
                "gates": [
                    {
                        "gate": name,
                        "result": "error"
                        if any(f.severity == "error" for f in found)
                        else ("warning" if found else "ok"),
                        "findings": [f"{f.severity}: {f.message}" for f in found],
                    }
                    for name, _holds, found in report.gates()
                ],
                "errors": len(report.errors),
                "warnings": len(report.findings) - len(report.errors),
            }
    return JSONResponse(answer, headers={"Cache-Control": "no-store"})


# --- the issue's state ------------------------------------------------------------------------------


@router.post("/issues/{key}/approve")
async def approve(request: Request, state: Console, editor: EditorAt, key: str, next_path: Next = "/"):
    """Approve after the quality checks, like `newsletter issue approve` (no --force here)."""
    key = issue_key(key)

    def change(session: Session) -> None:
        issue = _issue(session, key)
        was = issue.status
        report = editions.approve(session, issue, state.settings)
        if was == IssueStatus.DRAFT:
            warnings = len(report.findings)
            editor_log.record(
                session, editor.name, "approve", issue_id=issue.id, detail=f"{warnings} warning(s)"
            )

    return await _act(request, state, key, next_path, "approved", change)


@router.post("/issues/{key}/unapprove")
async def unapprove(request: Request, state: Console, editor: EditorAt, key: str, next_path: Next = "/"):
    key = issue_key(key)

    def change(session: Session) -> None:
        issue = editions.unapprove(session, _issue(session, key))
        editor_log.record(session, editor.name, "unapprove", issue_id=issue.id)

    return await _act(request, state, key, next_path, "unapproved", change)


def _confirmation(state: ConsoleState, key: str) -> dict[str, object]:
    with session_scope(state.store()) as session:
        issue = _issue(session, key)
        return {"issue": issue, "readers": readers_owed(session, issue.id)}


@router.get("/issues/{key}/cancel", response_class=HTMLResponse)
async def cancel_page(request: Request, state: Console, key: str) -> Response:
    key = issue_key(key)
    try:
        found = await run_in_threadpool(_confirmation, state, key)
    except EditionError as exc:
        raise HTTPException(404, str(exc)) from exc
    return render(request, "web/console/confirm.html.j2", key=key, action="cancel", **found)


@router.post("/issues/{key}/cancel")
async def cancel(request: Request, state: Console, editor: EditorAt, key: str, next_path: Next = "/"):
    key = issue_key(key)

    def change(session: Session) -> None:
        issue = _issue(session, key)
        was = issue.status
        editions.cancel(session, issue)
        editor_log.record(session, editor.name, "cancel", issue_id=issue.id, detail=f"was {was}")

    return await _act(request, state, key, next_path, "cancelled", change)


@router.get("/issues/{key}/send", response_class=HTMLResponse)
async def send_page(request: Request, state: Console, key: str) -> Response:
    """The confirmation before a real send: it names how many readers it goes to."""
    key = issue_key(key)
    try:
        found = await run_in_threadpool(_confirmation, state, key)
    except EditionError as exc:
        raise HTTPException(404, str(exc)) from exc
    return render(request, "web/console/confirm.html.j2", key=key, action="send", **found)


@router.post("/issues/{key}/send")
async def send_now(request: Request, state: Console, editor: EditorAt, key: str, next_path: Next = "/"):
    """Send now, like `newsletter issue send`: the quality checks first (a failing issue is refused
    with its findings), then the send on a thread of this process; the page follows the ledger."""
    key = issue_key(key)
    engine = state.store()

    def prepare() -> int:
        with session_scope(engine) as session:
            issue = _issue(session, key)
            if issue.status not in (IssueStatus.DRAFT, IssueStatus.APPROVED, IssueStatus.SENDING):
                raise EditionError(f"issue {key} is {issue.status}; there is nothing to send")
            enforce(check_issue(session, issue, state.settings, state.sources.renderer), key, force=False)
            readers = readers_owed(session, issue.id)
            editor_log.record(
                session, editor.name, "send", issue_id=issue.id, detail=f"to {readers} reader(s)"
            )
            return issue.id

    try:
        issue_id = await run_in_threadpool(prepare)
        state.sends.start(issue_id, editor.name)
    except EditionError as exc:
        return await _refused(request, state, key, next_path, exc)
    return back_to(f"/issues/{key}", done="sending")
