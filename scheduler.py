"""The long-running scheduler (APScheduler 3.x). Thin by design: jobs are built in newsletter.scheduling.

Until the scheduler lands (issue 5), this entry point explains itself and exits non-zero rather than
pretending to schedule anything.
"""

from __future__ import annotations

import sys


def main() -> int:
    print(
        "scheduler.py: the weekly scheduler is not built yet; compose and send with "
        "`newsletter issue compose` and `newsletter issue send`.",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
