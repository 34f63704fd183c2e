"""Outgoing webhooks: other systems are told when a reader joins or leaves, votes, or an issue is sent.

Signed as the Standard Webhooks specification says (`webhook-id`, `webhook-timestamp`,
`webhook-signature: v1,<base64 HMAC-SHA256>`), written to an outbox in the transaction of the change
they report, and delivered with retries by the scheduler, the sender workers and
`newsletter webhooks deliver`.

  events.py     the event types, which reader event becomes which, and their payloads (pure)
  outbox.py     writing events to the outbox, in the caller's transaction (and the session hooks
                that do it for every reader event, however it is written)
  signing.py    endpoint secrets (whsec_...), their encryption at rest, the signature
  endpoints.py  adding, listing, enabling and removing endpoints; their URLs; their health
  sender.py     delivery: claims, the HTTP request, retries with back-off, disabling, pruning
"""
