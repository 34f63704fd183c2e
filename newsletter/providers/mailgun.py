"""Mailgun `POST /v3/{domain}/messages` (multipart/form-data): batch sending with `recipient-variables`
(at most 1000 recipients), `%recipient.KEY%` placeholders in the body and headers, and custom data
(`v:`) that comes back in events as user-variables.

After a crash, the Events API is asked which recipients of the interrupted batch were `accepted`
(filtered by the issue's tag and a time window around the batch, matched on the batch key).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from newsletter.mail import OutgoingMessage
from newsletter.providers.base import Failure, HttpProvider, ProviderError, SendResult, with_completed
from newsletter.providers.substitution import Group, group_by_body

DEFAULT_BASE_URL = "https://api.mailgun.net"
MAX_RECIPIENTS = 1000
EVENTS_PAGE = 300
RECONCILE_WINDOW = 6 * 3600  # how far back an interrupted batch is looked for


def placeholder(name: str) -> str:
    return f"%recipient.{name}%"


class MailgunProvider(HttpProvider):
    name = "mailgun"
    max_batch = MAX_RECIPIENTS
    default_batch = MAX_RECIPIENTS  # the body travels once per request: the bigger the better

    def __init__(
        self,
        api_key: str,
        domain: str,
        *,
        base_url: str | None = None,
        timeout: float = 60.0,
        concurrency: int = 4,
    ):
        super().__init__(
            base_url or DEFAULT_BASE_URL,
            headers={},
            auth=("api", api_key),
            timeout=timeout,
            concurrency=concurrency,
        )
        if not domain or "/" in domain:
            raise ValueError("MAILGUN_DOMAIN must be the sending domain, like mg.example.com")
        self.domain = domain

    def form(self, group: Group) -> list[tuple[str, str]]:
        """The request's fields; repeated names (`to`) are repeated pairs."""
        first = group.messages[0]
        variables = {}
        for message, values in zip(group.messages, group.values, strict=True):
            headers = message.list_headers()
            variables[message.to] = {
                **values,
                "list_unsubscribe": headers.get("List-Unsubscribe", ""),
                **{f"meta_{key}": value for key, value in message.metadata.items()},
            }
        fields = [("from", first.sender), ("subject", first.subject)]
        fields += [("to", message.to) for message in group.messages]
        fields += [
            ("html", group.html),
            ("text", group.text),
            ("o:tag", first.tag),
            ("o:tracking", "no"),
            ("h:List-Unsubscribe", placeholder("list_unsubscribe")),
            ("h:List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ("v:issue", first.tag),
        ]
        if first.list_id:
            fields.append(("h:List-Id", first.list_id))
        fields += [(f"v:{key}", placeholder(f"meta_{key}")) for key in first.metadata]
        fields.append(("recipient-variables", json.dumps(variables, ensure_ascii=False)))
        return fields

    async def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        results: list[SendResult | None] = [None] * len(messages)
        for group in group_by_body(messages, placeholder):
            for start in range(0, len(group.messages), MAX_RECIPIENTS):
                part = group.subset(range(start, min(start + MAX_RECIPIENTS, len(group.messages))))
                try:
                    message_id = await self._send(part)
                except ProviderError as error:
                    done = {i: r for i, r in enumerate(results) if r is not None}
                    raise with_completed(error, done) from None
                for position, message in zip(part.positions, part.messages, strict=True):
                    results[position] = SendResult(
                        message.message_id, accepted=True, provider_message_id=message_id
                    )
        return results

    async def _send(self, group: Group) -> str:
        # Every field goes as multipart/form-data, the encoding the API documents.
        files = [(name, (None, value.encode())) for name, value in self.form(group)]
        response = await self.request("POST", f"/v3/{self.domain}/messages", files=files)
        if response.status_code >= 400:
            failure = Failure.FATAL
            raise ProviderError(
                f"mailgun {response.status_code}: {self.reason(response)}",
                failure=failure,
                status=response.status_code,
            )
        data = response.json()
        if not str(data.get("message", "")).startswith("Queued"):
            raise ProviderError(f"mailgun: unexpected answer {str(data)[:200]}", failure=Failure.AMBIGUOUS)
        return str(data.get("id", "")).strip("<>") or None

    def reason(self, response) -> str:
        try:
            return str(response.json().get("message"))
        except ValueError:
            return super().reason(response)

    async def reconcile(self, messages: Sequence[OutgoingMessage]) -> dict[str, str | None]:
        """Recipients of the interrupted batches that Mailgun logged as `accepted`."""
        wanted = {(m.to, m.metadata.get("batch")): m for m in messages}
        tags = {m.tag for m in messages}
        accepted: dict[str, str | None] = {}
        for tag in tags:
            params = {
                "event": "accepted",
                "tags": tag,
                "begin": int(time.time()) - RECONCILE_WINDOW,
                "ascending": "yes",
                "limit": EVENTS_PAGE,
            }
            path: str | None = f"/v3/{self.domain}/events"
            while path:
                response = await self.request("GET", path, params=params)
                if response.status_code >= 400:
                    raise ProviderError(
                        f"mailgun events {response.status_code}: {self.reason(response)}",
                        failure=Failure.AMBIGUOUS,
                    )
                page = response.json()
                items = page.get("items") or []
                for item in items:
                    batch = (item.get("user-variables") or {}).get("batch")
                    message = wanted.get((item.get("recipient"), batch))
                    if message is not None:
                        accepted[message.message_id] = (
                            (item.get("message") or {}).get("headers", {}).get("message-id")
                        )
                next_url = (page.get("paging") or {}).get("next")
                if not items or not next_url:
                    break
                path, params = next_url.removeprefix(self.base_url), None
        return accepted
