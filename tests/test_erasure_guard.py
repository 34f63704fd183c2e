"""An erased address stays out whatever happens to the signing key: it is rotated, the key file is
lost, production sets NEWSLETTER_SECRET_KEY, or the store is copied into a database run with another
key. Real `newsletter` processes on the suite's database (SQLite files, or PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session, select

from newsletter import erasure
from newsletter.db import make_engine
from newsletter.models import ErasedAddress, StoreKey, Subscriber, SubscriberStatus
from newsletter.subscriber_files import import_csv
from newsletter.subscriptions import add_active, erase, request_signup
from tests.commands import newsletter as run
from tests.conftest import TEST_KEY
from tests.databases import clean_env, database_url

ADDRESS = "erased.reader@example.com"
OTHER_KEY = "another-signing-key-for-production-0123456789abcdef"


def erase_and_sign_up_again(url: str) -> None:
    """The reader erases themselves (the preferences page's service), then someone types their
    address into the form: a pending row again."""
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            reader = session.exec(select(Subscriber).where(Subscriber.email == ADDRESS)).one()
            erase(session, reader)
            session.commit()
            request_signup(session, ADDRESS, source="form", client=None, per_address=(5, 3600))
            session.commit()
    finally:
        engine.dispose()


def status(url: str) -> str:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return session.exec(select(Subscriber.status).where(Subscriber.email == ADDRESS)).one()
    finally:
        engine.dispose()


def assert_kept_out(directory: Path, env: dict[str, str], url: str) -> None:
    """The list owner's paths (import, import --confirm, add) leave the erased reader pending."""
    (directory / "g.csv").write_text(f"email\n{ADDRESS}\n")
    for args in (("subscribers", "import", "g.csv"), ("subscribers", "import", "--confirm", "g.csv")):
        imported = run(directory, env, *args)
        assert imported.returncode == 0, imported.stderr
        assert "0 pending made active" in imported.stdout, imported.stdout
        assert "1 were erased at their request and were not added" in imported.stdout, imported.stdout
    added = run(directory, env, "subscribers", "add", ADDRESS)
    assert added.returncode == 0 and "Added 0;" in added.stdout, added.stdout + added.stderr
    assert status(url) == SubscriberStatus.PENDING


def test_the_guard_survives_a_lost_key_file_and_a_production_key(tmp_path):
    env = clean_env(tmp_path) | {"COLUMNS": "200"}  # no NEWSLETTER_SECRET_KEY: the generated key file
    url = env["NEWSLETTER_DATABASE_URL"]
    assert run(tmp_path, env, "init").returncode == 0
    assert run(tmp_path, env, "subscribers", "add", ADDRESS).returncode == 0
    erase_and_sign_up_again(url)
    assert_kept_out(tmp_path, env, url)

    (tmp_path / ".newsletter-secret").rename(tmp_path / "old-secret")  # lost, or rotated
    assert_kept_out(tmp_path, env, url)
    assert (tmp_path / ".newsletter-secret").read_text() != (tmp_path / "old-secret").read_text()
    production = env | {"NEWSLETTER_SECRET_KEY": OTHER_KEY}  # going to production with a real key
    assert_kept_out(tmp_path, production, url)


def test_the_guard_travels_with_db_copy_into_a_store_run_with_another_key(tmp_path):
    source_dir, target_dir = tmp_path / "source", tmp_path / "target"
    source_dir.mkdir()
    target_dir.mkdir()
    source = f"sqlite:///{source_dir / 'subscribers.db'}"  # the usual move: SQLite into the suite's database
    env = clean_env(source_dir) | {"NEWSLETTER_DATABASE_URL": source, "NEWSLETTER_SECRET_KEY": TEST_KEY}
    assert run(source_dir, env, "init").returncode == 0
    assert run(source_dir, env, "subscribers", "add", ADDRESS).returncode == 0
    erase_and_sign_up_again(source)
    target = database_url(target_dir)
    copied = run(source_dir, env, "db", "copy", "--to", target)
    assert copied.returncode == 0, copied.stderr
    target_env = clean_env(target_dir) | {"NEWSLETTER_SECRET_KEY": OTHER_KEY, "COLUMNS": "200"}
    assert_kept_out(target_dir, target_env, target)


def test_hashes_kept_by_earlier_releases_are_honoured_and_kept_again_under_the_store_key(session, tmp_path):
    """Before revision 0010 the hash was keyed with the signing key: still honoured with that key, and
    the first match keeps it under the store's key, so the next change of key does not lose it."""
    signing = TEST_KEY.encode()
    session.add(ErasedAddress(email_hash=erasure.email_hash(signing, ADDRESS)))
    session.commit()
    request_signup(session, ADDRESS, source="form", client=None, per_address=(5, 3600))
    session.commit()
    (tmp_path / "g.csv").write_text(f"email\n{ADDRESS}\n")
    report = import_csv(session, tmp_path / "g.csv", key=signing, confirm=False, skip_invalid=False)
    session.commit()
    assert (report.erased, report.activated) == (1, 0)
    assert session.get(StoreKey, erasure.ERASURE_KEY) is not None

    rotated = OTHER_KEY.encode()
    report = import_csv(session, tmp_path / "g.csv", key=rotated, confirm=False, skip_invalid=False)
    assert (report.erased, report.activated) == (1, 0)
    result = add_active(session, [ADDRESS], source="test", key=rotated)
    assert result.erased == [ADDRESS] and result.added == []
    session.commit()
    assert session.exec(select(Subscriber.status).where(Subscriber.email == ADDRESS)).one() == "pending"


def test_the_store_key_is_made_once_and_not_by_a_look(session):
    assert erasure.store_key(session) is None
    assert not erasure.is_erased(session, ADDRESS, TEST_KEY.encode())
    assert session.get(StoreKey, erasure.ERASURE_KEY) is None, "looking made a key"
    first = erasure.store_key(session, create=True)
    session.commit()
    assert first is not None and len(first) == 32
    assert erasure.store_key(session, create=True) == first
    assert len(session.exec(select(StoreKey)).all()) == 1
