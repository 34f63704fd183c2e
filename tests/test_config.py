"""Settings: environment first, clear errors, a secret key that is never in the repository."""

from __future__ import annotations

import stat

import pytest
from pydantic import ValidationError

from newsletter.config import ConfigError, Settings


def test_defaults_are_the_embedded_default(monkeypatch):
    for name in ("NEWSLETTER_DATABASE_URL", "NEWSLETTER_PROVIDER", "NEWSLETTER_ISSUE_SIZE"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None)
    assert settings.database_url == "sqlite:///subscribers.db"
    assert settings.provider == "outbox"
    assert settings.issue_size == 3
    assert str(settings.outbox_dir) == "outbox"


def test_environment_variables_are_read(monkeypatch):
    monkeypatch.setenv("NEWSLETTER_ISSUE_SIZE", "5")
    monkeypatch.setenv("NEWSLETTER_TIMEZONE", "America/New_York")
    monkeypatch.setenv("NEWSLETTER_FROM", "Verdicts <news@example.org>")
    monkeypatch.setenv("NEWSLETTER_SITE_URL", "https://example.org/")
    settings = Settings(_env_file=None)
    assert settings.issue_size == 5
    assert settings.timezone == "America/New_York"
    assert settings.from_address == "Verdicts <news@example.org>"
    assert settings.site_url == "https://example.org"


def test_dotenv_file_is_read(tmp_path, monkeypatch):
    monkeypatch.delenv("NEWSLETTER_ISSUE_SIZE", raising=False)
    env = tmp_path / ".env"
    env.write_text("NEWSLETTER_ISSUE_SIZE=4\n")
    assert Settings(_env_file=env).issue_size == 4


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("site_url", "http://verdicts.example.com", "https"),
        ("timezone", "Mars/Olympus", "unknown time zone"),
        ("from_address", "Verdicts <not an address>", "not a valid email address"),
        ("from_address", "Verdicts <a@example.com>\r\nBcc: x@example.com", "single line"),
        ("issue_size", 0, "greater than or equal to 1"),
        ("name", "Two\nlines", "single line"),
    ],
    ids=["http-site", "unknown-zone", "bad-from", "from-with-crlf", "empty-issue", "multi-line-name"],
)
def test_bad_settings_are_refused_with_a_reason(field, value, reason):
    with pytest.raises(ValidationError, match=reason):
        Settings(_env_file=None, **{field: value})


def test_production_refuses_to_run_without_a_secret_key(tmp_path):
    settings = Settings(_env_file=None, env="production", secret_file=tmp_path / "secret")
    with pytest.raises(ConfigError, match="NEWSLETTER_SECRET_KEY is not set"):
        settings.signing_key()
    assert not (tmp_path / "secret").exists()


def test_a_short_explicit_key_is_refused():
    with pytest.raises(ConfigError, match="at least 32"):
        Settings(_env_file=None, secret_key="short").signing_key()


def test_local_use_generates_one_private_key_and_keeps_it(tmp_path):
    path = tmp_path / "keys" / ".newsletter-secret"
    first = Settings(_env_file=None, secret_file=path).signing_key()
    second = Settings(_env_file=None, secret_file=path).signing_key()
    assert first == second and len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Settings(_env_file=None, secret_file=tmp_path / "other").signing_key() != first
