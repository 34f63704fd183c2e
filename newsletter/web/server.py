"""Running an ASGI app on uvicorn for `newsletter serve` and `newsletter preview`.

Two things `uvicorn.run` does not do for us: every log handler of the process redacts reader tokens
(`RedactTokens`), our own loggers included (without a handler of their own they went to Python's
last-resort handler, which no filter reaches); and the address announced is the one actually bound,
so `--port 0` (any free port) says which port it got.
"""

from __future__ import annotations

import copy
import logging.config
import socket
from collections.abc import Callable
from typing import Any

import uvicorn
import uvicorn.config

from newsletter.listening import bind

__all__ = ["bind", "configure_logging", "log_config", "run", "url_for"]

APP_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def log_config(level: str = "INFO", uvicorn_level: str = "INFO") -> dict[str, Any]:
    """uvicorn's logging set-up, with the token filter on every handler and a root handler (on
    stderr) for the app's own loggers."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["filters"] = {"redact_tokens": {"()": "newsletter.web.log_redaction.RedactTokens"}}
    config["formatters"]["app"] = {"format": APP_FORMAT}
    config["handlers"]["app"] = {
        "formatter": "app",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    for handler in config["handlers"].values():
        handler["filters"] = ["redact_tokens"]
    config["root"] = {"handlers": ["app"], "level": level}
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        config["loggers"][name]["level"] = uvicorn_level
    for quiet in ("httpx", "alembic"):  # a request line per send; the migration check at start
        config["loggers"][quiet] = {"level": "WARNING"}
    return config


def url_for(host: str, port: int) -> str:
    """The address to print for a server bound to `host`: a wildcard is reached at 127.0.0.1."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104
    return f"http://[{shown}]:{port}/" if ":" in shown else f"http://{shown}:{port}/"


class _AnnouncingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_ready: Callable[[int], None]):
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.should_exit or not self.servers or not self.servers[0].sockets:
            return
        self._on_ready(self.servers[0].sockets[0].getsockname()[1])


def configure_logging(level: str = "INFO", uvicorn_level: str = "INFO") -> None:
    """Set up the process's logging (see `log_config`); call it before building the app."""
    logging.config.dictConfig(log_config(level, uvicorn_level))


def run(
    app: Any,
    *,
    sock: socket.socket,
    on_ready: Callable[[int], None],
    uvicorn_level: str = "INFO",
    forwarded_allow_ips: str = "127.0.0.1",
) -> None:
    """Serve `app` on the bound socket `sock` (`bind`) until SIGINT/SIGTERM; `on_ready(port)` is
    called with the bound port once the server accepts connections. Logging must already be set up
    (`configure_logging`). An app that fails to start exits 1 (uvicorn's own code would be 3)."""
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
        server_header=False,
        log_config=None,
        log_level=uvicorn_level.lower(),
    )
    try:
        _AnnouncingServer(config, on_ready).run(sockets=[sock])
    except SystemExit as exc:
        raise SystemExit(1 if exc.code else 0) from None
    finally:
        sock.close()
