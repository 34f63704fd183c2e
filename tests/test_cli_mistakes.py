"""A clumsy operator's mistakes against the `newsletter` command: every one is refused with a short
message (exit 1, or 2 for Typer's usage errors), never a traceback, never exit 0, never a secret.

The lists come from the code, so new settings and commands are covered without editing this file:
every field of Settings gets a wrong value (by its type, or from WRONG), every command and sub-command
answers --help, gets an unknown option and a wrong-typed value for each number option, and every
command with --week gets weeks that do not exist. Environment variables are given to real
`newsletter` processes (run in parallel); arguments and --help run in-process through Typer's
CliRunner, where a process would add only start-up time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import typing
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

import newsletter.cli as cli
import newsletter.db
from newsletter.config import SECRET_FIELDS, Settings, variable_name
from tests.conftest import TEST_KEY
from tests.databases import ON_POSTGRES, clean_env, store_exists

MAX_ERROR_LINES = 6  # Typer's usage box is five lines; our own refusals are one
WORKERS = 4
SECRET = "S3cr3t/pa@ss:word"  # a password with the characters that broke URL parsing
BAD_WEEKS = ("2026-W99", "2027-W53", "9999-W52", "0001-W01", "W48", "2026-W4", "x" * 200)

# Wrong values for settings whose type alone does not make one up (or where a realistic one is better).
WRONG: dict[str, list[str]] = {
    "env": ["staging"],
    "database_url": ["garbage", "postgresql+psycopg//x", "mysql://x/y", "sqlite://"],
    "smtp_url": [f"smtp://user:{SECRET}", "http://mail.example.com", "smtp://mail.example.com:99999"],
    "site_url": ["http://verdicts.example.com"],
    "from_address": ["Verdicts <not an address>"],
    "timezone": ["Nowhere/Land"],
    "compose_cron": ["0 12 * *"],
    "send_cron": ["61 9 * * 1"],
    "retry_cron": ["every hour"],
    "purge_cron": ["15 3 * * 8"],
    "resume_cron": ["*/0 * * * *"],
    "signup_rate_per_client": ["lots"],
    "signup_rate_per_address": ["0/hour"],
    "embed_origins": ["http://example.com"],
    "allowed_link_hosts": ["not a host"],
    "editor_emails": ["editor-at-example.com"],
    "trusted_proxies": ["10.0.0.300"],
    "api_base_url": ["localhost:8025"],
    "preview_url": ["127.0.0.1:8001"],
    "mailgun_domain": ["mg.example.com/../x"],
    "postmark_stream": ["two words"],
    "issue_size": ["0", "many"],
    "send_rate": ["nan", "-1"],
    "resume_hours": ["inf"],
    "secret_key": [f"two words {SECRET}"],
}
BY_TYPE = {bool: "maybe", int: "many", float: "fast", str: "two\nlines", Path: ""}


def wrong_values(name: str) -> list[str]:
    """The wrong values of a setting: from WRONG, or made from its type (a new setting with a type
    this does not know fails the test, asking for an entry in WRONG)."""
    if name in WRONG:
        return WRONG[name]
    annotation = Settings.model_fields[name].annotation
    kinds = [kind for kind in typing.get_args(annotation) or (annotation,) if kind is not type(None)]
    if typing.get_origin(annotation) is typing.Literal:
        return ["nonsense"]
    if len(kinds) == 1 and kinds[0] in BY_TYPE:
        return [BY_TYPE[kinds[0]]]
    raise AssertionError(f"no wrong value for the setting {name}: add one to WRONG")


def test_every_setting_has_a_wrong_value():
    for name in Settings.model_fields:
        assert wrong_values(name), name


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    problem: str = ""  # an in-process exception that escaped (its traceback), or a secret shown

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def assert_refused(outcome: Outcome, *, codes=(1,), names=(), hidden=()) -> None:
    """Refused, briefly, without a traceback, naming what it should and showing no secret."""
    text = outcome.stdout + outcome.stderr
    assert not outcome.problem, outcome.problem
    assert "Traceback" not in text, text
    assert outcome.code in codes, f"exit {outcome.code}, expected {codes}:\n{text}"
    assert 1 <= len(outcome.error_lines) <= MAX_ERROR_LINES, f"{len(outcome.error_lines)} lines:\n{text}"
    for name in names:
        assert name in outcome.stderr, f"{name!r} not named in:\n{outcome.stderr}"
    for secret in hidden:
        assert secret not in text, f"a secret is shown:\n{text}"


# -- environment variables: real processes -------------------------------------------------------------


@dataclass
class EnvCase:
    id: str
    env: dict[str, str]
    names: tuple[str, ...]
    hidden: tuple[str, ...] = ("S3cr3t",)
    args: tuple[str, ...] = ("init",)


PATH_FIELDS = ("outbox_dir", "secret_file")  # each kind of wrong path: path_cases


def setting_cases(base: Path) -> list[EnvCase]:
    """Every setting with each of its wrong values, the paths a setting names (each kind of wrong,
    made by `make_places`), and weak production keys."""
    cases = []
    for name in Settings.model_fields:
        if name in PATH_FIELDS:
            continue
        variable = variable_name(name)
        for index, value in enumerate(wrong_values(name)):
            hidden = (value, "S3cr3t") if name in SECRET_FIELDS else ("S3cr3t",)
            cases.append(EnvCase(f"{variable}-{index}", {variable: value}, (variable,), hidden))
    for case_id, key in {
        "a-32": "a" * 32,
        "changeme-4": "changeme" * 4,
        "changeme-8": "changeme" * 8,
    }.items():
        production = {"NEWSLETTER_ENV": "production", "NEWSLETTER_SECRET_KEY": key}
        cases.append(
            EnvCase(f"production-key-{case_id}", production, ("NEWSLETTER_SECRET_KEY", "too weak"), (key,))
        )
    return cases + path_cases(base)


def path_cases(base: Path) -> list[EnvCase]:
    a_file, a_directory, missing, unwritable = (
        base / "a-file",
        base / "a-directory",
        base / "missing",
        _unwritable(base),
    )
    paths = {
        "store-directory-missing": ("NEWSLETTER_DATABASE_URL", f"sqlite:///{missing / 'x.db'}"),
        "store-is-a-directory": ("NEWSLETTER_DATABASE_URL", f"sqlite:///{a_directory}"),
        "store-under-a-file": ("NEWSLETTER_DATABASE_URL", f"sqlite:///{a_file / 'x.db'}"),
        "store-unwritable": ("NEWSLETTER_DATABASE_URL", f"sqlite:///{unwritable / 'newsletter-x.db'}"),
        "outbox-is-a-file": ("NEWSLETTER_OUTBOX_DIR", str(a_file)),
        "outbox-parent-missing": ("NEWSLETTER_OUTBOX_DIR", str(missing / "outbox")),
        "outbox-empty": ("NEWSLETTER_OUTBOX_DIR", ""),
        "secret-file-is-a-directory": ("NEWSLETTER_SECRET_FILE", str(a_directory)),
        "secret-file-directory-missing": ("NEWSLETTER_SECRET_FILE", str(missing / "secret")),
        "secret-file-unwritable": ("NEWSLETTER_SECRET_FILE", str(unwritable / "newsletter-secret")),
    }
    # An unwritable store is found out when SQLite tries to make it (as root): that message says "store".
    return [
        EnvCase(case_id, {variable: value}, ("store",) if case_id == "store-unwritable" else (variable,))
        for case_id, (variable, value) in paths.items()
    ]


def make_places(base: Path) -> None:
    (base / "a-file").write_text("not a directory\n")
    (base / "a-directory").mkdir()
    unwritable_directory(base)


def _unwritable(base: Path) -> Path:
    """A directory this process cannot write into: made read-only by `make_places`, or, for root
    (who writes into any ordinary directory), /sys."""
    return Path("/sys") if os.geteuid() == 0 else base / "read-only"


def unwritable_directory(base: Path) -> Path:
    """`_unwritable(base)`, made."""
    directory = _unwritable(base)
    if not directory.exists():
        directory.mkdir()
        directory.chmod(0o500)
    return directory


def run_process(directory: Path, env: dict[str, str], args: tuple[str, ...]) -> Outcome:
    result = subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return Outcome(result.returncode, result.stdout, result.stderr)


CASE_IDS = [case.id for case in setting_cases(Path("/nowhere"))]


@pytest.fixture(scope="module")
def nowhere(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A directory with the wrong kinds of paths, and the environment of a store that must never be
    made there: every refused command leaves it missing."""
    base = tmp_path_factory.mktemp("nowhere")
    make_places(base)
    home = base / "home"
    home.mkdir()
    return base, clean_env(home) | {"COLUMNS": "100", "NO_COLOR": "1"}


def assert_nothing_made(base: Path, directory: Path) -> None:
    assert not store_exists(base / "home"), "a refused command created the store"
    assert not (base / "missing").exists(), "a refused command created a missing directory"
    assert not list(directory.iterdir()), f"a refused command created {list(directory.iterdir())}"


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_each_wrong_setting_is_refused_in_one_line_and_creates_nothing(
    nowhere, tmp_path, monkeypatch, case_id
):
    """In-process, one setting at a time: exit 1, one line naming the variable, nothing created."""
    base, env = nowhere
    case = next(case for case in setting_cases(base) if case.id == case_id)
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("NEWSLETTER_"):
            monkeypatch.delenv(name)
    result = CliRunner().invoke(cli.app, list(case.args), env={**env, **case.env})
    crash = (
        "" if result.exception is None or isinstance(result.exception, SystemExit) else repr(result.exception)
    )
    outcome = Outcome(result.exit_code, result.stdout, result.stderr, crash)
    assert_refused(outcome, names=case.names, hidden=case.hidden)
    assert len(outcome.error_lines) == 1, outcome.stderr
    if case.id.startswith("NEWSLETTER_DATABASE_URL"):
        assert (
            "sqlite:///" in outcome.stderr and "postgresql+psycopg://" in outcome.stderr
        )  # the expected form
    assert_nothing_made(base, tmp_path)


# The mistakes named in the brief, each in its own real process (the rest, at once, in BATCHES).
IN_PROCESSES = (
    "NEWSLETTER_DATABASE_URL-0",
    "NEWSLETTER_DATABASE_URL-1",
    "NEWSLETTER_DATABASE_URL-2",
    "NEWSLETTER_SMTP_URL-0",
    "production-key-a-32",
    "production-key-changeme-4",
    "store-directory-missing",
    "outbox-is-a-file",
    "secret-file-is-a-directory",
)
BATCHES = 2


SMTP_PASSWORDS = {"slash-and-at": SECRET, "percent-encoded": "S3cr3t%2Fpa%40ss"}
SERVERS = {("serve",), ("scheduler",), ("worker",), ("preview",), ("emulator",)}  # they would keep running
SERVERS_WITH_A_STORE = sorted(SERVERS - {("preview",), ("emulator",)})  # preview runs on the samples alone


@pytest.fixture(scope="module")
def process_outcomes(nowhere, tmp_path_factory) -> dict[str, Outcome]:
    """Every case that runs the real command, WORKERS processes at a time, each in a directory of its
    own: the named mistakes one process each, every wrong setting at once in BATCHES processes, the
    servers on a missing store, SMTP sends to a server that is not there, the README's key."""
    base, env = nowhere
    cases = {case.id: case for case in setting_cases(base)}
    jobs = {case_id: ({**env, **cases[case_id].env}, cases[case_id].args) for case_id in IN_PROCESSES}
    fields = [name for name in Settings.model_fields if name not in PATH_FIELDS]
    for batch in range(BATCHES):
        wrong = {variable_name(name): wrong_values(name)[0] for name in fields[batch::BATCHES]}
        jobs[f"batch-{batch}"] = ({**env, **wrong}, ("init",))
    for words in SERVERS_WITH_A_STORE:
        jobs[" ".join(words)] = ({**env, "NEWSLETTER_SECRET_KEY": TEST_KEY}, words)
    directories = {job: tmp_path_factory.mktemp(job.replace(" ", "-")) for job in jobs}
    calls = {job: (lambda job=job: run_process(directories[job], *jobs[job])) for job in jobs}
    for case_id, password in SMTP_PASSWORDS.items():
        calls[f"smtp-{case_id}"] = lambda password=password: smtp_send(
            tmp_path_factory.mktemp("smtp"), password
        )
    calls["readme-key"] = lambda: production_init(tmp_path_factory.mktemp("production"))
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = {job: pool.submit(call) for job, call in calls.items()}
    for job in jobs:
        assert_nothing_made(base, directories[job])
    return {job: future.result() for job, future in futures.items()}


def smtp_send(directory: Path, password: str) -> Outcome:
    """A store with one reader, then an import --confirm through SMTP to a port nobody listens on."""
    (directory / "readers.csv").write_text("email\nreader@example.com\n")
    env = clean_env(directory) | {"NEWSLETTER_SECRET_KEY": TEST_KEY, "COLUMNS": "100"}
    made = run_process(directory, env, ("init",))
    assert made.code == 0, made.stderr
    smtp = {"NEWSLETTER_PROVIDER": "smtp", "NEWSLETTER_SMTP_URL": f"smtp://user:{password}@127.0.0.1:1"}
    return run_process(directory, env | smtp, ("subscribers", "import", "--confirm", "readers.csv"))


def production_init(directory: Path) -> Outcome:
    """`init` in production with the README's key, on a plain postgresql:// URL on PostgreSQL."""
    key = subprocess.run(
        [sys.executable, "-c", "import secrets; print(secrets.token_urlsafe(48))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    env = clean_env(directory) | {"NEWSLETTER_ENV": "production", "NEWSLETTER_SECRET_KEY": key}
    if ON_POSTGRES:  # postgresql:// means psycopg
        env["NEWSLETTER_DATABASE_URL"] = env["NEWSLETTER_DATABASE_URL"].replace(
            "postgresql+psycopg://", "postgresql://"
        )
    outcome = run_process(directory, env, ("init",))
    outcome.stdout = outcome.stdout.replace(key, "<the key>") + (
        "" if key not in outcome.stderr else "KEY SHOWN"
    )
    return outcome


@pytest.mark.parametrize("case_id", IN_PROCESSES)
def test_a_named_mistake_is_refused_by_the_real_command(nowhere, process_outcomes, case_id):
    case = next(case for case in setting_cases(nowhere[0]) if case.id == case_id)
    outcome = process_outcomes[case_id]
    assert_refused(outcome, names=case.names, hidden=case.hidden)
    assert len(outcome.error_lines) == 1, outcome.stderr


@pytest.mark.parametrize("batch", range(BATCHES))
def test_every_wrong_setting_at_once_is_listed_one_line_each_by_the_real_command(process_outcomes, batch):
    fields = [name for name in Settings.model_fields if name not in PATH_FIELDS][batch::BATCHES]
    outcome = process_outcomes[f"batch-{batch}"]
    text = outcome.stdout + outcome.stderr
    assert outcome.code == 1 and "Traceback" not in text, text
    assert outcome.error_lines[0] == f"error: invalid configuration ({len(fields)} settings):", text
    named = {line.strip().split(":", 1)[0] for line in outcome.error_lines[1:]}
    assert named == {variable_name(name) for name in fields}, text
    for name in SECRET_FIELDS:
        if name in fields:
            assert wrong_values(name)[0] not in text


@pytest.mark.parametrize("words", SERVERS_WITH_A_STORE, ids=" ".join)
def test_a_server_on_a_missing_store_refuses_to_start(process_outcomes, words):
    assert_refused(process_outcomes[" ".join(words)], names=("no store",))


@pytest.mark.parametrize("case_id", list(SMTP_PASSWORDS))
def test_an_smtp_password_never_appears_when_the_server_is_not_there(process_outcomes, case_id):
    hidden = (SMTP_PASSWORDS[case_id], "S3cr3t")
    outcome = process_outcomes[f"smtp-{case_id}"]
    assert_refused(outcome, names=("confirmation emails stopped", "127.0.0.1:1"), hidden=hidden)


def test_the_readme_key_and_plain_postgresql_urls_are_accepted_in_production(process_outcomes):
    outcome = process_outcomes["readme-key"]
    assert outcome.code == 0, outcome.stderr
    assert not outcome.problem and "Store ready" in outcome.stdout


# -- arguments, paths and --help: in-process ---------------------------------------------------------------


def command_paths() -> list[tuple[tuple[str, ...], Any]]:
    """Every command and sub-command of the app, as (words, click command)."""
    found = []

    def walk(words: tuple[str, ...], command: Any) -> None:
        found.append((words, command))
        for name, sub in getattr(command, "commands", {}).items():
            walk((*words, name), sub)

    walk((), get_command(cli.app))
    return found


COMMANDS = command_paths()
LEAVES = [(words, command) for words, command in COMMANDS if not hasattr(command, "commands")]


def required_arguments(command: Any) -> list[str]:
    """Stand-ins for the command's required arguments, so that the option under test is reached."""
    values = []
    for param in command.params:
        if param.param_type_name == "argument" and param.required:
            if param.name == "emails":
                values.append("reader@example.com")
            elif python_type(command, param.name) is int:  # an id
                values.append("1")
            else:
                values.append("x")
    return values


def python_type(command: Any, name: str) -> type | None:
    """The type of a command's parameter, from its function's annotations (Optional unwrapped)."""
    hint = typing.get_type_hints(command.callback).get(name)
    kinds = [kind for kind in typing.get_args(hint) or (hint,) if kind is not type(None)]
    return kinds[0] if len(kinds) == 1 else None


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store made by `newsletter init`, for the in-process cases that get as far as opening it."""
    directory = tmp_path_factory.mktemp("store")
    env = {k: v for k, v in clean_env(directory).items() if k.startswith("NEWSLETTER_")}
    return directory, env | {"NEWSLETTER_SECRET_KEY": TEST_KEY, "COLUMNS": "100"}


@pytest.fixture
def invoke(store, monkeypatch):
    """Run the app in-process in the store's directory; one engine per URL (no connection left over)."""
    directory, env = store
    for name in list(os.environ):
        if name.startswith("NEWSLETTER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(directory)
    engines = {}
    real = newsletter.db.make_engine
    monkeypatch.setattr(newsletter.db, "make_engine", lambda url: engines.setdefault(url, real(url)))
    runner = CliRunner()

    def go(*args: str, **extra_env: str) -> Outcome:
        result = runner.invoke(cli.app, list(args), env=env | extra_env, catch_exceptions=True)
        crash = ""
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            import traceback

            crash = "".join(traceback.format_exception(result.exception))
        return Outcome(result.exit_code, result.stdout, result.stderr, crash)

    if not (directory / ".initialised").exists():
        made = go("init", "--sample")
        assert made.code == 0, made.stderr + made.problem
        (directory / ".initialised").touch()
    yield go
    for engine in engines.values():
        engine.dispose()


@pytest.mark.parametrize("words", [words for words, _ in COMMANDS], ids=lambda w: " ".join(w) or "newsletter")
def test_every_command_answers_help(invoke, words):
    outcome = invoke(*words, "--help")
    assert not outcome.problem, outcome.problem
    assert outcome.code == 0 and "Usage" in outcome.stdout, outcome.stdout + outcome.stderr


@pytest.mark.parametrize("words", [words for words, _ in LEAVES], ids=" ".join)
def test_every_command_refuses_an_unknown_option(invoke, words):
    assert_refused(invoke(*words, "--no-such-option"), codes=(2,), names=("--no-such-option",))


NUMBER_OPTIONS = [
    (words, param.opts[0])
    for words, command in LEAVES
    for param in command.params
    if param.param_type_name == "option" and python_type(command, param.name) in (int, float)
]


@pytest.mark.parametrize(
    ("words", "option"), NUMBER_OPTIONS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else v
)
def test_every_number_option_refuses_a_word(invoke, words, option):
    command = dict(LEAVES)[words]
    assert_refused(
        invoke(*words, *required_arguments(command), option, "not-a-number"), codes=(2,), names=(option,)
    )


WEEK_COMMANDS = [words for words, command in LEAVES if any(param.name == "week" for param in command.params)]


@pytest.mark.parametrize("week", BAD_WEEKS, ids=lambda w: w[:12])
@pytest.mark.parametrize("words", WEEK_COMMANDS, ids=" ".join)
def test_every_week_option_refuses_a_week_that_does_not_exist(invoke, words, week):
    extra = ("--out", "rendered") if words == ("render",) else ()
    assert_refused(invoke(*words, *extra, "--week", week), names=("--week",))


def test_the_commands_and_their_options_are_found():
    assert ("issue", "send") in WEEK_COMMANDS and ("render",) in WEEK_COMMANDS and len(WEEK_COMMANDS) >= 9
    assert (("emulator",), "--port") in NUMBER_OPTIONS and (("serve",), "--port") in NUMBER_OPTIONS
    assert required_arguments(dict(LEAVES)[("subscribers", "add")]) == ["reader@example.com"]


@pytest.fixture
def places(tmp_path):
    """Paths of every wrong kind: missing, a directory, a file, a device, unwritable."""
    a_file = tmp_path / "a-file.csv"
    a_file.write_text("email\n")
    a_directory = tmp_path / "a-directory.json"
    a_directory.mkdir()
    return {
        "missing": tmp_path / "missing.csv",
        "directory": a_directory,
        "file": a_file,
        "device": Path("/dev/zero"),
        "under-a-file": a_file / "x.csv",
        "missing-parent": tmp_path / "missing" / "x",
        "unwritable": unwritable_directory(tmp_path) / "newsletter-x",
    }


INPUTS = {"import": ("import",), "subscribers import": ("subscribers", "import")}


@pytest.mark.parametrize("kind", ["missing", "directory", "device", "under-a-file"])
@pytest.mark.parametrize("command", list(INPUTS))
def test_an_input_file_that_cannot_be_read_is_named(invoke, places, command, kind):
    path = str(places[kind])
    outcome = invoke(*INPUTS[command], path)
    reason = {"missing": "no such file", "directory": "is a directory", "device": "is not a regular file"}
    assert_refused(outcome, names=(f"{path}: {reason.get(kind, 'cannot read')}",))
    assert "nothing" in outcome.stderr  # was imported / was stored


OUTPUTS = {"render": ("render", "--out"), "subscribers export": ("subscribers", "export", "--out")}
WRONG_OUTPUTS = [
    (command, kind)
    for command in OUTPUTS
    for kind in ("file", "directory", "under-a-file", "missing-parent", "unwritable")
    if (command, kind) not in {("render", "directory"), ("subscribers export", "file")}  # the right kinds
]


@pytest.mark.parametrize(("command", "kind"), WRONG_OUTPUTS)
def test_an_output_path_that_cannot_be_written_is_named(invoke, places, command, kind):
    words = (*OUTPUTS[command], str(places[kind]))
    assert_refused(invoke(*words), names=("--out",))
    if kind in ("missing-parent", "unwritable"):
        assert not places[kind].exists()
    if kind == "missing-parent":
        assert not places[kind].parent.exists(), "a missing parent directory was created"


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (("db", "copy", "--to", "garbage"), ("--to", "sqlite:///")),
        (("db", "copy", "--to", f"postgresql+psycopg://u:{SECRET}@h:99999/db"), ("--to",)),
        (("db", "copy", "--to", "sqlite:///missing-directory/x.db"), ("--to", "missing-directory")),
        (("subscribers", "add", "ada@example.com", "not-an-email"), ("argument 2", "not-an-email", "nobody")),
        (("comparisons", "pin", "[/]no-such-slug"), ("[/]no-such-slug",)),
        (("emulator", "nosuchprovider"), ("nosuchprovider",)),
        (("emulator", "--fail-rate", "2"), ("--fail-rate",)),
        (("emulator", "--latency-ms", "nan"), ("--latency-ms",)),
    ],
    ids=[
        "to-garbage",
        "to-bad-port",
        "to-missing-dir",
        "bad-address",
        "markup-in-slug",
        "provider",
        "rate",
        "nan",
    ],
)
def test_bad_arguments_are_named(invoke, args, names):
    assert_refused(invoke(*args), names=names, hidden=(SECRET,))


def test_a_bad_address_adds_nobody(invoke):
    assert_refused(invoke("subscribers", "add", "ada@example.com", "not-an-email"), names=("not-an-email",))
    assert "No subscribers." in invoke("subscribers", "stats").stdout


# -- looking creates nothing -------------------------------------------------------------------------------

CREATORS = {("init",), ("demo",), ("db", "upgrade")}
STORELESS = {("console", "hash-password")}  # makes a password hash: no store involved


@pytest.mark.parametrize(
    "words", [w for w, _ in LEAVES if w not in CREATORS | SERVERS | STORELESS], ids=" ".join
)
def test_a_command_on_a_missing_store_creates_nothing(tmp_path, monkeypatch, words):
    """Every command but those that make the store refuses a missing one and leaves it missing (on
    PostgreSQL: an empty database stays empty)."""
    directory = tmp_path / "here"
    directory.mkdir()
    monkeypatch.chdir(directory)
    for name in list(os.environ):
        if name.startswith("NEWSLETTER_"):
            monkeypatch.delenv(name)
    env = {k: v for k, v in clean_env(directory).items() if k.startswith("NEWSLETTER_")}
    stand_in = tmp_path / "input.json"
    stand_in.write_text("{}")  # an input file that exists: the store is what is missing
    stand_ins = [str(stand_in) if arg == "x" else arg for arg in required_arguments(dict(LEAVES)[words])]
    args = list(words) + stand_ins
    if words == ("db", "copy"):
        args += ["--to", f"sqlite:///{tmp_path / 'target.db'}"]
    if words == ("render",):
        args += ["--out", str(tmp_path / "rendered")]
    if words == ("webhooks", "add"):
        args = [*words, "https://hooks.example.com/newsletter", "--events", "all"]
    result = CliRunner().invoke(cli.app, args, env=env | {"NEWSLETTER_SECRET_KEY": TEST_KEY})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1, result.output
    assert "no store" in result.stderr, result.stderr
    assert not store_exists(directory), f"`newsletter {' '.join(words)}` created a store"
    assert not (tmp_path / "target.db").exists()


def test_hash_password_prints_a_hash_that_checks_and_refuses_an_empty_password():
    from newsletter.passwords import verify_password

    made = CliRunner().invoke(cli.app, ["console", "hash-password"], input="a fine passphrase\n")
    assert made.exit_code == 0, made.output
    (line,) = made.stdout.strip().splitlines()
    name, _, encoded = line.partition("=")
    assert name == "NEWSLETTER_EDITOR_PASSWORD_HASH" and verify_password("a fine passphrase", encoded)
    assert "a fine passphrase" not in made.stdout
    empty = CliRunner().invoke(cli.app, ["console", "hash-password"], input="\n")
    assert empty.exit_code == 1 and "password was refused" in empty.stderr
