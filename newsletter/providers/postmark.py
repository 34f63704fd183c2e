"""Postmark: `POST /email/batch` (at most 500 messages and 50 MB per request), and the outbound message
search (`GET /messages/outbound`) to learn, after a crash, which messages of a batch it accepted.

Postmark fills in no per-recipient values in a batch, so every message carries its own body; bodies
arrive already JSON-encoded from the issue's cached parts (see `encoding`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import NamedTuple

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

DEFAULT_BASE_URL = "https://api.postmarkapp.com"
MAX_BATCH = 500
MAX_REQUEST_BYTES = 50 * 1000 * 1000 * 95 // 100  # 5% under the stated 50 MB
PERMANENT_CODES = {300: "invalid email request", 406: "inactive recipient"}
FATAL_CODES = {
    10: "bad server token",
    400: "sender signature not found",
    401: "sender signature not confirmed",
    405: "not allowed to send (account suspended or out of credits)",
    412: "account pending approval",
    413: "recipient not allowed (pending approval)",
    1235: "message stream not found",
}
SEARCH_PAGE = 500
_string = JSON_STRING.quoted


class _Fixed(NamedTuple):
    """Encoded JSON between a message's own values; the same for every message of an issue."""

    start: bytes
    after_to: bytes
    after_metadata: bytes


class PostmarkProvider(HttpProvider):
    name = "postmark"
    max_batch = MAX_BATCH
    # Every message carries its ~100 KB body: 100 per request keeps requests near 10 MB, so a few in
    # flight stay small in memory while the connection pool keeps the provider busy.
    default_batch = 100

    def __init__(
        self,
        token: str,
        *,
        base_url: str | None = None,
        message_stream: str = "broadcast",
        timeout: float = 60.0,
        concurrency: int = 4,
    ):
        super().__init__(
            base_url or DEFAULT_BASE_URL,
            headers={"X-Postmark-Server-Token": token, "Content-Type": "application/json"},
            timeout=timeout,
            concurrency=concurrency,
        )
        self.message_stream = message_stream
        self._fixed_parts: dict[tuple[str, str, str], _Fixed] = {}
        self._strings: dict[str, bytes] = {}

    def encode(self, message: OutgoingMessage) -> list[bytes]:
        """One message as Postmark JSON, as pieces (see `json_array`): the fields every message of an
        issue shares are encoded once (`_fixed`), the two bodies are spliced in pre-encoded, and a
        reader costs the JSON of their address, unsubscribe link and ids."""
        fixed, known = self._fixed(message), self._known
        headers = message.list_headers()
        pieces = [fixed.start, _string(message.to), fixed.after_to]
        for index, (name, value) in enumerate(headers.items()):
            if index:
                pieces.append(b",")
            pieces += [b'{"Name":', known(name), b',"Value":', known(value), b"}"]
        pieces.append(b'],"Metadata":{')
        for index, (key, value) in enumerate(message.metadata.items()):
            if index:
                pieces.append(b",")
            pieces += [known(key), b":", known(value)]
        pieces += [fixed.after_metadata, *encoded_body_parts(message, "html", JSON_STRING), b'","TextBody":"']
        pieces += [*encoded_body_parts(message, "text", JSON_STRING), b'"}']
        return pieces

    def _known(self, text: str) -> bytes:
        """`text` as a JSON string, remembered: header names, metadata keys and the values an issue
        repeats in every message (its tag, its List-Id) are encoded once. The first thousand strings
        are kept; per-reader values after that are encoded each time."""
        encoded = self._strings.get(text)
        if encoded is None:
            encoded = _string(text)
            if len(self._strings) < 1000:
                self._strings[text] = encoded
        return encoded

    def _fixed(self, message: OutgoingMessage) -> _Fixed:
        """The JSON around a message's own values, per (From, Subject, Tag): one per issue variant."""
        key = (message.sender, message.subject, message.tag)
        fixed = self._fixed_parts.get(key)
        if fixed is None:
            if len(self._fixed_parts) > 64:
                self._fixed_parts.clear()
            fixed = self._fixed_parts[key] = _Fixed(
                start=b'{"From":' + _string(message.sender) + b',"To":',
                after_to=b',"Subject":'
                + _string(message.subject)
                + b',"Tag":'
                + _string(message.tag)
                + b',"Headers":[',
                after_metadata=b'},"MessageStream":'
                + _string(self.message_stream)
                + b',"TrackOpens":false,"TrackLinks":"None","HtmlBody":"',
            )
        return fixed

    async def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        results: list[SendResult] = []
        for chunk, sizes in self._chunks([(m, self.encode(m)) for m in messages]):
            try:
                results.extend(await self._send_chunk(chunk, sizes))
            except ProviderError as error:
                raise with_completed(error, dict(enumerate(results))) from None
        return results

    def _chunks(self, encoded: list[tuple[OutgoingMessage, list[bytes]]]):
        """Requests of at most 500 messages and MAX_REQUEST_BYTES each, with each message's size."""
        chunk: list[tuple[OutgoingMessage, list[bytes]]] = []
        sizes: list[int] = []
        size = 2
        for item in encoded:
            length = sum(map(len, item[1]))
            if length + 2 > MAX_REQUEST_BYTES:
                raise ProviderError(
                    f"postmark: one message is {length:,} bytes, over the request limit",
                    failure=Failure.FATAL,
                )
            if chunk and (len(chunk) == MAX_BATCH or size + length + 1 > MAX_REQUEST_BYTES):
                yield chunk, sizes
                chunk, sizes, size = [], [], 2
            chunk.append(item)
            sizes.append(length)
            size += length + 1
        if chunk:
            yield chunk, sizes

    async def _send_chunk(
        self, chunk: list[tuple[OutgoingMessage, list[bytes]]], sizes: list[int]
    ) -> list[SendResult]:
        headers, body = json_array([encoded for _, encoded in chunk], sizes)
        response = await self.request("POST", "/email/batch", content=body, headers=headers)
        if response.status_code >= 400:
            raise self._request_error(response)
        answers = response.json()
        if not isinstance(answers, list) or len(answers) != len(chunk):
            raise ProviderError(
                f"postmark: expected {len(chunk)} results, got {str(answers)[:200]}",
                failure=Failure.AMBIGUOUS,
            )
        return [self._result(message, answer) for (message, _), answer in zip(chunk, answers, strict=True)]

    @staticmethod
    def _result(message: OutgoingMessage, answer: dict) -> SendResult:
        code = answer.get("ErrorCode", -1)
        if code == 0:
            return SendResult(message.message_id, accepted=True, provider_message_id=answer.get("MessageID"))
        reason = f"postmark {code}: {answer.get('Message', '')}".strip()
        return SendResult(message.message_id, accepted=False, error=reason, permanent=code in PERMANENT_CODES)

    def _request_error(self, response) -> ProviderError:
        try:
            data = response.json()
            code, text = data.get("ErrorCode"), data.get("Message", "")
        except ValueError:
            code, text = None, response.text[:200]
        known = FATAL_CODES.get(code)
        reason = f"postmark {response.status_code}/{code}: {text}" + (f" ({known})" if known else "")
        return ProviderError(reason, failure=Failure.FATAL, status=response.status_code)

    def reason(self, response) -> str:
        try:
            data = response.json()
            return f"{data.get('ErrorCode')}: {data.get('Message')}"
        except ValueError:
            return super().reason(response)

    async def reconcile(self, messages: Sequence[OutgoingMessage]) -> dict[str, str | None]:
        """Ask the outbound message search, per batch (its key is in each message's metadata)."""
        by_batch: dict[tuple[str, str], list[OutgoingMessage]] = defaultdict(list)
        for message in messages:
            by_batch[(message.tag, message.metadata.get("batch", ""))].append(message)
        accepted: dict[str, str | None] = {}
        for (tag, batch), group in by_batch.items():
            found = await self._search(tag, batch)
            for message in group:
                key = message.metadata.get("delivery")
                if key in found:
                    accepted[message.message_id] = found[key]
        return accepted

    async def _search(self, tag: str, batch: str) -> dict[str, str]:
        """delivery id -> Postmark MessageID for every message of one batch that Postmark has."""
        found: dict[str, str] = {}
        offset = 0
        while True:
            params = {
                "count": SEARCH_PAGE,
                "offset": offset,
                "tag": tag,
                "messagestream": self.message_stream,
            }
            if batch:
                params["metadata_batch"] = batch
            response = await self.request("GET", "/messages/outbound", params=params)
            if response.status_code >= 400:
                raise self._request_error(response)
            page = response.json()
            for item in page.get("Messages", []):
                delivery = (item.get("Metadata") or {}).get("delivery")
                if delivery:
                    found[delivery] = item.get("MessageID")
            offset += SEARCH_PAGE
            if offset >= page.get("TotalCount", 0) or not page.get("Messages"):
                return found
