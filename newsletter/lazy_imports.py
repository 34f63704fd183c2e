"""Modules our dependencies import eagerly but the newsletter never runs, kept out of memory.

Every process that renders or sends paid for them at start-up (bench/send.py, bench/startup.py):

* `requests` (with urllib3, charset_normalizer, idna, certifi: about 7 MB and 60 ms), which premailer
  imports at the top of its module only to fetch external stylesheets. We render with
  `allow_network=False`, so it never runs: `defer("requests")` gives premailer a module that is
  loaded on its first attribute access (`importlib.util.LazyLoader`), which never comes.
* `httpx._main`, httpx's command-line client (click, pygments, rich's syntax and progress: about
  3 MB), which `import httpx` tries to load and skips when it cannot (`skip_httpx_cli`).
"""

from __future__ import annotations

import importlib
import sys
import threading
import types


def defer(name: str) -> None:
    """Make `import name` cheap until the module is used: it gets a stand-in that imports the real
    module on its first attribute access. Nothing changes when the module is imported already or
    not installed. (Not `importlib.util.LazyLoader`: on Python 3.11 `import name` itself reads the
    module's `__spec__`, which loads it.)"""
    import importlib.util

    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None:
        return
    stand_in = _Deferred(name)
    stand_in.__spec__ = spec
    sys.modules[name] = stand_in


class _Deferred(types.ModuleType):
    """A module not imported yet: any attribute it lacks imports the real one and comes from it."""

    def __getattr__(self, attribute: str):
        with _loading:
            real = self.__dict__.get("_real")
            if real is None:
                if sys.modules.get(self.__name__) is self:
                    del sys.modules[self.__name__]
                real = self.__dict__["_real"] = importlib.import_module(self.__name__)
        return getattr(real, attribute)


_loading = threading.RLock()


def skip_httpx_cli() -> None:
    """`import httpx` without its command-line client: httpx imports `httpx._main` in a
    try/except ImportError and offers a stub `httpx.main` when it is missing; a None entry in
    sys.modules makes the import fail at once. No effect once httpx (or its CLI) is loaded."""
    if "httpx" not in sys.modules:
        sys.modules.setdefault("httpx._main", None)
