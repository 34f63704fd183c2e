"""The one interface every provider adapter implements, and how HTTP failures are classified.

Adapters know nothing of the store: they take messages and return one result per message, in order,
or raise ProviderError for a request that failed as a whole. What the engine does with a failure
depends only on its class:

* RETRYABLE: the provider certainly did not act (the connection never opened, 429): send again.
* AMBIGUOUS: it may have acted (a timeout after the request went out, 5xx, a dropped connection):
  reconcile with the provider before sending again, where the provider allows it.
* FATAL: nothing will work until a person acts (bad key, unverified sender, suspended account):
  stop the whole send, keep the queue, say why.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import httpx

from newsletter.mail import OutgoingMessage


class Failure(StrEnum):
    RETRYABLE = "retryable"
    AMBIGUOUS = "ambiguous"
    FATAL = "fatal"


@dataclass(frozen=True, slots=True)
class SendResult:
    """What happened to one message. `permanent` marks a failure that must never be retried."""

    message_id: str
    accepted: bool
    provider_message_id: str | None = None
    error: str | None = None
    permanent: bool = False


class ProviderError(RuntimeError):
    """A whole request failed; `failure` says what may be done about it."""

    def __init__(
        self,
        message: str,
        *,
        failure: Failure = Failure.RETRYABLE,
        retry_after: float | None = None,
        status: int | None = None,
    ):
        super().__init__(message)
        self.failure = failure
        self.retry_after = retry_after
        self.status = status
        # Results of the messages a multi-request batch had already sent when this request failed,
        # by their index in the batch: they must be recorded, never sent again.
        self.completed: dict[int, SendResult] = {}

    @property
    def fatal(self) -> bool:
        return self.failure == Failure.FATAL


def log_send_failure(log: logging.Logger, what: str, exc: BaseException) -> None:
    """Log a send that failed. A ProviderError is an expected failure (the provider cannot be
    reached, refused the key, the disk is full): one error line with its reason. Anything else is a
    bug, logged with its traceback. `what` says what was being sent."""
    if isinstance(exc, ProviderError):
        log.error("%s failed: %s", what, exc)
    else:
        log.error("%s failed unexpectedly", what, exc_info=exc)


def refused_result(result: SendResult) -> ProviderError:
    """A message the provider refused, as the failure it is for a one-message send."""
    return ProviderError(f"refused: {result.error or 'no reason given'}", failure=Failure.RETRYABLE)


class ReconcileUnsupported(Exception):
    """The provider offers no way to learn whether an interrupted request went through."""


class Provider(Protocol):
    name: str
    max_batch: int  # the most messages one send_batch call may take
    default_batch: int  # what the engine hands it when NEWSLETTER_SEND_BATCH_SIZE is not set

    async def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        """Send every message; one result per message, in the same order."""
        ...

    async def reconcile(self, messages: Sequence[OutgoingMessage]) -> dict[str, str | None]:
        """For messages whose outcome was never recorded (a crash, an ambiguous failure): the
        Message-IDs the provider did accept, mapped to its own id. Whatever is missing is safe to send
        again. Raises ReconcileUnsupported where the provider offers no way to tell."""
        ...

    async def aclose(self) -> None: ...


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A Retry-After header (seconds or an HTTP date) in seconds; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.replace(".", "", 1).isdigit():
        return max(0.0, float(value))
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (now or time.time()))


class HttpProvider:
    """Shared plumbing for the HTTP API adapters: one connection pool, failures classified."""

    name = "http"
    max_batch = 100
    default_batch = 100

    def __init__(
        self,
        base_url: str,
        *,
        headers: dict[str, str],
        timeout: float,
        concurrency: int,
        auth: tuple[str, str] | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.client = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"User-Agent": "weekly-ai-tool-verdicts/1", "Accept": "application/json", **headers},
            auth=auth,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2),
        )

    async def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        """The response for any status below 400 (and for 4xx, which adapters read themselves);
        ProviderError for transport failures, 401/403, 429 and 5xx."""
        try:
            response = await self.client.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise ProviderError(
                f"{self.name}: cannot connect ({type(exc).__name__})", failure=Failure.RETRYABLE
            ) from exc
        except httpx.TimeoutException as exc:
            raise ProviderError(
                f"{self.name}: no answer in time ({type(exc).__name__})", failure=Failure.AMBIGUOUS
            ) from exc
        except httpx.TransportError as exc:
            raise ProviderError(
                f"{self.name}: connection lost ({type(exc).__name__})", failure=Failure.AMBIGUOUS
            ) from exc
        status = response.status_code
        if status == 429:
            raise ProviderError(
                f"{self.name}: rate limited (429) {self.reason(response)}",
                failure=Failure.RETRYABLE,
                retry_after=retry_after_seconds(response.headers.get("retry-after")),
                status=status,
            )
        if status >= 500:
            raise ProviderError(
                f"{self.name}: server error {status} {self.reason(response)}",
                failure=Failure.AMBIGUOUS,
                retry_after=retry_after_seconds(response.headers.get("retry-after")),
                status=status,
            )
        if status in (401, 403):
            raise ProviderError(
                f"{self.name}: refused credentials ({status}): {self.reason(response)}; "
                "check the API key in the environment",
                failure=Failure.FATAL,
                status=status,
            )
        return response

    def reason(self, response: httpx.Response) -> str:
        """The provider's own words for a failure, kept short."""
        return response.text[:300].replace("\n", " ")

    async def aclose(self) -> None:
        await self.client.aclose()


STREAM_CHUNK_BYTES = 1 << 18  # a request body goes out in writes of about this size (256 KiB)


def json_array(
    items: Sequence[Sequence[bytes]], sizes: Sequence[int] | None = None
) -> tuple[dict[str, str], AsyncIterator[bytes]]:
    """A JSON array of pre-encoded items, each given as its pieces (see `mail.encoded_body_parts`), as a
    request body with its exact Content-Length, written in joins of about STREAM_CHUNK_BYTES.

    A message's pieces are mostly the issue's literals, shared by every reader, so a batch in memory
    is a few lists of references, not a copy of every body; each byte is copied once, into its
    chunk. Chunks of a quarter megabyte keep the writes few (each costs the HTTP stack tens of
    microseconds) and no request is ever joined whole (which costs a 10 MB copy per request, more
    in the event loop's own buffers). `sizes`: each item's length in bytes, where the caller has
    them already (a pass over every piece of a batch costs about as much as the join)."""
    if sizes is None:
        sizes = [sum(map(len, item)) for item in items]
    length = 2 + sum(sizes) + max(len(items) - 1, 0)

    async def chunks() -> AsyncIterator[bytes]:
        out, size = [b"["], 1
        for index, item in enumerate(items):
            if index:
                out.append(b",")
            out += item
            size += sizes[index] + 1
            if size >= STREAM_CHUNK_BYTES:
                yield b"".join(out)
                out, size = [], 0
        out.append(b"]")
        yield b"".join(out)

    return {"Content-Length": str(length), "Content-Type": "application/json"}, chunks()


def with_completed(error: ProviderError, completed: dict[int, SendResult]) -> ProviderError:
    """`error`, carrying the results already known for other messages of the same batch."""
    error.completed = {**completed, **error.completed}
    return error
