"""Resend: `POST /emails/batch` (at most 100 messages) with an `Idempotency-Key` per request.

The key is the batch's key from the ledger, so after a crash the same rows go out as the same request
under the same key, and Resend answers with what it did the first time instead of sending again
(keys are kept for 24 hours). That is this adapter's reconciliation.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Sequence

from newsletter.encoding import JSON_STRING
from newsletter.mail import OutgoingMessage, encoded_body_parts
from newsletter.providers.base import (
    Failure,
    HttpProvider,
    ProviderError,
    SendResult,
    json_array,
    with_completed,
)

DEFAULT_BASE_URL = "https://api.resend.com"
MAX_BATCH = 100  # stated in Resend's documentation, not in its OpenAPI schema
_TAG_SAFE = re.compile(r"[^A-Za-z0-9_-]")


class ResendProvider(HttpProvider):
    name = "resend"
    max_batch = MAX_BATCH
    default_batch = MAX_BATCH

    def __init__(
        self, api_key: str, *, base_url: str | None = None, timeout: float = 60.0, concurrency: int = 4
    ):
        super().__init__(
            base_url or DEFAULT_BASE_URL,
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
            timeout=timeout,
            concurrency=concurrency,
        )

    def encode(self, message: OutgoingMessage) -> list[bytes]:
        """One message as Resend JSON, as pieces (see `json_array`); the bodies are spliced in
        pre-encoded."""
        head = {
            "from": message.sender,
            "to": [message.to],
            "subject": message.subject,
            "headers": message.list_headers(),
            "tags": [
                {"name": _TAG_SAFE.sub("_", name), "value": _TAG_SAFE.sub("_", value)}
                for name, value in {"issue": message.tag, **message.metadata}.items()
            ],
        }
        prefix = json.dumps(head, ensure_ascii=False)[:-1].encode()
        return [
            prefix,
            b',"html":"',
            *encoded_body_parts(message, "html", JSON_STRING),
            b'","text":"',
            *encoded_body_parts(message, "text", JSON_STRING),
            b'"}',
        ]

    async def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        results: list[SendResult] = []
        for start in range(0, len(messages), MAX_BATCH):
            chunk = list(messages[start : start + MAX_BATCH])
            try:
                results.extend(await self._send_chunk(chunk, self._key(chunk, start)))
            except ProviderError as error:
                raise with_completed(error, dict(enumerate(results))) from None
        return results

    @staticmethod
    def _key(chunk: list[OutgoingMessage], start: int) -> str:
        batch = chunk[0].metadata.get("batch") or chunk[0].idempotency_key
        return batch if start == 0 else f"{batch}-{start}"

    async def _send_chunk(self, chunk: list[OutgoingMessage], key: str) -> list[SendResult]:
        headers, body = json_array([self.encode(m) for m in chunk])
        response = await self.request(
            "POST", "/emails/batch", content=body, headers={**headers, "Idempotency-Key": key}
        )
        if response.status_code >= 400:
            raise self._request_error(response)
        data = response.json().get("data")
        if not isinstance(data, list) or len(data) != len(chunk):
            raise ProviderError(
                f"resend: expected {len(chunk)} ids, got {str(data)[:200]}", failure=Failure.AMBIGUOUS
            )
        return [
            SendResult(m.message_id, accepted=True, provider_message_id=item.get("id"))
            for m, item in zip(chunk, data, strict=True)
        ]

    def _request_error(self, response) -> ProviderError:
        name, text = self._error_fields(response)
        reason = f"resend {response.status_code} {name}: {text}"
        if response.status_code == 409 and name == "concurrent_idempotent_requests":
            return ProviderError(reason, failure=Failure.RETRYABLE, retry_after=1.0, status=409)
        return ProviderError(reason, failure=Failure.FATAL, status=response.status_code)

    @staticmethod
    def _error_fields(response) -> tuple[str, str]:
        try:
            data = response.json()
            return str(data.get("name", "")), str(data.get("message", ""))
        except ValueError:
            return "", response.text[:200]

    def reason(self, response) -> str:
        name, text = self._error_fields(response)
        return f"{name}: {text}"

    async def reconcile(self, messages: Sequence[OutgoingMessage]) -> dict[str, str | None]:
        """Send each interrupted batch again under its own key: Resend replays its first answer if the
        batch went through, and sends it now if it did not. Either way every message is accepted once."""
        by_batch: dict[str, list[OutgoingMessage]] = defaultdict(list)
        for message in messages:
            by_batch[message.metadata.get("batch") or message.idempotency_key].append(message)
        accepted: dict[str, str | None] = {}
        for group in by_batch.values():
            for result in await self.send_batch(group):
                if result.accepted:
                    accepted[result.message_id] = result.provider_message_id
        return accepted
