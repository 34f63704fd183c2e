"""A PostgreSQL store the size of a grown list, for bench/console.py: made with COPY in minutes.

`prepare(url, recipients, earlier, seed)` builds, in a fresh database:

* the readers: `recipients` who are all active when this week's issue goes out, plus those who
  are not (about 4% who left before it, 1% who never confirmed, 0.3% who signed up after it), joined
  over two years in time order, a third imported by the owner and the rest through the form (a
  request, then a confirmation minutes to two days later); 3% have click tracking off;
* their event trail, as the app writes it (subscribed, or signup_requested then confirmed; left);
* this week's issue and `earlier` weekly issues before it, each composed from its own comparisons
  by the real `compose`, its link table registered by the real renderer and mailer, and sent to
  every reader active at its send: the ledger (99.7% sent, some failed, some suppressed), the
  provider's events (delivered 97.5%, hard bounces 1%, soft 0.8%, complaints 0.05%, a delivered
  posted twice now and then), and hits: link scanners that fetch every link of the message on
  arrival, HEAD then GET or GET alone, the hidden link included (judged machines by the rules'
  reasons), and people who click one to four links hours later (human); this week's issue gets
  `recipients / 2` hits, each earlier one 80% of that;
* this week's issue's consequences: unsubscribes from its links and headers (0.2%), the readers its
  hard bounces and complaints suppressed, and votes from its links (1% of readers).

Every random choice comes from `seed`, so two stores made alike are alike. Foreign keys are not
checked during the load (`session_replication_role = replica`): the rows are consistent by
construction, and checking four million references would take longer than writing them.
"""

from __future__ import annotations

import json
import random
import time
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import Engine, make_url

from newsletter.config import Settings
from newsletter.content import store_comparisons
from newsletter.curation import Week
from newsletter.db import create_schema, make_engine, session_scope
from newsletter.editions import compose, issue_view, variant_comparisons
from newsletter.models import Comparison, Issue, IssueItem, IssueLink, IssueStatus
from newsletter.personalise import IssueMailer
from newsletter.render import Renderer
from newsletter.samples import dated_into_week, sample_comparisons
from newsletter.tracking.issue_links import register_links

ZONE = ZoneInfo("UTC")
KEY = "bench-signing-key-0123456789-abcdefghijklmnopqrstuvwxyz"
ACTIVE, PENDING, UNSUBSCRIBED, BOUNCED, COMPLAINED = range(5)
STATUS = {ACTIVE: "active", PENDING: "pending", UNSUBSCRIBED: "unsubscribed", BOUNCED: "bounced"}
STATUS[COMPLAINED] = "complained"
IMPORTED, TRACKING_OFF, LEFT_FROM_ISSUE = 1, 2, 4  # flag bits
HUMAN_LINKS = {"comparison": 50, "scorecard": 20, "tool": 15, "web": 10, "site": 5}


def settings_for(url: str) -> Settings:
    return Settings(_env_file=None, database_url=url, secret_key=KEY, timezone="UTC")


@dataclass
class Readers:
    """Every reader as parallel arrays (id = index + 1): times in Unix seconds, 0 for none."""

    joined: array  # active from (a confirmation, or an owner's add); a pending reader's request
    requested: array  # the form's request (0: imported)
    left: array
    state: bytearray
    flags: bytearray

    def __len__(self) -> int:
        return len(self.state)

    def active_at(self, i: int, moment: float) -> bool:
        return self.state[i] != PENDING and self.joined[i] < moment and not (0 < self.left[i] <= moment)


def make_readers(recipients: int, send: float, rng: random.Random) -> Readers:
    """Readers in the order they joined, over the two years before `send`, until exactly
    `recipients` of them are active at `send`; then 0.3% more who join after it."""
    kinds: list[tuple[int, bool]] = []  # (state now, left before the send)
    active = 0
    while active < recipients:
        r = rng.random()
        if r < 0.0095:
            kinds.append((PENDING, False))
        elif r < 0.0495:
            kinds.append((rng.choices((UNSUBSCRIBED, BOUNCED, COMPLAINED), (65, 27, 8))[0], True))
        else:
            kinds.append((ACTIVE, False))
            active += 1
    late = max(1, recipients * 3 // 1000)
    start, span = send - 104 * 7 * 86400, 104 * 7 * 86400 - 3 * 86400  # confirmed before the send
    count = len(kinds)
    readers = Readers(array("d"), array("d"), array("d"), bytearray(), bytearray())
    for index, (state, left_before) in enumerate(kinds):
        moment = start + span * index / count
        flags = (IMPORTED if rng.random() < 0.33 else 0) | (TRACKING_OFF if rng.random() < 0.03 else 0)
        _add(readers, rng, moment, state, flags, leave_by=send if left_before else None)
    for index in range(late):  # signed up after the send: this week's signups
        moment = send + (index + 1) * 3600 * 24 / late
        _add(readers, rng, moment, PENDING if rng.random() < 0.3 else ACTIVE, 0, leave_by=None)
    _issue_leaves(readers, recipients, send, rng)
    return readers


def _add(readers: Readers, rng: random.Random, moment: float, state: int, flags: int, leave_by):
    imported = bool(flags & IMPORTED) and state != PENDING
    flags = flags | IMPORTED if imported else flags & ~IMPORTED
    requested = 0.0 if imported else moment
    joined = moment if imported or state == PENDING else moment + rng.uniform(600, 2 * 86400)
    left = rng.uniform(joined, leave_by) if leave_by is not None and state != ACTIVE else 0.0
    readers.joined.append(joined)
    readers.requested.append(requested)
    readers.left.append(left)
    readers.state.append(state)
    readers.flags.append(flags)


def _issue_leaves(readers: Readers, recipients: int, send: float, rng: random.Random) -> None:
    """The issue's unsubscribes (0.2%), hard bounces (1%) and complaints (0.05%) among its readers."""
    for i in range(len(readers)):
        if not readers.active_at(i, send):
            continue
        r = rng.random()
        if r < 0.002:
            state = UNSUBSCRIBED
        elif r < 0.012:
            state = BOUNCED
        elif r < 0.0125:
            state = COMPLAINED
        else:
            continue
        readers.state[i] = state
        readers.left[i] = send + rng.uniform(300, 4 * 86400)
        readers.flags[i] |= LEFT_FROM_ISSUE


# --- COPY ------------------------------------------------------------------------------------------


def stamp(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@contextmanager
def bare(engine: Engine, tables: list[str]) -> Iterator[None]:
    """The tables without their secondary indexes and unique constraints while they are loaded:
    building an index once at the end is several times faster than keeping it up row by row."""
    with engine.connect() as connection:
        indexes = connection.execute(
            text(
                "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE tablename = ANY(:tables) "
                "AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE contype IN ('p', 'u'))"
            ),
            {"tables": tables},
        ).all()
        constraints = connection.execute(
            text(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE contype = 'u' AND conrelid::regclass::text = ANY(:tables)"
            ),
            {"tables": tables},
        ).all()
        for _, name, _ in indexes:
            connection.execute(text(f'DROP INDEX "{name}"'))
        for table, name, _ in constraints:
            connection.execute(text(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"'))
        connection.commit()
    yield
    with engine.connect() as connection:
        connection.execute(text("SET maintenance_work_mem = '256MB'"))
        for table, name, definition in constraints:
            connection.execute(text(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}'))
        for _, _, definition in indexes:
            connection.execute(text(definition))
        connection.commit()


def copy_rows(engine: Engine, statement: str, rows: Iterator[tuple]) -> int:
    raw = engine.raw_connection()
    count = 0
    try:
        with raw.cursor() as cursor:
            cursor.execute("SET session_replication_role = replica")
            cursor.execute("SET synchronous_commit = off")
            with cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row(row)
                    count += 1
        raw.commit()
    finally:
        raw.close()
    return count


def subscriber_rows(readers: Readers) -> Iterator[tuple]:
    for i in range(len(readers)):
        state, flags = readers.state[i], readers.flags[i]
        created = readers.requested[i] or readers.joined[i]
        left = readers.left[i]
        yield (
            f"reader{i}@example.com",
            STATUS[state],
            "import" if flags & IMPORTED else "form",
            stamp(created),
            stamp(readers.requested[i]) if readers.requested[i] else None,
            stamp(readers.joined[i]) if state != PENDING else None,
            stamp(left) if state == UNSUBSCRIBED else None,
            not flags & TRACKING_OFF,
            stamp(left or readers.joined[i]),
        )


def event_rows(readers: Readers, issue_id: int, rng: random.Random) -> Iterator[tuple]:
    """Joins in reader order, then the leaves in time order (ids rise with time, as the app writes)."""
    for i in range(len(readers)):
        if readers.requested[i]:
            yield (i + 1, "signup_requested", "form", None, None, stamp(readers.requested[i]))
            if readers.state[i] != PENDING:
                yield (i + 1, "confirmed", "confirmation link", None, None, stamp(readers.joined[i]))
        else:
            yield (
                i + 1,
                "subscribed",
                "import",
                "added as active by the list owner",
                None,
                stamp(readers.joined[i]),
            )
    leaves = sorted((readers.left[i], i) for i in range(len(readers)) if readers.left[i])
    for moment, i in leaves:
        state = readers.state[i]
        from_issue = readers.flags[i] & LEFT_FROM_ISSUE
        if state == UNSUBSCRIBED:
            source = rng.choices(("one-click", "unsubscribe page", "postmark"), (60, 30, 10))[0]
            yield (
                i + 1,
                "unsubscribed",
                source,
                "was active",
                issue_id if from_issue else None,
                stamp(moment),
            )
        else:
            kind = STATUS[state]
            yield (i + 1, kind, "postmark", f"{kind} (provider event)", None, stamp(moment))


@dataclass
class SentIssue:
    id: int
    week: Week
    send: float
    links: dict[str, list[int]]  # link ids by kind
    first_delivery: int  # the id of its first ledger row (they are consecutive)
    hits: int
    rows: list | None = None  # its ledger, while it is being written


def ledger(readers: Readers, issue: SentIssue, seed: int) -> list[tuple[int, str, float, str]]:
    """(reader index, status, sent time, provider outcome) per ledger row, made once per issue."""
    if issue.rows is None:
        issue.rows = list(_ledger(readers, issue, seed))
    return issue.rows


def _ledger(readers: Readers, issue: SentIssue, seed: int) -> Iterator[tuple[int, str, float, str]]:
    rng = random.Random(seed * 1000 + issue.id)
    order = 0
    for i in range(len(readers)):
        if not readers.active_at(i, issue.send):
            continue
        order += 1
        sent = issue.send + order * 0.0004  # a million readers in ~7 minutes
        r = rng.random()
        status = "sent" if r < 0.997 else ("failed" if r < 0.999 else "suppressed")
        outcome = ""
        if status == "sent":
            o = rng.random()
            if readers.flags[i] & LEFT_FROM_ISSUE and readers.state[i] in (BOUNCED, COMPLAINED):
                outcome = STATUS[readers.state[i]]
            elif o < 0.975:
                outcome = "delivered"
            elif o < 0.983:
                outcome = "soft_bounced"
        yield i, status, sent, outcome


def delivery_rows(readers: Readers, issue: SentIssue, seed: int) -> Iterator[tuple]:
    for i, status, sent, _ in ledger(readers, issue, seed):
        error = {"failed": "provider refused: 422 inactive recipient", "suppressed": "unsubscribed"}.get(
            status
        )
        yield (
            issue.id,
            i + 1,
            status,
            f"b{issue.id}-{i // 100}",
            "postmark",
            f"pm-{issue.id}-{i}" if status == "sent" else None,
            1,
            error,
            stamp(issue.send),
            stamp(sent),
            stamp(sent) if status == "sent" else None,
        )


def provider_event_rows(readers: Readers, issue: SentIssue, seed: int) -> Iterator[tuple]:
    rng = random.Random(seed * 7 + issue.id)
    delivery = issue.first_delivery - 1
    for i, _status, sent, outcome in ledger(readers, issue, seed):
        delivery += 1
        if not outcome:
            continue
        kinds = [outcome]
        if outcome == "complained":
            kinds = ["delivered", "complained"]
        if outcome == "delivered" and rng.random() < 0.01:
            kinds.append("delivered")  # the provider posted it twice
        for n, kind in enumerate(kinds):
            at = stamp(sent + 2 + n + rng.random() * 30)
            yield (
                "postmark",
                f"{issue.id}-{i}-{n}",
                kind,
                delivery,
                i + 1,
                issue.id,
                f"pm-{issue.id}-{i}",
                at,
                at,
            )


def hit_rows(readers: Readers, issue: SentIssue, seed: int) -> Iterator[tuple]:
    """Scanners (60% of the hits, every link on arrival) and people (40%, one to four clicks hours
    later), among the readers the issue reached who have tracking on."""
    rng = random.Random(seed * 13 + issue.id)
    visible = [link for kind, ids in issue.links.items() if kind not in ("decoy", "open") for link in ids]
    decoy = issue.links["decoy"][0]
    per_scanner = 1.5 * (len(visible) + 1)
    scanners = issue.hits * 0.6 / per_scanner
    people = issue.hits * 0.4 / 1.6
    reachable = sum(
        1
        for i, status, _, _ in ledger(readers, issue, seed)
        if status == "sent" and not readers.flags[i] & TRACKING_OFF
    )
    p_scanner, p_person = scanners / reachable, people / reachable
    weights = [(ids, HUMAN_LINKS.get(kind, 5)) for kind, ids in issue.links.items() if kind in HUMAN_LINKS]
    for i, status, sent, _ in ledger(readers, issue, seed):
        if status != "sent" or readers.flags[i] & TRACKING_OFF:
            continue
        r = rng.random()
        reader = i + 1
        if r < p_scanner:
            at = sent + rng.uniform(2, 20)
            agent = "scanner" if rng.random() < 0.1 else "browser"
            head = rng.random() < 0.5
            for link in [*visible, decoy]:
                for method in ("HEAD", "GET") if head else ("GET",):
                    at += 0.05
                    if agent == "scanner":
                        reason = "agent:scanner"
                    elif method == "HEAD":
                        reason = "method:HEAD"
                    else:
                        reason = "decoy" if link == decoy else "decoy-burst"
                    yield (issue.id, reader, link, stamp(at), method, agent, False, None, True, reason)
        elif r < p_scanner + p_person:
            at = sent + 60 + rng.expovariate(1 / (6 * 3600))
            clicks = rng.choices((1, 2, 3, 4), (60, 25, 10, 5))[0]
            for _ in range(clicks):
                ids = rng.choices([w[0] for w in weights], [w[1] for w in weights])[0]
                yield (issue.id, reader, rng.choice(ids), stamp(at), "GET", "browser", False, None, False, "")
                at += rng.uniform(30, 900)


def vote_rows(readers: Readers, issue: SentIssue, tools: list[tuple[int, int]], seed: int) -> Iterator[tuple]:
    """1% of the issue's readers vote ship or skip on one of its tools, from its links."""
    rng = random.Random(seed * 17 + issue.id)
    for i, status, sent, _ in ledger(readers, issue, seed):
        if status == "sent" and rng.random() < 0.01:
            comparison, tool = rng.choice(tools)
            at = stamp(sent + rng.uniform(120, 3 * 86400))
            verdict = "ship" if rng.random() < 0.6 else "skip"
            yield (comparison, tool, f"reader:{i + 1}", i + 1, verdict, issue.id, at, at)


# --- the store ---------------------------------------------------------------------------------------


def fresh_database(url: str) -> None:
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


def make_issue(
    engine: Engine, settings: Settings, week: Week, send: float
) -> tuple[int, dict[str, list[int]]]:
    """Compose the week's issue from comparisons of its own (the samples under new slugs), mark it
    sent at `send`, and register the links its email carries (the real render and mailer)."""
    moment = min(stamp(send), week.bounds(ZONE)[1] - timedelta(hours=1))
    suffix = week.label.lower()
    items = [
        item.model_copy(update={"slug": f"{item.slug}-{suffix}", "title": f"{item.title} ({week.label})"})
        for item in dated_into_week(sample_comparisons(), moment, ZONE)
    ]
    with session_scope(engine) as session:
        store_comparisons(session, items, ZONE)
        issue = compose(session, week, settings).issue
        issue.status, issue.send_started_at, issue.sent_at = IssueStatus.SENT, stamp(send), stamp(send + 420)
        issue.approved_at = stamp(send - 3600)
        issue.token_expires_at = int(send) + 120 * 86400
        session.add(issue)
        session.flush()
        comparisons = variant_comparisons(session, issue, settings, None)
        rendered = Renderer().render_issue(issue_view(session, issue, settings, comparisons))
        issue_id = issue.id
        mailer = IssueMailer(
            rendered, settings, tag=issue.slug, expires_at=issue.token_expires_at, issue_id=issue_id
        )
    register_links(engine, issue_id, mailer.links)
    links: dict[str, list[int]] = {}
    with session_scope(engine) as session:
        for link in session.scalars(
            select(IssueLink).where(IssueLink.issue_id == issue_id).order_by(IssueLink.id)
        ):
            links.setdefault(link.kind, []).append(link.id)
    return issue_id, links


def prepare(url: str, recipients: int, earlier: int, seed: int = 7, say=print) -> dict:
    """Build the store; returns what the bench needs to know about it (also kept in the store)."""
    began = time.perf_counter()
    fresh_database(url)
    engine = make_engine(url)
    create_schema(engine)
    settings = settings_for(url)
    now = datetime.now(UTC).replace(microsecond=0)
    this_week = Week.containing(now, ZONE)
    weeks = [
        Week(*(this_week.monday - timedelta(weeks=back)).isocalendar()[:2]) for back in range(earlier, -1, -1)
    ]
    sends = [min(w.bounds(ZONE)[0] + timedelta(hours=9), now - timedelta(hours=2)).timestamp() for w in weeks]
    rng = random.Random(seed)
    readers = make_readers(recipients, sends[-1], rng)
    say(f"  {len(readers):,} readers planned in {time.perf_counter() - began:.0f} s")
    issues = []
    for week, send in zip(weeks, sends, strict=True):
        issue_id, links = make_issue(engine, settings, week, send)
        issues.append(SentIssue(issue_id, week, send, links, 0, 0))
    main = issues[-1]
    for issue in issues:
        issue.hits = recipients // 2 if issue is main else int(recipients * 0.4)

    def timed(what: str, statement: str, rows: Iterator[tuple]) -> None:
        started = time.perf_counter()
        count = copy_rows(engine, statement, rows)
        say(f"  {what}: {count:,} rows in {time.perf_counter() - started:.1f} s")

    started = time.perf_counter()
    with bare(engine, ["subscriber", "subscriberevent", "delivery", "providerevent", "linkhit"]):
        timed(
            "subscriber",
            "COPY subscriber (email, status, source, created_at, requested_at, confirmed_at, "
            "unsubscribed_at, tracking, updated_at) FROM STDIN",
            subscriber_rows(readers),
        )
        timed(
            "subscriberevent",
            "COPY subscriberevent (subscriber_id, kind, source, detail, issue_id, at) FROM STDIN",
            event_rows(readers, main.id, random.Random(seed + 1)),
        )
        next_delivery = 1
        for issue in issues:
            issue.first_delivery = next_delivery
            statement = (
                "COPY delivery (issue_id, subscriber_id, status, batch_key, provider, provider_message_id, "
                "attempts, last_error, created_at, updated_at, sent_at) FROM STDIN"
            )
            copied = time.perf_counter()
            count = copy_rows(engine, statement, delivery_rows(readers, issue, seed))
            next_delivery += count
            say(f"  delivery ({issue.week.label}): {count:,} rows in {time.perf_counter() - copied:.1f} s")
            timed(
                f"providerevent ({issue.week.label})",
                "COPY providerevent (provider, event_key, kind, delivery_id, subscriber_id, issue_id, "
                "provider_message_id, occurred_at, received_at) FROM STDIN",
                provider_event_rows(readers, issue, seed),
            )
            timed(
                f"linkhit ({issue.week.label})",
                "COPY linkhit (issue_id, subscriber_id, link_id, at, method, agent, prefetch, client_hash, "
                "machine, reason) FROM STDIN",
                hit_rows(readers, issue, seed),
            )
            issue.rows = None
        loaded = time.perf_counter()
    say(f"  indexes and unique constraints built again in {time.perf_counter() - loaded:.1f} s")
    say(f"  the load in all: {time.perf_counter() - started:.0f} s")
    with session_scope(engine) as session:
        tools = [
            (comparison.id, tool)
            for comparison in session.scalars(
                select(Comparison)
                .join(IssueItem, IssueItem.comparison_id == Comparison.id)
                .where(IssueItem.issue_id == main.id)
            )
            for tool in (comparison.left_tool_id, comparison.right_tool_id)
        ]
    timed(
        "vote",
        "COPY vote (comparison_id, tool_id, voter, subscriber_id, verdict, issue_id, created_at, updated_at) "
        "FROM STDIN",
        vote_rows(readers, main, tools, seed),
    )
    about = {
        "recipients": recipients,
        "readers": len(readers),
        "earlier": earlier,
        "issue_id": main.id,
        "week": main.week.label,
        "prepared_at": now.isoformat(),
        "sample_readers": [
            f"reader{i}@example.com" for i in random.Random(seed).sample(range(len(readers)), 5)
        ],
    }
    started = time.perf_counter()
    with engine.connect() as connection:
        connection.execute(text("CREATE TABLE bench_about (about TEXT NOT NULL)"))
        connection.execute(text("INSERT INTO bench_about VALUES (:about)"), {"about": json.dumps(about)})
        connection.commit()
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    say(f"  VACUUM ANALYZE in {time.perf_counter() - started:.1f} s")
    engine.dispose()
    about["seconds"] = round(time.perf_counter() - began, 1)
    return about


def prepared(url: str) -> dict | None:
    """What `prepare` left in the store at `url`, or None when there is no such store."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return json.loads(connection.execute(text("SELECT about FROM bench_about")).scalar_one())
    except Exception:  # no database, no table: not prepared
        return None
    finally:
        engine.dispose()


def issue_week(engine: Engine, issue_id: int) -> str:
    with session_scope(engine) as session:
        return session.get(Issue, issue_id).week
