"""The long-running scheduler: `python scheduler.py` (the same as `newsletter scheduler`).

Thin by design: the triggers and the loop live in `newsletter.scheduling`, the jobs in `newsletter.jobs`.
"""

from __future__ import annotations

import sys

from newsletter import cli


def main() -> None:
    cli.main(["scheduler", *sys.argv[1:]])  # through main(): its one-line backstop, never a traceback


if __name__ == "__main__":
    main()
