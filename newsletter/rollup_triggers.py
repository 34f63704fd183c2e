"""The triggers that keep issue rollups (newsletter/rollups.py) and the list's past sizes
(`listsize`, newsletter/weekly.py) exact: each deletes what a change makes stale, in the
transaction of the change. Made by migration 0012 on an existing store
and with the tables on a new one (`models`: after `create_all`); one definition for both.

- `providerevent` inserted, updated or deleted: the issue's `events`;
- `linkhit`, `linkcount`, `foldedclick`, `issuelink` inserted, updated or deleted: its `hits` and
  `readers`;
- except that a hit or a provider event inserted above the rollup's `through_id` leaves it standing
  (GROWING: a view adds such rows, newsletter/report_growth.py; migration 0013);
- `delivery` inserted or deleted, or the issue's status changed: its `ledger` (kept only once the
  send is over, when its rows are final until a retry makes the issue `sending` again);
- a `subscriberevent` inserted, changed or deleted: the list at every moment after it.

On PostgreSQL a trigger runs once per statement, over its transition table; SQLite has no statement
triggers, so there once per row.
"""

# ruff: noqa: S608  (every statement here is built from the constants of this module)

from __future__ import annotations

# table -> the rollup part its rows count
HITS = ("hits", "readers")
COUNTED = {
    "providerevent": ("events",),
    "linkhit": HITS,
    "linkcount": HITS,
    "foldedclick": HITS,
    "issuelink": HITS,
    "delivery": ("ledger",),
}
GROWING = ("linkhit", "providerevent")  # their inserts drop only rollups that counted past them
# delivery: inserts and deletes only (its status updates come with the issue's, which has a trigger)
EVENTS = {table: ("INSERT", "UPDATE", "DELETE") for table in COUNTED} | {"delivery": ("INSERT", "DELETE")}

_PG_FUNCTIONS = {  # event -> (function, the issues its statement touched, the transition tables)
    "INSERT": ("issuerollup_forget_inserted", "SELECT issue_id FROM new_rows", "NEW TABLE AS new_rows"),
    "UPDATE": (
        "issuerollup_forget_updated",
        "SELECT issue_id FROM old_rows UNION SELECT issue_id FROM new_rows",
        "OLD TABLE AS old_rows NEW TABLE AS new_rows",
    ),
    "DELETE": ("issuerollup_forget_deleted", "SELECT issue_id FROM old_rows", "OLD TABLE AS old_rows"),
}
_PG_SIZES = {  # event -> (function, the earliest time its statement touched, the transition tables)
    "INSERT": ("listsize_forget_inserted", "SELECT min(at) FROM new_rows", "NEW TABLE AS new_rows"),
    "UPDATE": (
        "listsize_forget_updated",
        "SELECT min(at) FROM (SELECT at FROM old_rows UNION ALL SELECT at FROM new_rows) AS changed",
        "OLD TABLE AS old_rows NEW TABLE AS new_rows",
    ),
    "DELETE": ("listsize_forget_deleted", "SELECT min(at) FROM old_rows", "OLD TABLE AS old_rows"),
}
_SQLITE_SIZES = {
    "INSERT": "BEGIN DELETE FROM listsize WHERE moment > NEW.at; END",
    "UPDATE": "BEGIN DELETE FROM listsize WHERE moment > OLD.at OR moment > NEW.at; END",
    "DELETE": "BEGIN DELETE FROM listsize WHERE moment > OLD.at; END",
}
_SQLITE_ROWS = {"INSERT": "NEW.issue_id", "UPDATE": "OLD.issue_id, NEW.issue_id", "DELETE": "OLD.issue_id"}


def _listed(parts: tuple[str, ...]) -> str:
    return ", ".join(f"'{part}'" for part in parts)


def _name(table: str, event: str) -> str:
    return f"{table}_rollup_{event.lower()}"


_PG_BELOW = "issuerollup_forget_inserted_below"


def _grows(table: str, event: str) -> bool:
    return event == "INSERT" and table in GROWING


def _dropping_trigger(dialect: str, table: str, event: str) -> str:
    """The trigger that drops the issue's rollups of what `table` counts on any `event` of its rows."""
    if dialect == "postgresql":
        function, _, referencing = _PG_FUNCTIONS[event]
        return (
            f"CREATE TRIGGER {_name(table, event)} AFTER {event} ON {table} REFERENCING {referencing} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {function}({_listed(COUNTED[table])})"
        )
    return (
        f"CREATE TRIGGER {_name(table, event)} AFTER {event} ON {table} BEGIN "
        f"DELETE FROM issuerollup WHERE part IN ({_listed(COUNTED[table])}) "
        f"AND issue_id IN ({_SQLITE_ROWS[event]}); END"
    )


def _drop_trigger(dialect: str, table: str, name: str) -> str:
    return f"DROP TRIGGER {name}" + (f" ON {table}" if dialect == "postgresql" else "")


def create_statements(dialect: str, *, watermarks: bool = True) -> list[str]:
    """The DDL that makes the triggers (and on PostgreSQL their functions); `watermarks=False`:
    as migration 0012 made them, before rollups of hits and events recorded their `through_id`."""
    if dialect == "postgresql":
        made = [
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"DELETE FROM issuerollup WHERE part = ANY (TG_ARGV) AND issue_id IN ({issues}); "
            "RETURN NULL; END $$"
            for name, issues, _ in _PG_FUNCTIONS.values()
        ]
        made += [
            _dropping_trigger(dialect, table, event)
            for table, events in EVENTS.items()
            for event in events
            if not _grows(table, event)
        ]
        made += growing_statements(dialect, watermarks=watermarks)
        made += [
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"DELETE FROM listsize WHERE moment > ({earliest}); RETURN NULL; END $$"
            for name, earliest, _ in _PG_SIZES.values()
        ]
        made += [
            f"CREATE TRIGGER subscriberevent_listsize_{event.lower()} AFTER {event} ON subscriberevent "
            f"REFERENCING {referencing} FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
            for event, (name, _, referencing) in _PG_SIZES.items()
        ]
        return [
            *made,
            "CREATE FUNCTION issuerollup_forget_ledger() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "DELETE FROM issuerollup WHERE part = 'ledger' AND issue_id = NEW.id; RETURN NULL; END $$",
            "CREATE TRIGGER issue_rollup_status AFTER UPDATE OF status ON issue FOR EACH ROW "
            "WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION issuerollup_forget_ledger()",
        ]
    made = [
        _dropping_trigger(dialect, table, event)
        for table, events in EVENTS.items()
        for event in events
        if not _grows(table, event)
    ]
    made += growing_statements(dialect, watermarks=watermarks)
    made += [
        f"CREATE TRIGGER subscriberevent_listsize_{event.lower()} AFTER {event} ON subscriberevent {body}"
        for event, body in _SQLITE_SIZES.items()
    ]
    return [
        *made,
        "CREATE TRIGGER issue_rollup_status AFTER UPDATE OF status ON issue "
        "WHEN OLD.status IS NOT NEW.status BEGIN "
        "DELETE FROM issuerollup WHERE part = 'ledger' AND issue_id = NEW.id; END",
    ]


def growing_statements(dialect: str, *, watermarks: bool = True) -> list[str]:
    """The insert triggers of the GROWING tables: they drop a rollup only when a new row's id is at
    or below its `through_id` (never, for ids handed out after it was counted; an id given by hand
    or reused is caught), or when the rollup has none. `watermarks=False`: as 0012 made them, any
    insert drops the issue's rollups."""
    if not watermarks:
        return [_dropping_trigger(dialect, table, "INSERT") for table in GROWING]
    if dialect == "postgresql":
        return [
            f"CREATE FUNCTION {_PG_BELOW}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "DELETE FROM issuerollup AS kept "
            "USING (SELECT issue_id, min(id) AS lowest FROM new_rows GROUP BY issue_id) AS added "
            "WHERE kept.part = ANY (TG_ARGV) AND kept.issue_id = added.issue_id "
            "AND (kept.through_id IS NULL OR added.lowest <= kept.through_id); RETURN NULL; END $$",
            *(
                f"CREATE TRIGGER {_name(table, 'INSERT')} AFTER INSERT ON {table} "
                f"REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
                f"EXECUTE FUNCTION {_PG_BELOW}({_listed(COUNTED[table])})"
                for table in GROWING
            ),
        ]
    return [
        f"CREATE TRIGGER {_name(table, 'INSERT')} AFTER INSERT ON {table} BEGIN "
        f"DELETE FROM issuerollup WHERE part IN ({_listed(COUNTED[table])}) AND issue_id = NEW.issue_id "
        "AND (through_id IS NULL OR NEW.id <= through_id); END"
        for table in GROWING
    ]


def drop_growing_statements(dialect: str, *, watermarks: bool) -> list[str]:
    """Drop the GROWING tables' insert triggers (either kind), and their function if `watermarks`."""
    dropped = [_drop_trigger(dialect, table, _name(table, "INSERT")) for table in GROWING]
    return dropped + ([f"DROP FUNCTION {_PG_BELOW}()"] if dialect == "postgresql" and watermarks else [])


def drop_statements(dialect: str, *, watermarks: bool = True) -> list[str]:
    postgresql = dialect == "postgresql"
    dropped = [
        _drop_trigger(dialect, table, _name(table, event))
        for table, events in EVENTS.items()
        for event in events
    ]
    dropped.append(_drop_trigger(dialect, "issue", "issue_rollup_status"))
    dropped += [
        _drop_trigger(dialect, "subscriberevent", f"subscriberevent_listsize_{event.lower()}")
        for event in _SQLITE_SIZES
    ]
    if postgresql:
        dropped += [
            f"DROP FUNCTION {name}()" for name, _, _ in (*_PG_FUNCTIONS.values(), *_PG_SIZES.values())
        ]
        dropped.append("DROP FUNCTION issuerollup_forget_ledger()")
        if watermarks:
            dropped.append(f"DROP FUNCTION {_PG_BELOW}()")
    return dropped
