"""Weekly AI Tool Verdicts: the newsletter pipeline.

Comparisons are imported into a store, the week's best are picked, rendered once into a responsive
MJML email and sent to every active reader through a provider, with a ledger that never sends twice.
"""

__version__ = "0.1.0"
