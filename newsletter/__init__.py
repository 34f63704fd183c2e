"""Weekly AI Tool Verdicts: the newsletter pipeline.

Comparisons are imported into a store, the week's best are picked, rendered once into a responsive
MJML email and sent to every active reader through a provider, with a ledger that never sends twice.
"""

from newsletter.lazy_imports import skip_httpx_cli

__version__ = "0.1.0"

skip_httpx_cli()  # before anything imports httpx: its command-line client is never used here
