"""What a sending process keeps out of memory (newsletter/lazy_imports.py), in a fresh interpreter:
the modules our dependencies import eagerly but the newsletter never runs stay unloaded, and stay
usable the moment something does ask for them."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.databases import clean_env

MJML = "<mjml><mj-body><mj-section><mj-column><mj-text>Hi</mj-text></mj-column></mj-section></mj-body></mjml>"
NEVER_RUN = ("requests.models", "urllib3", "charset_normalizer", "httpx._main", "pygments", "click")


def python(tmp_path, code: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=clean_env(tmp_path), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_rendering_and_an_http_provider_load_neither_requests_nor_httpx_s_command_line(tmp_path):
    loaded = python(
        tmp_path,
        f"""
import json, sys
from newsletter.render import compile_mjml
from newsletter.providers.postmark import PostmarkProvider
html = compile_mjml({MJML!r})
provider = PostmarkProvider("token", base_url="http://127.0.0.1:9")
print(json.dumps({{"html": "Hi" in html, "loaded": [m for m in {NEVER_RUN!r} if sys.modules.get(m)]}}))
""",
    )
    assert loaded == {"html": True, "loaded": []}


def test_a_deferred_module_is_the_real_one_once_used(tmp_path):
    found = python(
        tmp_path,
        f"""
import json, sys
from newsletter.render import compile_mjml
compile_mjml({MJML!r})
import premailer.premailer
stand_in = premailer.premailer.requests
before = "requests.models" in sys.modules
session = stand_in.Session  # the first attribute asked for imports requests
import requests, requests.adapters
print(json.dumps({{
    "before": before,
    "after": "requests.models" in sys.modules,
    "same": session is requests.Session and requests.adapters.HTTPAdapter.__module__ == "requests.adapters",
}}))
""",
    )
    assert found == {"before": False, "after": True, "same": True}


def test_the_models_and_the_send_path_load_no_dialect_before_a_store_is_opened(tmp_path):
    """The partial indexes' dialect options would load PostgreSQL's modules into every SQLite
    process (and SQLite's into every PostgreSQL one); they are declared where a schema is made."""
    loaded = python(
        tmp_path,
        """
import json, sys
import newsletter.models, newsletter.db, newsletter.delivery, newsletter.schema
import newsletter.tracking.issue_links
print(json.dumps(sorted({m.split(".")[2] for m in sys.modules if m.startswith("sqlalchemy.dialects.")})))
""",
    )
    assert loaded == []
