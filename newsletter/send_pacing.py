"""How fast a send may go: a token bucket in messages per second, and the back-off between retries
of a batch the provider refused for now (exponential, full jitter, a Retry-After as its floor)."""

from __future__ import annotations

import asyncio
import random
import time

BACKOFF_BASE, BACKOFF_CAP = 0.5, 30.0


class RateLimiter:
    """A token bucket in messages per second; `acquire(n)` waits until n messages may go."""

    def __init__(self, per_second: float):
        self.rate = per_second
        self.tokens = per_second
        self.updated = time.monotonic()
        self.lock = asyncio.Lock()

    async def acquire(self, count: int) -> None:
        if not self.rate:
            return
        async with self.lock:
            while True:
                now = time.monotonic()
                self.tokens = min(max(self.rate, count), self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= count:
                    self.tokens -= count
                    return
                await asyncio.sleep((count - self.tokens) / self.rate)


def backoff(attempt: int, retry_after: float | None, rng: random.Random) -> float:
    """Exponential back-off with full jitter; a provider's Retry-After is a floor."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))
    delay = rng.uniform(0, ceiling)
    return max(delay, retry_after) if retry_after is not None else delay
