"""`newsletter webhooks ...`: the endpoints that are told when readers join or leave, vote, or an
issue is sent, and delivering what is due. A secret is printed once, by `add` and `rotate`, and
nowhere else; listings show URLs without their query strings."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from newsletter.cli.apps import webhooks_app
from newsletter.cli.common import console, errors, fail, load_settings, open_store, refusals

EndpointId = Annotated[int, typer.Argument(help="The endpoint's id (`newsletter webhooks list`).", min=1)]


@webhooks_app.command("add")
def webhooks_add(
    url: Annotated[str, typer.Argument(help="The receiver's URL (https://...; http:// for this machine).")],
    events: Annotated[
        str,
        typer.Option(
            "--events",
            help="Comma-separated event types, or all: subscriber.pending, subscriber.confirmed, "
            "subscriber.unsubscribed, subscriber.bounced, subscriber.complained, subscriber.erased, "
            "vote.recorded, issue.sent.",
        ),
    ],
) -> None:
    """Add an endpoint; prints its id and its signing secret, once."""
    from newsletter import editor_log
    from newsletter.db import session_scope
    from newsletter.outgoing_webhooks import endpoints

    try:
        endpoints.check_url(url)
        endpoints.parse_events(events)
    except endpoints.EndpointError as exc:
        fail(f"{'URL' if 'URL' in str(exc) else '--events'}: {exc}")
    settings = load_settings()
    engine = open_store(settings)
    with refusals(), session_scope(engine) as session:
        endpoint, secret = endpoints.add(session, url, events, key=settings.signing_key())
        endpoint_id, stored_events = endpoint.id, endpoint.events
        detail = f"endpoint {endpoint_id}: {endpoints.shown_url(url)} ({stored_events})"
        editor_log.record(session, editor_log.cli_editor(), "webhook add", detail=detail)
    console.print(
        f"Webhook endpoint {endpoint_id} added: {endpoints.shown_url(url)} "
        f"(events: {endpoints.shown_events(stored_events)}).",
        markup=False,
        soft_wrap=True,
    )
    console.print("Its signing secret, shown this once (put it in the receiver's configuration):")
    console.print(secret, markup=False, soft_wrap=True)
    if url.lower().startswith("http://") and not _local(url):
        errors.print(
            "[bold yellow]warning:[/] http:// sends readers' addresses unencrypted; use https:// beyond "
            "this machine."
        )


def _local(url: str) -> bool:
    from urllib.parse import urlsplit

    return (urlsplit(url).hostname or "") in ("localhost", "127.0.0.1", "::1")


@webhooks_app.command("list")
def webhooks_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array instead of a table.")] = False,
) -> None:
    """The endpoints: URL, events, state (ok, failing, disabled and why), last success and failure,
    messages pending and given up."""
    from rich.table import Table

    from newsletter.db import session_scope
    from newsletter.outgoing_webhooks.endpoints import endpoint_health

    settings = load_settings()
    engine = open_store(settings)
    with session_scope(engine) as session:
        health = endpoint_health(session)
    if as_json:
        print(json.dumps([item.as_json() for item in health], indent=2))
        return
    if not health:
        console.print("No webhook endpoints. Add one with `newsletter webhooks add URL --events all`.")
        return
    table = Table(title="Webhook endpoints")
    for column in ("id", "url", "events", "state", "last success", "last failure", "pending", "given up"):
        table.add_column(column, overflow="fold")
    colours = {"ok": "green", "failing": "yellow", "disabled": "red"}
    for item in health:
        table.add_row(
            str(item.id),
            escape(item.url),
            item.events.replace(",", ", "),
            f"[{colours[item.state]}]{item.state}[/]",
            _when(item.last_success_at),
            _when(item.last_failure_at) + (f" ({escape(item.last_error[:80])})" if item.last_error else ""),
            str(item.pending),
            str(item.failed),
        )
    console.print(table)
    for item in health:
        if item.state == "disabled":
            errors.print(
                f"[bold yellow]warning:[/] endpoint {item.id} is DISABLED since {_when(item.disabled_at)}: "
                f"{escape(item.disabled_reason or 'by an operator')}. {item.pending} event(s) wait for "
                f"`newsletter webhooks enable {item.id}`.",
                soft_wrap=True,
            )


def _when(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "—"


@webhooks_app.command("remove")
def webhooks_remove(endpoint_id: EndpointId) -> None:
    """Remove an endpoint, with its queued messages and its attempt log."""
    from newsletter import editor_log
    from newsletter.db import session_scope
    from newsletter.outgoing_webhooks import endpoints

    settings = load_settings()
    engine = open_store(settings)
    try:
        with session_scope(engine) as session:
            pending = endpoints.remove(session, endpoint_id)
            editor_log.record(
                session,
                editor_log.cli_editor(),
                "webhook remove",
                detail=f"endpoint {endpoint_id} ({pending} undelivered dropped)",
            )
    except endpoints.EndpointError as exc:
        fail(str(exc))
    console.print(f"Webhook endpoint {endpoint_id} removed ({pending} undelivered event(s) dropped).")


@webhooks_app.command("enable")
def webhooks_enable(endpoint_id: EndpointId) -> None:
    """Enable an endpoint again (after it was disabled for failing): its waiting events go out, in order."""
    from newsletter import editor_log
    from newsletter.db import session_scope
    from newsletter.outgoing_webhooks import endpoints

    settings = load_settings()
    engine = open_store(settings)
    try:
        with session_scope(engine) as session:
            pending = endpoints.enable(session, endpoint_id)
            editor_log.record(
                session, editor_log.cli_editor(), "webhook enable", detail=f"endpoint {endpoint_id}"
            )
    except endpoints.EndpointError as exc:
        fail(str(exc))
    console.print(f"Webhook endpoint {endpoint_id} enabled; {pending} event(s) are due now.")


@webhooks_app.command("disable")
def webhooks_disable(endpoint_id: EndpointId) -> None:
    """Stop delivering to an endpoint; its events keep queuing until it is enabled or removed."""
    from newsletter import editor_log
    from newsletter.db import session_scope
    from newsletter.outgoing_webhooks import endpoints

    settings = load_settings()
    engine = open_store(settings)
    try:
        with session_scope(engine) as session:
            endpoints.disable(session, endpoint_id, "disabled by an operator")
            editor_log.record(
                session, editor_log.cli_editor(), "webhook disable", detail=f"endpoint {endpoint_id}"
            )
    except endpoints.EndpointError as exc:
        fail(str(exc))
    console.print(
        f"Webhook endpoint {endpoint_id} disabled; its events wait for `newsletter webhooks enable`."
    )


@webhooks_app.command("rotate")
def webhooks_rotate(endpoint_id: EndpointId) -> None:
    """Give an endpoint a new signing secret (the old one stops at once); prints it, once."""
    from newsletter import editor_log
    from newsletter.db import session_scope
    from newsletter.outgoing_webhooks import endpoints

    settings = load_settings()
    engine = open_store(settings)
    try:
        with refusals(), session_scope(engine) as session:
            secret = endpoints.rotate(session, endpoint_id, key=settings.signing_key())
            editor_log.record(
                session,
                editor_log.cli_editor(),
                "webhook rotate",
                detail=f"endpoint {endpoint_id} (a new signing secret)",
            )
    except endpoints.EndpointError as exc:
        fail(str(exc))
    console.print(f"Webhook endpoint {endpoint_id} has a new signing secret, shown this once:")
    console.print(secret, markup=False, soft_wrap=True)


@webhooks_app.command("test")
def webhooks_test(endpoint_id: EndpointId) -> None:
    """Send a signed `webhook.test` event to an endpoint now and show its answer (exit 1 unless 2xx)."""
    from newsletter.outgoing_webhooks import endpoints
    from newsletter.outgoing_webhooks.sender import send_test

    settings = load_settings()
    engine = open_store(settings)
    try:
        with refusals():
            outcome = send_test(engine, settings, endpoint_id)
    except endpoints.EndpointError as exc:
        fail(str(exc))
    answer = f": {outcome.response}" if outcome.response else ""
    if not outcome.ok:
        fail(f"endpoint {endpoint_id}: {outcome.describe()} after {outcome.duration_ms} ms{answer}")
    console.print(
        f"Endpoint {endpoint_id} answered {outcome.status_code} in {outcome.duration_ms} ms{answer}",
        markup=False,
        soft_wrap=True,
    )


@webhooks_app.command("deliver")
def webhooks_deliver(
    limit: Annotated[
        int, typer.Option(help="At most this many attempts in this run.", min=1, max=1_000_000)
    ] = 10_000,
) -> None:
    """Deliver the webhook events due now (the scheduler and the workers do it every few seconds).
    Exit 1 when an attempt failed: it is retried later, with back-off."""
    from newsletter.outgoing_webhooks.sender import deliver_due, prune

    settings = load_settings()
    engine = open_store(settings)
    with refusals():
        report = deliver_due(engine, settings, limit=limit)
        prune(engine, settings)
    console.print(
        f"Webhooks: {report.delivered} delivered, {report.failed} failed (retried later with back-off), "
        f"{report.gave_up} given up."
    )
    for endpoint in report.disabled:
        errors.print(f"[bold yellow]warning:[/] {escape(endpoint)} was DISABLED (failing too long).")
    if report.failed:
        worst = "; ".join(f"{why} ({count}x)" for why, count in report.errors.most_common(3))
        fail(f"{report.failed} delivery attempt(s) failed: {worst}")
