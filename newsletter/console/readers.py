"""The readers: the list's size over time and its weekly movements (charts over
`audience.list_growth`), and one reader found by address (`audience.find_reader`): their state,
events, deliveries and clicks, with their data to download and an erase. The address travels in
POST bodies only (never in a URL, a log line or an editor event)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from newsletter import editor_log
from newsletter.audience import ReaderRecord, find_reader, list_growth
from newsletter.charts import CHART_CSS, Series, bar_chart, line_chart
from newsletter.console.state import Console, ConsoleState, EditorAt, render
from newsletter.db import session_scope
from newsletter.headers import HeaderValueError, normalise_email
from newsletter.subscriptions import erase, export_data, find_by_email

router = APIRouter()
WEEKS = 26
Address = Annotated[str, Form(max_length=1000)]
STYLE = Markup(CHART_CSS)  # noqa: S704  (a constant of the charts module, not content)


def growth_charts(state: ConsoleState) -> dict[str, object]:
    with session_scope(state.store()) as session:
        weeks = list_growth(session, WEEKS, state.settings.zone)
    labels = [week.week for week in weeks]
    return {
        "weeks": weeks,
        "size": line_chart(
            "Readers on the list, week by week",
            labels,
            [Series("active readers", [w.list_size for w in weeks], "primary")],
            unit="readers",
            label_heading="Week",
        ),
        "moves": bar_chart(
            "Signups, confirmations and leaves per week",
            labels,
            [
                Series("signups", [w.signups for w in weeks], "secondary"),
                Series("confirmations", [w.confirmations for w in weeks], "good"),
                Series("leaves", [w.left for w in weeks], "bad"),
            ],
            unit="readers",
            label_heading="Week",
        ),
    }


async def readers_page(
    request: Request,
    state: ConsoleState,
    *,
    record: ReaderRecord | None = None,
    searched: str = "",
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    found = await run_in_threadpool(growth_charts, state)
    return render(
        request,
        "web/console/readers.html.j2",
        status,
        chart_css=STYLE,
        record=record,
        searched=searched,
        notice=notice,
        error=error,
        zone=state.settings.zone,
        **found,
    )


@router.get("/readers", response_class=HTMLResponse)
async def readers(request: Request, state: Console) -> Response:
    return await readers_page(request, state)


def _find(state: ConsoleState, email: str) -> ReaderRecord | None:
    with session_scope(state.store()) as session:
        return find_reader(session, email, state.settings.signing_key())


@router.post("/readers/find", response_class=HTMLResponse)
async def find(request: Request, state: Console, email: Address = "") -> Response:
    """A reader by address: a POST, so the address stays out of URLs and logs."""
    try:
        record = await run_in_threadpool(_find, state, email)
    except HeaderValueError as exc:
        return await readers_page(
            request, state, searched=email, error=f"That is not an address: {exc}.", status=422
        )
    if record is None:
        return await readers_page(
            request, state, searched=email, error="No reader has that address.", status=404
        )
    return await readers_page(request, state, record=record, searched=record.email)


@router.post("/readers/export")
async def export(request: Request, state: Console, editor: EditorAt, email: Address = "") -> Response:
    """Everything stored about the reader, as the reader's own "download my data" gives it."""

    def work() -> dict | None:
        with session_scope(state.store()) as session:
            subscriber = find_by_email(session, normalise_email(email))
            if subscriber is None:
                return None
            editor_log.record(session, editor.name, "export", detail=f"reader #{subscriber.id}")
            return export_data(session, subscriber)

    try:
        data = await run_in_threadpool(work)
    except HeaderValueError as exc:
        raise HTTPException(422, f"That is not an address: {exc}.") from exc
    if data is None:
        raise HTTPException(404, "No reader has that address.")
    return Response(
        json.dumps(data, indent=2, default=str),
        media_type="application/json",
        headers={
            "Content-Disposition": 'attachment; filename="reader-data.json"',
            "Cache-Control": "no-store",
        },
    )


@router.post("/readers/erase", response_class=HTMLResponse)
async def erase_reader(
    request: Request,
    state: Console,
    editor: EditorAt,
    email: Address = "",
    confirm: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """Erase the reader (as their own "erase me" does); the box must be ticked first."""
    if confirm != "yes":
        record = await run_in_threadpool(_find, state, email)
        error = "Tick the box to confirm: an erase cannot be undone."
        return await readers_page(request, state, record=record, searched=email, error=error, status=422)

    def work() -> int | None:
        with session_scope(state.store()) as session:
            subscriber = find_by_email(session, normalise_email(email))
            if subscriber is None:
                return None
            erase(session, subscriber, key=state.settings.signing_key())
            editor_log.record(session, editor.name, "erase", detail=f"reader #{subscriber.id}")
            return subscriber.id

    try:
        erased = await run_in_threadpool(work)
    except HeaderValueError as exc:
        raise HTTPException(422, f"That is not an address: {exc}.") from exc
    if erased is None:
        raise HTTPException(404, "No reader has that address.")
    return await readers_page(request, state, notice=f"Reader #{erased} is erased: their address is gone.")
