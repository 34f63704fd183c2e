"""The long-running processes: the web app, the preview studio, the scheduler, sender workers, the
provider emulator, and `schedule show`."""

from __future__ import annotations

import asyncio
import math
from contextlib import suppress
from pathlib import Path
from typing import Annotated

import typer

from newsletter.cli.apps import app, console_app, schedule_app
from newsletter.cli.common import (
    configure_logging,
    console,
    fail,
    load_settings,
    open_store,
    refusals,
    shown,
)


@app.command()
def emulator(
    provider: Annotated[
        str,
        typer.Argument(
            help="postmark, resend, sendgrid or mailgun (all are served; this one "
            "is the one whose settings are printed)."
        ),
    ] = "postmark",
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free one).", min=0, max=65535)] = 8025,
    fail_rate: Annotated[
        float, typer.Option(help="Share of send requests answered 429 or 500, unprocessed.")
    ] = 0.0,
    drop_rate: Annotated[
        float, typer.Option(help="Share of send requests accepted, then the connection dropped.")
    ] = 0.0,
    latency_ms: Annotated[float, typer.Option(help="Delay before every answer.")] = 0.0,
    answer_delay_ms: Annotated[
        float, typer.Option(help="Delay between accepting and answering a send.")
    ] = 0.0,
    seed: Annotated[int | None, typer.Option(help="Seed for the injected faults, to repeat a run.")] = None,
    token: Annotated[
        str | None, typer.Option(help="The API key / server token it accepts (default: emulator-token).")
    ] = None,
) -> None:
    """A local server that speaks the providers' APIs, records what it accepts and injects faults."""
    from newsletter.emulator import DEFAULT_TOKEN, Emulator, Faults, run

    token = token or DEFAULT_TOKEN
    if provider not in ("postmark", "resend", "sendgrid", "mailgun"):
        fail(f"unknown provider {shown(provider)}; use postmark, resend, sendgrid or mailgun")
    if not (0 <= fail_rate <= 1 and 0 <= drop_rate <= 1):
        fail("--fail-rate and --drop-rate are shares between 0 and 1")
    for option, value in (("--latency-ms", latency_ms), ("--answer-delay-ms", answer_delay_ms)):
        if not (math.isfinite(value) and 0 <= value <= 600_000):
            fail(f"{option}: a delay in milliseconds between 0 and 600000")
    variable = {
        "postmark": "POSTMARK_SERVER_TOKEN",
        "resend": "RESEND_API_KEY",
        "sendgrid": "SENDGRID_API_KEY",
        "mailgun": "MAILGUN_API_KEY",
    }[provider]
    console.print(
        f"Emulating {provider} on http://{host}:{port} (faults: fail {fail_rate:.0%}, drop {drop_rate:.0%}, "
        f"latency {latency_ms:g} ms). Point the sender at it with:"
    )
    extra = " MAILGUN_DOMAIN=mg.example.com" if provider == "mailgun" else ""
    console.print(
        f"  NEWSLETTER_PROVIDER={provider} NEWSLETTER_API_BASE_URL=http://{host}:{port} "
        f"{variable}={token}{extra}",
        markup=False,
        soft_wrap=True,  # a line to copy: never broken
    )
    faults = Faults(
        fail_rate=fail_rate,
        drop_rate=drop_rate,
        latency_ms=latency_ms,
        answer_delay_ms=answer_delay_ms,
        seed=seed,
    )
    try:
        with suppress(KeyboardInterrupt):
            asyncio.run(run(host, port, Emulator(token=token, faults=faults)))
    except OSError as exc:  # the port is taken, the address is not this machine's, the name unknown
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


@app.command()
def scheduler() -> None:
    """The long-running scheduler (the same as `python scheduler.py`): compose, send, retry, purge and
    resume on their crontab schedules; stops cleanly on SIGTERM or SIGINT."""
    from newsletter import scheduling
    from newsletter.providers import make_provider

    settings = load_settings()
    engine = open_store(settings)
    configure_logging(settings)
    with refusals():
        settings.signing_key()
        make_provider(settings)
        raise typer.Exit(scheduling.run(settings, engine))


@app.command()
def worker(
    exit_when_idle: Annotated[
        bool, typer.Option("--exit-when-idle", help="Exit once no issue is left sending (batch jobs, tests).")
    ] = False,
) -> None:
    """A sender worker: sends the issues marked for sending, sharing each with any other workers;
    stops cleanly on SIGTERM or SIGINT (the batches in flight finish)."""
    from newsletter import worker as sender_worker
    from newsletter.providers import make_provider

    settings = load_settings()
    engine = open_store(settings)
    configure_logging(settings)
    with refusals():
        settings.signing_key()
        make_provider(settings)
        raise typer.Exit(sender_worker.run(settings, engine, exit_when_idle=exit_when_idle))


@schedule_app.command("show")
def schedule_show() -> None:
    """The jobs, their crontab schedules and their next run times (local time); changes nothing."""
    from rich.table import Table

    from newsletter import scheduling

    settings = load_settings()
    engine = open_store(settings)
    rows = scheduling.planned(settings, engine)
    table = Table(title=f"Scheduled jobs ({settings.timezone})")
    for column in ("job", "schedule", "next run"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)


ConsoleHost = Annotated[
    str,
    typer.Option(
        help="Address to listen on. Anything but loopback needs editor credentials "
        "(NEWSLETTER_EDITOR_PASSWORD_HASH or NEWSLETTER_EDITOR_TOKEN) and TLS in front."
    ),
]
ConsolePort = Annotated[
    int, typer.Option(help="Port to listen on (0: any free port; the one taken is printed).")
]
ConsoleTemplates = Annotated[
    Path | None,
    typer.Option(
        help="A templates directory (with email/) to work on instead of the package's; sends still "
        "use the package's.",
        exists=True,
        file_okay=False,
    ),
]


@app.command()
def preview(
    host: ConsoleHost = "127.0.0.1", port: ConsolePort = 8001, templates: ConsoleTemplates = None
) -> None:
    """The editors' console: the week's issue and its actions (reorder, edit, approve, send), a send's
    ledger live, each issue's report, the readers and the content, and the preview studio (every issue
    at 600 and 375 px, dark mode, the text part, the checks, test sends). `newsletter console` too."""
    run_console(host, port, templates)


@console_app.callback(invoke_without_command=True)
def console_command(
    context: typer.Context,
    host: ConsoleHost = "127.0.0.1",
    port: ConsolePort = 8001,
    templates: ConsoleTemplates = None,
) -> None:
    """The editors' console (the same as `newsletter preview`); `hash-password` makes a login."""
    if context.invoked_subcommand is None:
        run_console(host, port, templates)


@console_app.command("hash-password")
def hash_password() -> None:
    """Print NEWSLETTER_EDITOR_PASSWORD_HASH for a password typed twice (or read from standard input
    when it is not a terminal); the password itself is never shown or stored."""
    import sys

    from newsletter.passwords import hash_password as make_hash

    if sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        encoded = make_hash(password)
    except ValueError as exc:
        fail(f"the password was refused: {exc}")
    typer.echo(f"NEWSLETTER_EDITOR_PASSWORD_HASH={encoded}")


def run_console(host: str, port: int, templates: Path | None) -> None:
    from newsletter.console import LOCAL_HOSTS, create_console
    from newsletter.console.access import check_binding
    from newsletter.db import sqlite_path
    from newsletter.web import server

    settings = load_settings()
    with refusals():
        check_binding(settings, host)
    server.configure_logging(settings.log_level, uvicorn_level="WARNING")
    path = sqlite_path(settings.database_url)
    engine = open_store(settings) if path is None or path.exists() else None  # no file: the sample only
    with refusals():
        app_ = create_console(settings, engine, templates=templates, hosts=(*LOCAL_HOSTS, host))
    login = "a login" if settings.editor_credentials else "no login (this machine only)"
    server.run(
        app_,
        host=host,
        port=port,
        uvicorn_level="WARNING",
        forwarded_allow_ips=settings.trusted_proxies,
        on_ready=lambda bound: console.print(
            f"Console on {server.url_for(host, bound)} ({login})", markup=False
        ),
    )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port to listen on (0: any free port; the one taken is printed).")
    ] = 8000,
) -> None:
    """Run the readers' web app (signup, confirm, unsubscribe, preferences, votes) on uvicorn."""
    from newsletter.web import create_app, server

    settings = load_settings()
    server.configure_logging(settings.log_level)
    engine = open_store(settings)
    with refusals():
        web_app = create_app(settings, engine)
    server.run(
        web_app,
        host=host,
        port=port,
        forwarded_allow_ips=settings.trusted_proxies,
        on_ready=lambda bound: console.print(f"Web app on {server.url_for(host, bound)}", markup=False),
    )
