"""A clumsy operator's mistakes against the real `newsletter` command: every one is refused with a
short message (exit 1, or 2 for Typer's usage errors), never a traceback, never "unexpected", never
exit 0, never a secret.

Every case is a real `newsletter` process (`python -m newsletter`), WORKERS at a time from a thread
pool, all started by one module fixture; the tests then judge the outcomes one case each. The lists
come from the code, so new settings and commands are covered without editing this file: every field
of Settings gets a wrong value (by its type, or from WRONG), every command and sub-command of the
Typer app answers --help, gets an unknown option and a wrong-typed value for each number option,
every command with --week gets weeks that do not exist, every input and output path gets each wrong
kind of place (missing, a directory, a device, a pipe, a link, a name over 255 bytes), and the
servers get ports they cannot have. Only "looking creates nothing" runs in-process (CliRunner), one
missing store per command.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import typing
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

import newsletter.cli as cli
from newsletter.config import SECRET_FIELDS, Settings, variable_name
from tests.conftest import TEST_KEY
from tests.databases import ON_POSTGRES, clean_env, store_exists

MAX_ERROR_LINES = 6  # Typer's usage box is five lines; our own refusals are one
WORKERS = 4
SECRET = "S3cr3t/pa@ss:word"  # a password with the characters that broke URL parsing
BAD_WEEKS = ("2026-W99", "2027-W53", "9999-W52", "0001-W01", "W48", "2026-W4", "x" * 200)
LONG = "x" * 300  # a file name over the 255 bytes a name may have

# Wrong values for settings whose type alone does not make one up (or where a realistic one is better).
WRONG: dict[str, list[str]] = {
    "env": ["staging"],
    "database_url": ["garbage", "postgresql+psycopg//x", "mysql://x/y", "sqlite://"],
    "smtp_url": [f"smtp://user:{SECRET}", "http://mail.example.com", "smtp://mail.example.com:99999"],
    "site_url": [
        "http://verdicts.example.com",
        "https://a b",
        "https://x/%00",
        "https://verdicts.example.com/?utm=1",
        "https://user:pw@verdicts.example.com",
    ],
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
    "name": ["bytes \udcff that are not UTF-8"],
}
BY_TYPE = {bool: "maybe", int: "many", float: "fast", str: "two\nlines", Path: ""}
WEAK_PRODUCTION_KEYS = {
    "a-32": "a" * 32,
    "changeme-4": "changeme" * 4,
    "changeme-8": "changeme" * 8,
    "sentence": "my-super-secret-newsletter-signing-key-do-not-share",
    "interleaved": "a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6q7r8s9t0",
    "keyboard": "qwertyuiopasdfghjklzxcvbnm1234567890",
    "cases-woven": "aAbBcCdDeEfFgGhHiIjJkKlLmMnNoOpPqQrRsStT",
}


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

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def assert_refused(outcome: Outcome, *, codes=(1,), names=(), hidden=(), one_line=False) -> None:
    """Refused, briefly, without a traceback or an unforeseen error, naming what it should and
    showing no secret."""
    text = outcome.stdout + outcome.stderr
    assert "Traceback" not in text, text
    assert "unexpected" not in text.lower(), text
    assert outcome.code in codes, f"exit {outcome.code}, expected {codes}:\n{text}"
    assert 1 <= len(outcome.error_lines) <= MAX_ERROR_LINES, f"{len(outcome.error_lines)} lines:\n{text}"
    if one_line:
        assert len(outcome.error_lines) == 1, text
    for name in names:
        assert name in outcome.stderr, f"{name!r} not named in:\n{outcome.stderr}"
    for secret in hidden:
        assert secret not in text, f"a secret is shown:\n{text}"


# -- the places: every wrong kind of path ---------------------------------------------------------------


def _unwritable(base: Path) -> Path:
    """A directory this process cannot write into: made read-only, or, for root (who writes into
    any ordinary directory), /sys."""
    return Path("/sys") if os.geteuid() == 0 else base / "read-only"


def unwritable_directory(base: Path) -> Path:
    directory = _unwritable(base)
    if not directory.exists():
        directory.mkdir()
        directory.chmod(0o500)
    return directory


def places(base: Path) -> dict[str, Path]:
    """Paths of every wrong kind under `base` (made by `make_places`)."""
    return {
        "missing": base / "missing.csv",
        "directory": base / "a-directory.json",
        "file": base / "a-file.csv",
        "device": base / "a-device",
        "fifo": base / "a-fifo",
        "link": base / "a-link",
        "under-a-file": base / "a-file.csv" / "x.csv",
        "missing-parent": base / "missing" / "x",
        "unwritable": _unwritable(base) / "newsletter-x",
        "long-name": base / LONG,
    }


def make_places(base: Path) -> None:
    where = places(base)
    where["file"].write_text("email\n")
    where["directory"].mkdir()
    if os.geteuid() == 0:
        os.mknod(where["device"], 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a /dev/null of its own
    else:
        where["device"].symlink_to("/dev/null")
    os.mkfifo(where["fifo"])
    (base / "target.csv").write_text("email\n")
    where["link"].symlink_to(base / "target.csv")
    unwritable_directory(base)


# -- the cases --------------------------------------------------------------------------------------------


@dataclass
class Case:
    """One run of the real command. `store`: in the directory of a store made by `init --sample`
    (else in a directory of its own, whose store must never be made). `expect` "help": exit 0 with
    a usage text; "refused": refused by `assert_refused` with these codes and names."""

    id: str
    args: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    codes: tuple[int, ...] = (1,)
    names: tuple[str, ...] = ()
    hidden: tuple[str, ...] = ("S3cr3t",)
    store: bool = True
    one_line: bool = False
    expect: str = "refused"
    stdout_to_full: bool = False
    env_file: bytes | None = None  # a .env in the case's directory
    after: Callable[[Path], None] | None = None  # a check on the places once it ran


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
WEEK_COMMANDS = [words for words, command in LEAVES if any(param.name == "week" for param in command.params)]
SERVERS = {("serve",), ("scheduler",), ("worker",), ("preview",), ("emulator",)}  # they would keep running
PORT_SERVERS = [("serve",), ("preview",), ("emulator",)]


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


NUMBER_OPTIONS = [
    (words, param.opts[0])
    for words, command in LEAVES
    for param in command.params
    if param.param_type_name == "option" and python_type(command, param.name) in (int, float)
]
PATH_FIELDS = ("outbox_dir", "secret_file")  # each kind of wrong path: setting_path_cases
INPUTS = {"import": ("import",), "subscribers import": ("subscribers", "import")}
INPUT_REASONS = {
    "missing": "no such file",
    "directory": "is a directory",
    "device": "is not a regular file",
    "fifo": "is not a regular file",
    "under-a-file": "cannot read",
    "long-name": "File name too long",
}
OUTPUTS = {"render": ("render", "--out"), "subscribers export": ("subscribers", "export", "--out")}
OUTPUT_KINDS = (
    "file",
    "directory",
    "under-a-file",
    "missing-parent",
    "unwritable",
    "long-name",
    "device",
    "fifo",
    "link",
)
RIGHT_OUTPUTS = {("render", "directory"), ("subscribers export", "file")}


def help_cases() -> list[Case]:
    return [
        Case(f"help {' '.join(words) or 'newsletter'}", (*words, "--help"), expect="help")
        for words, _ in COMMANDS
    ]


def argument_cases(base: Path, port_in_use: int) -> list[Case]:
    where = places(base)
    cases = [
        Case(
            f"unknown option: {' '.join(words)}",
            (*words, "--no-such-option"),
            codes=(2,),
            names=("--no-such-option",),
        )
        for words, _ in LEAVES
    ]
    for words, option in NUMBER_OPTIONS:
        arguments = required_arguments(dict(LEAVES)[words])
        cases.append(
            Case(
                f"word for a number: {' '.join(words)} {option}",
                (*words, *arguments, option, "not-a-number"),
                codes=(2,),
                names=(option,),
            )
        )
    for words in WEEK_COMMANDS:  # every bad week on one command, one on each other (one parser)
        extra = ("--out", str(base / "rendered")) if words == ("render",) else ()
        for week in BAD_WEEKS if words == ("issue", "show") else BAD_WEEKS[:1]:
            cases.append(
                Case(
                    f"week {week[:12]}: {' '.join(words)}",
                    (*words, *extra, "--week", week),
                    names=("--week",),
                )
            )
    for command, words in INPUTS.items():
        for kind, reason in INPUT_REASONS.items():
            path = str(where[kind])
            cases.append(
                Case(f"input {kind}: {command}", (*words, path), names=(path[:80], reason, "nothing"))
            )
    for command, words in OUTPUTS.items():
        for kind in OUTPUT_KINDS:
            if (command, kind) not in RIGHT_OUTPUTS:
                cases.append(
                    Case(
                        f"output {kind}: {command}",
                        (*words, str(where[kind])),
                        names=("--out",),
                        after=_output_untouched(kind),
                    )
                )
    for words in PORT_SERVERS:
        name = " ".join(words)
        for port in ("-1", "65536", "many"):
            cases.append(
                Case(f"port {port}: {name}", (*words, "--port", port), codes=(2,), names=("--port",))
            )
        cases.append(
            Case(
                f"port in use: {name}",
                (*words, "--port", str(port_in_use)),
                names=("Address already in use",),
                one_line=True,
            )
        )
        cases.append(
            Case(
                f"unknown host: {name}",
                (*words, "--host", "no such host", "--port", "0"),
                names=("no such host",),
                one_line=True,
            )
        )
    for words in (
        ("subscribers", "export"),
        ("comparisons", "list", "--all"),
        ("stats", "--json"),
        ("--help",),
    ):
        cases.append(
            Case(
                f"stdout full: {' '.join(words)}",
                words,
                names=("cannot write to standard output",),
                stdout_to_full=True,
                one_line=True,
            )
        )
    named = {
        "to-garbage": (("db", "copy", "--to", "garbage"), ("--to", "sqlite:///")),
        "to-bad-port": (("db", "copy", "--to", f"postgresql+psycopg://u:{SECRET}@h:99999/db"), ("--to",)),
        "to-missing-dir": (
            ("db", "copy", "--to", "sqlite:///missing-directory/x.db"),
            ("--to", "missing-directory"),
        ),
        "to-long-name": (("db", "copy", "--to", f"sqlite:///{base / LONG}"), ("--to", "File name too long")),
        "bad-address": (
            ("subscribers", "add", "ada@example.com", "not-an-email"),
            ("argument 2", "not-an-email", "nobody"),
        ),
        "markup-in-slug": (("comparisons", "pin", "[/]no-such-slug"), ("[/]no-such-slug",)),
        "emulator-provider": (("emulator", "nosuchprovider"), ("nosuchprovider",)),
        "emulator-rate": (("emulator", "--fail-rate", "2"), ("--fail-rate",)),
        "emulator-nan": (("emulator", "--latency-ms", "nan"), ("--latency-ms",)),
    }
    cases += [
        Case(f"argument {case_id}", args, names=names, hidden=(SECRET,))
        for case_id, (args, names) in named.items()
    ]
    return cases


def _output_untouched(kind: str) -> Callable[[Path], None] | None:
    """A place that is not a regular file is still what it was after the refusal."""
    if kind not in ("device", "fifo", "link"):
        return None

    def check(base: Path) -> None:
        mode = places(base)[kind].lstat().st_mode
        expected = {
            "device": stat.S_ISCHR if os.geteuid() == 0 else stat.S_ISLNK,
            "fifo": stat.S_ISFIFO,
            "link": stat.S_ISLNK,
        }[kind]
        assert expected(mode), f"the {kind} was replaced"

    return check


def setting_cases(base: Path) -> list[Case]:
    """Every setting with each of its wrong values, the paths a setting names (each kind of wrong),
    weak production keys and a .env that cannot be read: each refused in one line naming it, with
    nothing created."""
    cases = []
    for name in Settings.model_fields:
        if name in PATH_FIELDS:
            continue
        variable = variable_name(name)
        for index, value in enumerate(wrong_values(name)):
            hidden = (value, "S3cr3t") if name in SECRET_FIELDS else ("S3cr3t",)
            cases.append(
                Case(
                    f"setting {variable}-{index}",
                    ("init",),
                    {variable: value},
                    names=(variable,),
                    hidden=hidden,
                    store=False,
                    one_line=True,
                )
            )
    for case_id, key in WEAK_PRODUCTION_KEYS.items():
        production = {"NEWSLETTER_ENV": "production", "NEWSLETTER_SECRET_KEY": key}
        cases.append(
            Case(
                f"production key {case_id}",
                ("init",),
                production,
                names=("NEWSLETTER_SECRET_KEY", "too weak"),
                hidden=(key,),
                store=False,
                one_line=True,
            )
        )
    cases += [
        Case(
            "env file not utf-8",
            ("init",),
            names=(".env", "line 2", "not UTF-8"),
            store=False,
            one_line=True,
            env_file=b"NEWSLETTER_NAME=ok\nNEWSLETTER_POSTAL_ADDRESS=Stra\xdfe 1\n",
        ),
        Case(
            "env file huge",
            ("init",),
            names=(".env", "larger than"),
            store=False,
            one_line=True,
            env_file=b"#" * (1024 * 1024 + 1),
        ),
    ]
    return cases + setting_path_cases(base)


def setting_path_cases(base: Path) -> list[Case]:
    where = places(base)
    paths = {
        "store-directory-missing": ("NEWSLETTER_DATABASE_URL", f"sqlite:///{where['missing-parent']}.db"),
        "store-is-a-directory": ("NEWSLETTER_DATABASE_URL", f"sqlite:///{where['directory']}"),
        "store-under-a-file": ("NEWSLETTER_DATABASE_URL", f"sqlite:///{where['under-a-file']}"),
        "store-unwritable": ("NEWSLETTER_DATABASE_URL", f"sqlite:///{where['unwritable']}.db"),
        "store-is-a-device": ("NEWSLETTER_DATABASE_URL", f"sqlite:///{where['device']}"),
        "store-name-too-long": ("NEWSLETTER_DATABASE_URL", f"sqlite:///{where['long-name']}.db"),
        "outbox-is-a-file": ("NEWSLETTER_OUTBOX_DIR", str(where["file"])),
        "outbox-parent-missing": ("NEWSLETTER_OUTBOX_DIR", str(where["missing-parent"])),
        "outbox-empty": ("NEWSLETTER_OUTBOX_DIR", ""),
        "outbox-name-too-long": ("NEWSLETTER_OUTBOX_DIR", str(where["long-name"])),
        "secret-file-is-a-directory": ("NEWSLETTER_SECRET_FILE", str(where["directory"])),
        "secret-file-directory-missing": ("NEWSLETTER_SECRET_FILE", str(where["missing-parent"])),
        "secret-file-unwritable": ("NEWSLETTER_SECRET_FILE", str(where["unwritable"])),
        "secret-file-is-dev-null": ("NEWSLETTER_SECRET_FILE", "/dev/null"),
        "secret-file-is-a-fifo": ("NEWSLETTER_SECRET_FILE", str(where["fifo"])),
        "secret-file-name-too-long": ("NEWSLETTER_SECRET_FILE", str(where["long-name"])),
    }
    # An unwritable store is found out when SQLite tries to make it (as root): that message says "store".
    return [
        Case(
            f"setting path {case_id}",
            ("init",),
            {variable: value},
            names=("store",) if case_id == "store-unwritable" else (variable,),
            store=False,
            one_line=True,
        )
        for case_id, (variable, value) in paths.items()
    ]


PLACEHOLDER = Path("/nowhere")
SETTING_IDS = [case.id for case in setting_cases(PLACEHOLDER)]
ARGUMENT_IDS = [case.id for case in argument_cases(PLACEHOLDER, 1)]
HELP_IDS = [case.id for case in help_cases()]


def run_case(case: Case, directory: Path, env: dict[str, str]) -> Outcome:
    if case.env_file is not None:
        (directory / ".env").write_bytes(case.env_file)
    full = open("/dev/full", "w") if case.stdout_to_full else None  # noqa: SIM115
    try:
        result = subprocess.run(
            [sys.executable, "-m", "newsletter", *case.args],
            cwd=directory,
            env={**env, **case.env},
            stdout=full or subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        if full is not None:
            full.close()
    if case.env_file is not None:
        (directory / ".env").unlink()
    return Outcome(result.returncode, result.stdout or "", result.stderr)


@pytest.fixture(scope="module")
def battery(tmp_path_factory) -> tuple[dict[str, Outcome], dict[str, Case], Path, dict[str, Path]]:
    """Every case, WORKERS real processes at a time: the store's cases in the directory of one store,
    each setting's case in a directory of its own, whose store (`home`) must never be made."""
    base = tmp_path_factory.mktemp("places")
    make_places(base)
    store_dir = tmp_path_factory.mktemp("store")
    store_env = clean_env(store_dir) | {"NEWSLETTER_SECRET_KEY": TEST_KEY, "COLUMNS": "100", "NO_COLOR": "1"}
    made = run_case(Case("init", ("init", "--sample")), store_dir, store_env)
    assert made.code == 0, made.stderr
    home = tmp_path_factory.mktemp("home")
    nowhere_env = clean_env(home) | {"COLUMNS": "100", "NO_COLOR": "1"}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        cases = help_cases() + argument_cases(base, taken.getsockname()[1]) + setting_cases(base)
        directories = {
            case.id: store_dir if case.store else tmp_path_factory.mktemp("case") for case in cases
        }
        with ThreadPoolExecutor(WORKERS) as pool:
            futures = {
                case.id: pool.submit(
                    run_case, case, directories[case.id], store_env if case.store else nowhere_env
                )
                for case in cases
            }
            outcomes = {case_id: future.result() for case_id, future in futures.items()}
    assert not store_exists(home), "a refused command created the store"
    return outcomes, {case.id: case for case in cases}, base, directories


def judge(battery, case_id: str) -> None:
    outcomes, cases, base, directories = battery
    case, outcome = cases[case_id], outcomes[case_id]
    if case.expect == "help":
        text = outcome.stdout + outcome.stderr
        assert outcome.code == 0 and "Usage" in outcome.stdout, text
        assert "Traceback" not in text and "unexpected" not in text.lower(), text
        return
    assert_refused(outcome, codes=case.codes, names=case.names, hidden=case.hidden, one_line=case.one_line)
    if case.after is not None:
        case.after(base)
    if not case.store:
        made = [p.name for p in directories[case_id].iterdir()]
        assert not made, f"a refused command created {made}"
        assert not (base / "missing").exists(), "a refused command created a missing directory"


@pytest.mark.parametrize("case_id", HELP_IDS)
def test_every_command_answers_help(battery, case_id):
    judge(battery, case_id)


@pytest.mark.parametrize("case_id", ARGUMENT_IDS)
def test_bad_arguments_options_and_paths_are_refused_by_the_real_command(battery, case_id):
    judge(battery, case_id)


@pytest.mark.parametrize("case_id", SETTING_IDS)
def test_each_wrong_setting_is_refused_in_one_line_and_creates_nothing(battery, case_id):
    judge(battery, case_id)


def test_the_commands_and_their_options_are_found():
    assert ("issue", "send") in WEEK_COMMANDS and ("render",) in WEEK_COMMANDS and len(WEEK_COMMANDS) >= 9
    assert (("emulator",), "--port") in NUMBER_OPTIONS and (("serve",), "--port") in NUMBER_OPTIONS
    assert required_arguments(dict(LEAVES)[("subscribers", "add")]) == ["reader@example.com"]
    assert len(HELP_IDS) == len(COMMANDS) >= 35
    assert any(case_id.startswith("setting NEWSLETTER_SITE_URL") for case_id in SETTING_IDS)


def test_a_bad_address_adds_nobody(battery):
    outcomes, _, _, _ = battery
    assert "not-an-email" in outcomes["argument bad-address"].stderr
    store_dir = battery[3]["argument bad-address"]
    stats = subprocess.run(
        [sys.executable, "-m", "newsletter", "subscribers", "stats"],
        cwd=store_dir,
        env=clean_env(store_dir) | {"NEWSLETTER_SECRET_KEY": TEST_KEY},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "ada@example.com" not in stats.stdout and "active" not in stats.stdout, stats.stdout


# -- every wrong setting at once, servers on a missing store, secrets --------------------------------------

BATCHES = 2
SMTP_PASSWORDS = {"slash-and-at": SECRET, "percent-encoded": "S3cr3t%2Fpa%40ss"}
SERVERS_WITH_A_STORE = sorted(SERVERS - {("preview",), ("emulator",)})  # preview runs on the samples alone


def run_process(directory: Path, env: dict[str, str], args: tuple[str, ...]) -> Outcome:
    return run_case(Case("", args), directory, env)


@pytest.fixture(scope="module")
def process_outcomes(tmp_path_factory) -> dict[str, Outcome]:
    """Every wrong setting at once in BATCHES processes, the servers on a missing store, SMTP sends
    to a server that is not there, the README's key."""
    home = tmp_path_factory.mktemp("home")
    env = clean_env(home) | {"COLUMNS": "100", "NO_COLOR": "1"}
    jobs = {}
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
        outcomes = {job: future.result() for job, future in futures.items()}
    assert not store_exists(home), "a refused command created the store"
    for job in jobs:
        assert not list(directories[job].iterdir()), f"{job} created {list(directories[job].iterdir())}"
    return outcomes


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
    assert "Store ready" in outcome.stdout


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
