"""The editors' console: `newsletter preview` (or `newsletter console`); see `app`."""

from newsletter.console.app import LOCAL_HOSTS, create_console

__all__ = ["LOCAL_HOSTS", "create_console"]
