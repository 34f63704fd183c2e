"""SMTP, for a local catcher such as Mailpit or MailHog, or a relay.

`NEWSLETTER_SMTP_URL` is `smtp://[user:password@]host[:port]` (plain, port 25),
`smtp+starttls://...` (STARTTLS, port 587) or `smtps://...` (TLS, port 465), parsed by
`newsletter.smtp_url` (a password may hold any character; no message ever shows it). Each batch uses one
connection; each message is its own transaction, so one refused recipient refuses only that message.
SMTP has no way to ask afterwards what was accepted: see the README for the window this leaves.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parseaddr

from newsletter.mail import OutgoingMessage, to_eml
from newsletter.providers.base import Failure, ProviderError, ReconcileUnsupported, SendResult
from newsletter.smtp_url import parse_smtp_url


class SmtpProvider:
    name = "smtp"
    max_batch = 100
    default_batch = 50  # one connection per batch; a lost connection leaves at most this many unknown

    def __init__(self, url: str, *, timeout: float = 30.0):
        parsed = parse_smtp_url(url)  # ValueError names the variable, never the password
        self.scheme, self.host, self.port = parsed.scheme, parsed.host, parsed.port
        self.user, self.password = parsed.user, parsed.password
        self.shown = parsed.masked()
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"SmtpProvider({self.shown})"

    def _connect(self) -> smtplib.SMTP:
        try:
            if self.scheme == "smtps":
                client = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
                )
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
                if self.scheme == "smtp+starttls":
                    client.starttls(context=ssl.create_default_context())
            if self.user:
                client.login(self.user, self.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise ProviderError(f"smtp: login refused ({exc.smtp_code})", failure=Failure.FATAL) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise ProviderError(
                f"smtp: cannot connect to {self.host}:{self.port}: {exc}", failure=Failure.RETRYABLE
            ) from exc
        return client

    def _send_all(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        client = self._connect()
        results: list[SendResult] = []
        now = datetime.now(UTC)
        try:
            for message in messages:
                envelope_from = parseaddr(message.sender)[1]
                try:
                    client.sendmail(envelope_from, [message.to], to_eml(message, now))
                except smtplib.SMTPRecipientsRefused as exc:
                    code, text = next(iter(exc.recipients.values()))
                    results.append(
                        SendResult(
                            message.message_id,
                            accepted=False,
                            permanent=code >= 500,
                            error=f"smtp {code}: {text.decode(errors='replace')}",
                        )
                    )
                except smtplib.SMTPServerDisconnected:
                    break
                except smtplib.SMTPResponseException as exc:
                    results.append(
                        SendResult(
                            message.message_id,
                            accepted=False,
                            permanent=exc.smtp_code >= 500,
                            error=f"smtp {exc.smtp_code}: {exc.smtp_error!r}",
                        )
                    )
                else:
                    results.append(
                        SendResult(message.message_id, accepted=True, provider_message_id=message.message_id)
                    )
        finally:
            try:
                client.quit()
            except (OSError, smtplib.SMTPException):
                client.close()
        # The connection dropped: the rest were not sent (a retry sends them).
        results += [
            SendResult(m.message_id, accepted=False, error="smtp: connection lost")
            for m in messages[len(results) :]
        ]
        return results

    async def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        return await asyncio.to_thread(self._send_all, messages)

    async def reconcile(self, messages: Sequence[OutgoingMessage]) -> dict[str, str | None]:
        raise ReconcileUnsupported("SMTP cannot tell afterwards which messages it accepted")

    async def aclose(self) -> None:
        return None
