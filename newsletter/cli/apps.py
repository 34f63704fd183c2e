"""The command tree: the root command and its groups, which the command modules add to.

Kept apart from the commands so that every module can register on them without importing another.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Weekly AI Tool Verdicts: pick, render and send the weekly issue.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
issue_app = typer.Typer(help="Compose, inspect, edit and send the week's issue.", no_args_is_help=True)
comparisons_app = typer.Typer(help="The comparisons in the store.", no_args_is_help=True)
subscribers_app = typer.Typer(help="The readers on the list.", no_args_is_help=True)
schedule_app = typer.Typer(help="The scheduler's jobs.", no_args_is_help=True)
db_app = typer.Typer(
    help="The store's schema, and moving the store to another database.", no_args_is_help=True
)
app.add_typer(issue_app, name="issue")
app.add_typer(comparisons_app, name="comparisons")
app.add_typer(subscribers_app, name="subscribers")
app.add_typer(schedule_app, name="schedule")
webhooks_app = typer.Typer(
    help="Outgoing webhooks: tell other systems when readers join or leave, vote, or an issue is sent.",
    no_args_is_help=True,
)
app.add_typer(webhooks_app, name="webhooks")
console_app = typer.Typer(help="The editors' console (also `newsletter preview`).")
app.add_typer(db_app, name="db")
app.add_typer(console_app, name="console")
