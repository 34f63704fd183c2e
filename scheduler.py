"""The long-running scheduler: `python scheduler.py` (the same as `newsletter scheduler`).

Thin by design: the jobs, their triggers and the loop live in `newsletter.scheduling`.
"""

from __future__ import annotations

from newsletter.cli import app


def main() -> None:
    app(["scheduler"])


if __name__ == "__main__":
    main()
