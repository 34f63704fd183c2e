"""Files the command writes at an operator's path: never a device, a pipe or a link replaced by a
regular file behind exit 0, never a half-written or empty file, and standard output that cannot
take the output is exit 1 with a message. Real `newsletter` processes."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.commands import mount_tmpfs, newsletter
from tests.conftest import TEST_KEY
from tests.databases import clean_env


def run(directory: Path, *args: str, stdout=subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    env = clean_env(directory) | {"NEWSLETTER_SECRET_KEY": TEST_KEY, "COLUMNS": "200"}
    return newsletter(directory, env, *args, stdout=stdout)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("outputs")
    made = run(directory, "init", "--sample")
    assert made.returncode == 0, made.stderr
    added = run(directory, "subscribers", "add", "ada@example.com", "grace@example.com")
    assert added.returncode == 0, added.stderr
    return directory


def special_files(directory: Path) -> dict[str, Path]:
    """A place of every kind that is not a regular file."""
    directory.mkdir(parents=True, exist_ok=True)
    places = {}
    places["fifo"] = directory / "a-fifo"
    os.mkfifo(places["fifo"])
    places["device"] = directory / "fakenull"
    if os.geteuid() == 0:
        os.mknod(places["device"], 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    else:
        places["device"] = Path("/dev/null")
    (directory / "real.csv").write_text("keep me\n")
    places["link"] = directory / "a-link"
    places["link"].symlink_to(directory / "real.csv")
    places["dangling-link"] = directory / "dangling"
    places["dangling-link"].symlink_to(directory / "nowhere.csv")
    places["directory"] = directory / "a-directory"
    places["directory"].mkdir()
    places["long-name"] = directory / ("x" * 300)
    return places


def kind_of(path: Path) -> str:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return exc.strerror
    return stat.filemode(mode)[0]


def assert_one_line_refusal(result: subprocess.CompletedProcess[str], *names: str) -> None:
    text = (result.stdout or "") + result.stderr
    assert result.returncode == 1, f"exit {result.returncode}: {text}"
    assert "Traceback" not in text and "unexpected" not in text, text
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for name in names:
        assert name in result.stderr, f"{name!r} not in {result.stderr!r}"


@pytest.mark.parametrize("kind", ["fifo", "device", "link", "dangling-link", "directory", "long-name"])
def test_export_refuses_an_out_that_is_not_a_regular_file_and_leaves_it_as_it_was(store, tmp_path, kind):
    target = special_files(tmp_path / "places")[kind]
    before = kind_of(target)
    result = run(store, "subscribers", "export", "--out", str(target))
    assert_one_line_refusal(result, "--out", str(target)[:60])
    assert kind_of(target) == before
    assert (tmp_path / "places" / "real.csv").read_text() == "keep me\n", "the link's file was written"
    assert not [p for p in (tmp_path / "places").iterdir() if p.name.endswith(".tmp")]


def make_special(path: Path, kind: str) -> None:
    """A thing of `kind` at `path` that is not a regular file."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device" and os.geteuid() == 0:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    elif kind == "device":
        path.symlink_to("/dev/null")
    elif kind == "link":
        (path.parent.parent / "elsewhere.html").write_text("keep me\n")
        path.symlink_to(path.parent.parent / "elsewhere.html")
    else:
        path.mkdir()


@pytest.mark.parametrize("kind", ["fifo", "device", "link", "directory"])
def test_render_refuses_a_file_in_its_directory_that_is_not_a_regular_file(store, tmp_path, kind):
    out = tmp_path / "rendered"
    out.mkdir()
    make_special(out / "issue.html", kind)
    before = kind_of(out / "issue.html")
    result = run(store, "render", "--out", str(out))
    assert_one_line_refusal(result, "--out", "issue.html")
    assert kind_of(out / "issue.html") == before
    assert sorted(p.name for p in out.iterdir()) == ["issue.html"], "nothing else written, no temporary"
    if kind == "link":
        assert (tmp_path / "elsewhere.html").read_text() == "keep me\n"


def test_export_writes_a_regular_file_whole_and_keeps_its_mode(store, tmp_path):
    out = tmp_path / "readers.csv"
    out.write_text("old\n")
    out.chmod(0o600)
    result = run(store, "subscribers", "export", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_text().splitlines()[1].startswith("ada@example.com,active")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "args",
    [("subscribers", "export"), ("comparisons", "list", "--all"), ("stats", "--json"), ("--help",)],
    ids=" ".join,
)
def test_standard_output_that_cannot_be_written_is_exit_1_with_a_message(store, args):
    with open("/dev/full", "w") as full:
        result = run(store, *args, stdout=full)
    assert_one_line_refusal(result, "cannot write to standard output", "No space left on device")


def test_render_onto_a_full_disk_leaves_the_earlier_files_whole(store, tmp_path):
    disk = tmp_path / "disk"
    if not mount_tmpfs(disk, "2m"):
        pytest.skip("this machine does not let the test mount a tmpfs (needs root with CAP_SYS_ADMIN)")
    try:
        out = disk / "rendered"
        first = run(store, "render", "--out", str(out))
        assert first.returncode == 0, first.stderr
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        with open(disk / "filler", "wb") as filler:  # the rest of the disk
            try:
                while True:
                    filler.write(b"\0" * 65536)
                    filler.flush()
            except OSError:
                pass
        again = run(store, "render", "--out", str(out))
        assert_one_line_refusal(again, "--out", "No space left on device")
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before, "a file was cut short or emptied"
        assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
