"""The ledger's hot statements: a batch's answers are recorded in one statement, with every row's own
provider id, and what they store reads back as the ORM writes it (times compare on both databases)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import event, func
from sqlmodel import Session, col, select

from newsletter import ledger
from newsletter.db import session_scope
from newsletter.models import Delivery, DeliveryStatus, utcnow
from tests.test_workers import prepared


def test_a_batchs_answers_are_recorded_in_one_statement_with_each_rows_own_id(engine, settings, samples):
    with session_scope(engine) as session:
        issue_id = prepared(session, settings, samples, [f"r{n}@example.com" for n in range(5)])
        ledger.open_send(session, issue_id)
    batch, _ = ledger.claim(engine, issue_id, 5, ledger.sender_identity(), 120)
    assert len(batch) == 5 and len({row.batch_key for row in batch}) == 1
    before = utcnow() - timedelta(seconds=1)
    answered = [
        (batch[0].delivery_id, "<pm-1>"),
        (batch[1].delivery_id, None),
        (batch[2].delivery_id, "pm-3"),
    ]

    statements: list[tuple[str, bool]] = []

    def seen(_conn, _cursor, statement, _parameters, _context, executemany) -> None:
        if statement.lstrip().upper().startswith("UPDATE"):
            statements.append((statement, executemany))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        assert ledger.mark_sent(engine, "postmark", answered) == 3
    finally:
        event.remove(engine, "before_cursor_execute", seen)

    assert len(statements) == 1, statements
    if engine.dialect.name == "postgresql":
        statement, executemany = statements[0]
        assert "FROM (VALUES" in statement and not executemany, "one UPDATE ... FROM (VALUES ...) per batch"
    with Session(engine) as session:
        rows = {d.id: d for d in session.exec(select(Delivery).where(Delivery.issue_id == issue_id))}
        sent_since = session.exec(
            select(func.count()).where(
                Delivery.status == DeliveryStatus.SENT, col(Delivery.sent_at) >= before
            )
        ).one()
    assert [rows[b.delivery_id].provider_message_id for b in batch[:3]] == ["pm-1", None, "pm-3"]
    assert {rows[b.delivery_id].status for b in batch[:3]} == {DeliveryStatus.SENT}
    assert {rows[b.delivery_id].provider for b in batch[:3]} == {"postmark"}
    assert all(before <= rows[b.delivery_id].sent_at <= utcnow() for b in batch[:3])
    assert sent_since == 3, "the stored time compares with the ORM's own"
    assert {rows[b.delivery_id].status for b in batch[3:]} == {DeliveryStatus.SENDING}, (
        "only the answered rows"
    )
    assert ledger.mark_sent(engine, "postmark", []) == 0
