"""The README is the configuration reference: it must name every setting and every command."""

from __future__ import annotations

from pathlib import Path

from typer.main import get_command

from newsletter.cli import app
from newsletter.config import Settings

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_documented_with_its_variable():
    for name, field in Settings.model_fields.items():
        variable = field.validation_alias or f"NEWSLETTER_{name.upper()}"
        assert f"`{variable}`" in README, f"{variable} is missing from the README"


def test_every_command_is_documented():
    root = get_command(app)
    for name, command in root.commands.items():
        if hasattr(command, "commands"):
            for sub in command.commands:
                assert f"newsletter {name} {sub}" in README, (
                    f"newsletter {name} {sub} is missing from the README"
                )
        else:
            assert f"newsletter {name}" in README, f"newsletter {name} is missing from the README"


def test_the_two_commands_are_there():
    assert "make demo" in README and "make test" in README
