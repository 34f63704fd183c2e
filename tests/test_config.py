"""Settings: environment first, clear errors, a secret key that is never in the repository."""

from __future__ import annotations

import base64
import os
import re
import secrets
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from newsletter.config import (
    MAX_ENV_FILE_BYTES,
    SECRET_FIELDS,
    TOKEN_FIELDS,
    ConfigError,
    Settings,
    check_env_file,
    variable_name,
)
from newsletter.key_strength import (
    alphabet_bits,
    alphabet_size,
    interleaved,
    pattern_estimate,
    smallest_period,
    weakness,
)
from newsletter.redaction import redact

PASSWORD = "S3cr3t/pa@ss"


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
    (tmp_path / "keys").mkdir()
    path = tmp_path / "keys" / ".newsletter-secret"
    first = Settings(_env_file=None, secret_file=path).signing_key()
    second = Settings(_env_file=None, secret_file=path).signing_key()
    assert first == second and len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Settings(_env_file=None, secret_file=tmp_path / "other").signing_key() != first


@pytest.mark.parametrize(
    ("url", "stored"),
    [
        ("sqlite:///subscribers.db", "sqlite:///subscribers.db"),
        ("sqlite+pysqlite:////var/lib/x.db", "sqlite:////var/lib/x.db"),
        ("postgresql+psycopg://u:pw@db:5432/news", "postgresql+psycopg://u:pw@db:5432/news"),
        ("postgresql://u@db/news", "postgresql+psycopg://u@db/news"),  # plain postgresql:// means psycopg
        ("postgresql://u:p%2Fw@db/news", "postgresql+psycopg://u:p%2Fw@db/news"),
    ],
)
def test_supported_database_urls_are_accepted_in_one_spelling(url, stored):
    assert Settings(_env_file=None, database_url=url).database_url == stored


def test_a_home_relative_sqlite_path_is_expanded(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert (
        Settings(_env_file=None, database_url="sqlite:///~/x.db").database_url == f"sqlite:///{tmp_path}/x.db"
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("garbage", "not a database URL"),
        ("postgresql+psycopg//x", "not a database URL"),
        (f"postgresql+psycopg//u:{PASSWORD}@h/db", "not a database URL"),
        ("mysql://x/y", "'mysql' is not supported"),
        (f"postgres://u:{PASSWORD}@h/db", "spell it postgresql+psycopg://"),
        ("postgresql+psycopg2://h/db", "not supported"),
        (f"postgresql+psycopg://u:{PASSWORD}@h:99999/db", "out of range"),
        (f"postgresql+psycopg://u:{PASSWORD}@h:port/db", "not a database URL"),
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
        ("sqlite:///x.db?mode=ro", "no ?options"),
        ("sqlite://host/x.db", "three slashes"),
        ("sqlite:///st%00ore.db", "NUL byte"),
        (f"postgresql+psycopg://u:{PASSWORD}@h/po%00stgres", "NUL byte"),
        (f"postgresql+psycopg://u:{PASSWORD}@h/db?application_name=a%00b", "NUL byte"),
    ],
)
def test_unsupported_database_urls_are_refused_with_the_expected_form_and_no_password(url, reason):
    with pytest.raises(ValidationError, match=re.escape(reason)) as refused:
        Settings(_env_file=None, database_url=url)
    message = str(refused.value)
    assert "sqlite:///path" in message and "postgresql+psycopg://" in message
    assert PASSWORD not in message and "S3cr3t" not in message


def test_no_validation_error_quotes_a_value():
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None, secret_key=f"two words {PASSWORD}", resend_api_key=f"{PASSWORD} x")
    assert "S3cr3t" not in str(refused.value)


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_no_setting_takes_a_line_break_or_a_huge_value(name):
    for value in ("two\nlines", "trailing newline\n", "x" * 5000):
        with pytest.raises(ValidationError, match=variable_name(name).removeprefix("NEWSLETTER_").lower()):
            Settings(_env_file=None, **{name: value})


def test_every_credential_setting_is_declared_secret():
    for name in Settings.model_fields:
        if name.endswith(("_key", "_token", "_password", "_secret")):
            assert name in SECRET_FIELDS or name == "sendgrid_webhook_public_key", name
    assert set(SECRET_FIELDS) <= set(TOKEN_FIELDS)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("send_rate", "nan"),
        ("resume_hours", "inf"),
        ("trusted_proxies", "10.0.0.300"),
        ("trusted_proxies", "*, 10.0.0.1"),
        ("api_base_url", "localhost:8025"),
        ("preview_url", "javascript:alert(1)"),
        ("mailgun_domain", "mg.example.com/../x"),
        ("postmark_stream", "two words"),
        ("postmark_server_token", "token with spaces"),
        ("outbox_dir", ""),
        ("smtp_url", "smtp://user:pw@"),
        ("site_url", "https://a b"),
        ("site_url", "https://verdicts.example.com/%00"),
        ("site_url", "https://verdicts.example.com/\x00"),
        ("site_url", "https://verdicts.example.com/?utm=x"),
        ("site_url", "https://user:pw@verdicts.example.com"),
        ("site_url", "https://verdicts.example.com:0"),
        ("site_url", "https://verdicts.example.com/caf\u00e9"),
        ("site_url", "https://verdicts.example.com/a<b"),
        ("name", "bytes \udcff that were not UTF-8"),
    ],
)
def test_more_bad_settings_are_refused(field, value):
    with pytest.raises(ValidationError):
        Settings(_env_file=None, **{field: value})


WEAK_KEYS = {
    "one character": "a" * 32,
    "a word repeated": "changeme" * 4,
    "a word repeated eight times": "changeme" * 8,
    "a word repeated and one more": "changeme" * 4 + "!",
    "digits repeated": "0123456789" * 4,
    "64 random digits": "".join(secrets.choice("0123456789") for _ in range(64)),
    "the alphabet in order": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEF",
    "a short run then the alphabet": "ab" * 10 + "cdefghijklmnopqrstu",
    "a password and a count": "Password1234567890123456789012345",
    # The audit's: accepted by the Shannon estimate.
    "a sentence": "my-super-secret-newsletter-signing-key-do-not-share",
    "interleaved letters and digits": "a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6q7r8s9t0",
    "keyboard rows": "qwertyuiopasdfghjklzxcvbnm1234567890",
    "interleaved cases": "aAbBcCdDeEfFgGhHiIjJkKlLmMnNoOpPqQrRsStT",
    # And their kind.
    "a passphrase": "correct-horse-battery-staple-correct-horse",
    "words run together": "thisismysecretkeyforthenewsletterapp2026",
    "keyboard columns": "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
    "keyboard columns backwards": "zaq1xsw2cde3vfr4bgt5nhy6mju7,ki8.lo9",
    "a phrase twice and a count": "supersecretkeysupersecretkey12345678",
    "digits and letters woven": "1a2b3c4d5e6f7g8h9i0j1k2l3m4n5o6p7q8r",
    "a leet password": "P@ssw0rdP@ssw0rd!2026-Newsletter-Key",
    "snake-case words": "newsletter_production_secret_key_2026!",
    "a famous password thrice": "Tr0ub4dor&3-Tr0ub4dor&3-Tr0ub4dor&3xx",
    "few bits for its alphabet": "0123456789abcdef" * 2,
    "thirty-two hex digits of a pattern": "deadbeefcafebabe0123456789abcdef",
}


@pytest.mark.parametrize("key", list(WEAK_KEYS.values()), ids=list(WEAK_KEYS))
def test_production_refuses_a_weak_key_without_showing_it(key, tmp_path):
    with pytest.raises(ValidationError, match="too weak for production") as refused:
        Settings(_env_file=None, env="production", secret_key=key)
    assert key not in str(refused.value)
    development = Settings(_env_file=None, secret_key=key, secret_file=tmp_path / "unused")
    if len(key) >= 32:
        assert development.signing_key() == key.encode()  # development keeps taking test keys


STRONG_KEYS = {
    "token_hex(16)": lambda: secrets.token_hex(16),
    "token_hex(32)": lambda: secrets.token_hex(32),
    "token_urlsafe(24)": lambda: secrets.token_urlsafe(24),
    "token_urlsafe(32)": lambda: secrets.token_urlsafe(32),
    "token_urlsafe(48)": lambda: secrets.token_urlsafe(48),
    "upper-case hex": lambda: secrets.token_hex(16).upper(),
    "base64 with padding": lambda: base64.b64encode(secrets.token_bytes(32)).decode(),
}


@pytest.mark.parametrize("make", list(STRONG_KEYS.values()), ids=list(STRONG_KEYS))
def test_production_takes_keys_from_a_random_generator(make):
    for _ in range(40):
        key = make()
        assert weakness(key) is None, key
    assert Settings(_env_file=None, env="production", secret_key=key).signing_key() == key.encode()


def test_the_key_measures():
    assert smallest_period("abcabcab") == 3 and smallest_period("abcd") == 4 and smallest_period("a" * 9) == 1
    assert alphabet_bits(secrets.token_hex(16)) == 128
    assert alphabet_size("abcXYZ12-_") == 26 + 26 + 10 + 33
    assert (
        interleaved("a1b2c3d4e5f6") and interleaved("aAbBcCdDeE") and not interleaved(secrets.token_hex(16))
    )
    bits, words = pattern_estimate("correct-horse-battery-staple-correct-horse")
    assert words > 0.5 and bits < 0.75 * alphabet_bits("correct-horse-battery-staple-correct-horse")
    bits, words = pattern_estimate(secrets.token_urlsafe(32))
    assert bits > 200 and words < 0.5


def test_paths_are_checked_without_creating_anything(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    missing = tmp_path / "missing"
    cases = {
        "NEWSLETTER_DATABASE_URL: the directory": {"database_url": f"sqlite:///{missing / 'x.db'}"},
        "NEWSLETTER_DATABASE_URL: " + str(tmp_path): {"database_url": f"sqlite:///{tmp_path}"},
        "NEWSLETTER_OUTBOX_DIR: " + str(a_file): {"outbox_dir": a_file},
        "NEWSLETTER_OUTBOX_DIR: the directory": {"outbox_dir": missing / "outbox"},
        "NEWSLETTER_SECRET_FILE: " + str(tmp_path): {"secret_file": tmp_path},
        "NEWSLETTER_SECRET_FILE: the directory": {"secret_file": missing / "secret"},
    }
    base = {"database_url": f"sqlite:///{tmp_path / 'x.db'}", "outbox_dir": tmp_path / "outbox"}
    base["secret_file"] = tmp_path / "secret"
    for message, wrong in cases.items():
        with pytest.raises(ConfigError, match=message):
            Settings(_env_file=None, **(base | wrong)).check_paths()
    Settings(_env_file=None, **base).check_paths()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
    # Paths that are not used are not checked: another provider, an explicit key.
    unused = base | {
        "provider": "postmark",
        "outbox_dir": a_file,
        "secret_file": tmp_path,
        "secret_key": "k" * 40,
    }
    Settings(_env_file=None, **unused).check_paths()


def test_a_site_url_that_is_one_is_kept_without_its_trailing_slash():
    for url in ("https://verdicts.example.com/", "https://example.com:8443/newsletter"):
        assert Settings(_env_file=None, site_url=url).site_url == url.rstrip("/")


def test_paths_the_system_cannot_use_are_named_not_raised(tmp_path):
    long_name = tmp_path / ("x" * 300)
    base = {"database_url": f"sqlite:///{tmp_path / 'x.db'}", "outbox_dir": tmp_path / "outbox"}
    base["secret_file"] = tmp_path / "secret"
    os.mkfifo(tmp_path / "fifo")
    cases = {
        "NEWSLETTER_DATABASE_URL: cannot use .*File name too long": {
            "database_url": f"sqlite:///{long_name}"
        },
        "NEWSLETTER_OUTBOX_DIR: cannot use .*File name too long": {"outbox_dir": long_name},
        "NEWSLETTER_SECRET_FILE: cannot use .*File name too long": {"secret_file": long_name},
        "NEWSLETTER_SECRET_FILE: /dev/null is not a regular file": {"secret_file": Path("/dev/null")},
        "NEWSLETTER_SECRET_FILE: .*fifo is not a regular file": {"secret_file": tmp_path / "fifo"},
        "NEWSLETTER_DATABASE_URL: /dev/null is not a regular file": {"database_url": "sqlite:////dev/null"},
    }
    for message, wrong in cases.items():
        settings = Settings(_env_file=None, **(base | wrong))
        with pytest.raises(ConfigError, match=message):
            settings.check_paths()
        if "secret_file" in wrong:  # and the key is never read from (or written to) it
            with pytest.raises(ConfigError, match=message):
                settings.signing_key()


def test_an_env_file_that_is_not_utf8_or_is_huge_is_named(tmp_path):
    env = tmp_path / ".env"
    env.write_bytes(b"NEWSLETTER_NAME=fine\nNEWSLETTER_POSTAL_ADDRESS=Stra\xdfe 1\n")  # Latin-1
    with pytest.raises(ConfigError, match=r"\.env: line 2 is not UTF-8 text \(byte 0xdf at column 31\)"):
        check_env_file(env)
    env.write_bytes(b"# " + b"x" * MAX_ENV_FILE_BYTES)
    with pytest.raises(ConfigError, match="larger than"):
        check_env_file(env)
    env.write_text("NEWSLETTER_NAME=fine\n")
    check_env_file(env)
    check_env_file(tmp_path / "missing")


def test_the_local_key_is_never_made_in_a_missing_directory(tmp_path):
    settings = Settings(_env_file=None, secret_file=tmp_path / "missing" / "secret")
    with pytest.raises(
        ConfigError, match=r"NEWSLETTER_SECRET_FILE: the directory .*missing.* does not exist"
    ):
        settings.signing_key()
    assert not (tmp_path / "missing").exists()
    (tmp_path / "secret").mkdir()
    with pytest.raises(ConfigError, match="is a directory"):
        Settings(_env_file=None, secret_file=tmp_path / "secret").signing_key()
    (tmp_path / "binary").write_bytes(b"\xff" * 64)
    with pytest.raises(ConfigError, match="not a key file") as refused:
        Settings(_env_file=None, secret_file=tmp_path / "binary").signing_key()
    assert "\\xff" not in str(refused.value)


def test_secrets_are_masked_in_messages():
    settings = Settings(
        _env_file=None,
        secret_key="k" * 40,
        database_url="postgresql+psycopg://u:p%2Fw0rd@db/news",
        smtp_url=f"smtp://user:{PASSWORD}@mail.example.com",
        resend_api_key="re_123456",
    )
    held = settings.secret_values()
    assert {"k" * 40, "p/w0rd", "p%2Fw0rd", PASSWORD, "re_123456"} <= held
    text = f"failed with {'k' * 40} at postgresql://u:p/w0rd@db and {PASSWORD} and re_123456, user u"
    shown = redact(text, held)
    assert (
        "k" * 40 not in shown and "w0rd" not in shown and "S3cr3t" not in shown and "re_123456" not in shown
    )
    assert "user u" in shown
    assert redact("see http://bob:hunter2@example.com/x", set()) == "see http://bob:***@example.com/x"
