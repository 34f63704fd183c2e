"""SendGrid v3 `POST /v3/mail/send`: the body once per request with `substitutions` per recipient in
`personalizations` (at most 1000), and per-recipient List-Unsubscribe headers and custom_args.

SendGrid offers no idempotency key and no outbound search in its mail API, so an interrupted request
cannot be reconciled: see the README for the window this leaves and how the engine keeps it small.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from email.utils import parseaddr

from newsletter.mail import OutgoingMessage
from newsletter.providers.base import (
    Failure,
    HttpProvider,
    ProviderError,
    ReconcileUnsupported,
    SendResult,
    with_completed,
)
from newsletter.providers.substitution import Group, group_by_body, nonce_placeholder

DEFAULT_BASE_URL = "https://api.sendgrid.com"
MAX_PERSONALIZATIONS = 1000
_PERSONALIZATION = re.compile(r"^personalizations\.(\d+)\.")


class SendGridProvider(HttpProvider):
    name = "sendgrid"
    max_batch = MAX_PERSONALIZATIONS
    default_batch = MAX_PERSONALIZATIONS  # the body travels once per request: the bigger the better

    def __init__(
        self, api_key: str, *, base_url: str | None = None, timeout: float = 60.0, concurrency: int = 4
    ):
        super().__init__(
            base_url or DEFAULT_BASE_URL,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            concurrency=concurrency,
        )

    def payload(self, group: Group, placeholder) -> dict:
        first = group.messages[0]
        name, address = parseaddr(first.sender)
        keys = {field: placeholder(field) for field in ("token", "email", "email_html")}
        personalizations = []
        for message, values in zip(group.messages, group.values, strict=True):
            headers = message.list_headers()
            headers.pop("List-Id", None)
            personalizations.append(
                {
                    "to": [{"email": message.to}],
                    "substitutions": {keys[field]: value for field, value in values.items() if field in keys},
                    "headers": headers,
                    "custom_args": {"issue": message.tag, **message.metadata},
                }
            )
        payload = {
            "personalizations": personalizations,
            "from": {"email": address, **({"name": name} if name else {})},
            "subject": first.subject,
            "content": [
                {"type": "text/plain", "value": group.text},
                {"type": "text/html", "value": group.html},
            ],
            "categories": [first.tag],
            "tracking_settings": {"click_tracking": {"enable": False}, "open_tracking": {"enable": False}},
        }
        if first.list_id:
            payload["headers"] = {"List-Id": first.list_id}
        return payload

    async def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        results: list[SendResult | None] = [None] * len(messages)
        placeholder = nonce_placeholder()
        for group in group_by_body(messages, placeholder):
            for start in range(0, len(group.messages), MAX_PERSONALIZATIONS):
                part = group.subset(range(start, min(start + MAX_PERSONALIZATIONS, len(group.messages))))
                try:
                    sent = await self._send_group(part, placeholder)
                except ProviderError as error:
                    done = {i: r for i, r in enumerate(results) if r is not None}
                    raise with_completed(error, done) from None
                for position, result in sent:
                    results[position] = result
        return results

    async def _send_group(self, group: Group, placeholder) -> list[tuple[int, SendResult]]:
        """Send; recipients SendGrid refuses by index (an invalid address) are permanent failures and
        the request goes again without them."""
        refused: dict[int, str] = {}
        message_id = None
        while keep := [i for i in range(len(group.messages)) if i not in refused]:
            response = await self.request(
                "POST", "/v3/mail/send", json=self.payload(group.subset(keep), placeholder)
            )
            if response.status_code < 400:
                message_id = response.headers.get("x-message-id")
                break
            newly = self._refused_recipients(response)
            if not newly:
                raise ProviderError(
                    f"sendgrid {response.status_code}: {self.reason(response)}",
                    failure=Failure.FATAL,
                    status=response.status_code,
                )
            for index, reason in newly.items():
                refused[keep[index]] = reason
        return [
            (
                position,
                SendResult(
                    message.message_id,
                    accepted=False,
                    error=f"sendgrid refused: {refused[i]}",
                    permanent=True,
                )
                if i in refused
                else SendResult(message.message_id, accepted=True, provider_message_id=message_id),
            )
            for i, (position, message) in enumerate(zip(group.positions, group.messages, strict=True))
        ]

    @staticmethod
    def _refused_recipients(response) -> dict[int, str]:
        """{personalization index: reason} when every error of a 400 names a personalization."""
        if response.status_code != 400:
            return {}
        try:
            errors = response.json().get("errors") or []
        except ValueError:
            return {}
        found = {}
        for error in errors:
            match = _PERSONALIZATION.match(str(error.get("field") or ""))
            if not match:
                return {}
            found[int(match[1])] = str(error.get("message", "refused"))
        return found

    def reason(self, response) -> str:
        try:
            return "; ".join(
                f"{e.get('field') or ''} {e.get('message')}".strip()
                for e in response.json().get("errors", [])
            )
        except (ValueError, AttributeError):
            return super().reason(response)

    async def reconcile(self, messages: Sequence[OutgoingMessage]) -> dict[str, str | None]:
        raise ReconcileUnsupported("sendgrid's mail API has no idempotency key and no outbound search")
