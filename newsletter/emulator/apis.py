"""The four providers' sending APIs as the emulator speaks them: their paths, authentication, request
checks, response formats and error codes (as in `../shared/specs` and Postmark's documentation)."""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import json
import secrets
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from newsletter.emulator.http import Request, Response
from newsletter.emulator.state import Store

POSTMARK_BATCH = 500
RESEND_BATCH = 100
SENDGRID_PERSONALIZATIONS = 1000
MAILGUN_RECIPIENTS = 1000


def _now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


# --- Postmark ---------------------------------------------------------------------------------------


def postmark_auth(request: Request, token: str) -> Response | None:
    if request.headers.get("x-postmark-server-token") != token:
        return Response.of_json(
            401, {"ErrorCode": 10, "Message": "Request does not contain a valid Server token."}
        )
    return None


def postmark_error(status: int, code: int, message: str) -> Response:
    return Response.of_json(status, {"ErrorCode": code, "Message": message})


def postmark_send(request: Request, store: Store, rejected, batch: bool) -> Response:
    try:
        data = request.json()
    except ValueError:
        return postmark_error(422, 402, "Received invalid JSON input.")
    messages = data if batch else [data]
    if batch and (not isinstance(data, list) or len(data) > POSTMARK_BATCH):
        return postmark_error(422, 300, f"A batch holds at most {POSTMARK_BATCH} messages.")
    results = []
    for message in messages:
        if not isinstance(message, dict) or not message.get("From") or not message.get("To"):
            results.append({"ErrorCode": 300, "Message": "Invalid email request: From and To are required."})
            continue
        if not (message.get("HtmlBody") or message.get("TextBody")):
            results.append(
                {"ErrorCode": 300, "Message": "Provide either email TextBody or HtmlBody or both."}
            )
            continue
        to = message["To"]
        if rejected(to):
            results.append(
                {
                    "ErrorCode": 406,
                    "Message": "You tried to send to recipient(s) that have been marked as inactive.",
                    "To": to,
                    "SubmittedAt": _now_iso(),
                }
            )
            continue
        message_id = str(uuid.uuid4())
        headers = {h.get("Name"): h.get("Value") for h in message.get("Headers") or [] if isinstance(h, dict)}
        store.accept(
            "postmark",
            to,
            message.get("Subject", ""),
            message.get("HtmlBody") or "",
            message.get("TextBody") or "",
            message_id=message_id,
            tag=message.get("Tag"),
            metadata=message.get("Metadata") or {},
            headers=headers,
        )
        results.append(
            {"ErrorCode": 0, "Message": "OK", "MessageID": message_id, "SubmittedAt": _now_iso(), "To": to}
        )
    if batch:
        return Response.of_json(200, results)
    result = results[0]
    return Response.of_json(200 if result["ErrorCode"] == 0 else 422, result)


def postmark_search(request: Request, store: Store) -> Response:
    try:
        count, offset = int(request.param("count", "0")), int(request.param("offset", "0"))
    except ValueError:
        return postmark_error(422, 300, "count and offset must be numbers")
    if not 1 <= count <= 500:
        return postmark_error(422, 300, "count must be between 1 and 500")
    tag, recipient = request.param("tag"), request.param("recipient")
    wanted = {
        key.removeprefix("metadata_"): value for key, value in request.query if key.startswith("metadata_")
    }
    found = [
        r
        for r in store.records
        if r.provider == "postmark"
        and (tag is None or r.tag == tag)
        and (recipient is None or r.to == recipient.lower())
        and all(r.metadata.get(k) == v for k, v in wanted.items())
    ]
    page = found[offset : offset + count]
    return Response.of_json(
        200,
        {
            "TotalCount": len(found),
            "Messages": [
                {
                    "Tag": r.tag,
                    "MessageID": r.provider_message_id,
                    "MessageStream": "broadcast",
                    "To": [{"Email": r.to, "Name": None}],
                    "Recipients": [r.to],
                    "Subject": r.subject,
                    "Status": "Sent",
                    "Metadata": r.metadata,
                    "ReceivedAt": datetime.fromtimestamp(r.accepted_at, UTC).isoformat(),
                }
                for r in page
            ],
        },
    )


# --- Resend -----------------------------------------------------------------------------------------


def resend_error(status: int, name: str, message: str) -> Response:
    return Response.of_json(status, {"statusCode": status, "name": name, "message": message})


def resend_auth(request: Request, token: str) -> Response | None:
    header = request.headers.get("authorization", "")
    if not header:
        return resend_error(401, "missing_api_key", "Missing API key in the authorization header.")
    if header != f"Bearer {token}":
        return resend_error(403, "invalid_api_key", "API key is invalid.")
    return None


def resend_send(request: Request, store: Store, batch: bool) -> Response:
    """One batch or one email. With an Idempotency-Key, a repeat answers as the first time did."""
    key = request.headers.get("idempotency-key")
    digest = hashlib.sha256(request.body).hexdigest()
    if key:
        if len(key) > 256:
            return resend_error(422, "validation_error", "The Idempotency-Key is longer than 256 characters.")
        seen = store.idempotency.get(key)
        if seen is not None:
            if seen[0] != digest:
                return resend_error(
                    409,
                    "invalid_idempotent_request",
                    "Same idempotency key used with a different request payload.",
                )
            store.requests["resend idempotent replay"] += 1
            return Response(seen[1], seen[2], seen[3])
    try:
        data = request.json()
    except ValueError:
        return resend_error(422, "validation_error", "Invalid JSON.")
    messages = data if batch else [data]
    if batch and (not isinstance(data, list) or len(data) > RESEND_BATCH):
        return resend_error(422, "validation_error", f"A batch holds at most {RESEND_BATCH} emails.")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not all(message.get(f) for f in ("from", "to", "subject")):
            return resend_error(422, "validation_error", f"email {index}: from, to and subject are required.")
        to = message["to"] if isinstance(message["to"], list) else [message["to"]]
        if len(to) > 50:
            return resend_error(422, "validation_error", f"email {index}: at most 50 addresses in to.")
    ids = []
    for message in messages:
        message_id = str(uuid.uuid4())
        tags = {t.get("name"): t.get("value") for t in message.get("tags") or [] if isinstance(t, dict)}
        for to in message["to"] if isinstance(message["to"], list) else [message["to"]]:
            store.accept(
                "resend",
                to,
                message["subject"],
                message.get("html") or "",
                message.get("text") or "",
                message_id=message_id,
                tag=tags.get("issue"),
                metadata=tags,
                headers=message.get("headers") or {},
            )
        ids.append({"id": message_id})
    response = Response.of_json(200, {"data": ids} if batch else ids[0])
    if key:
        store.idempotency[key] = (digest, response.status, response.body, response.headers)
    return response


# --- SendGrid -----------------------------------------------------------------------------------------


def sendgrid_error(status: int, message: str, field: str | None = None) -> Response:
    return Response.of_json(status, {"errors": [{"message": message, "field": field, "help": None}]})


def sendgrid_auth(request: Request, token: str) -> Response | None:
    if request.headers.get("authorization") != f"Bearer {token}":
        return sendgrid_error(401, "The provided authorization grant is invalid, expired, or revoked")
    return None


def _substitute(text: str, substitutions: dict) -> str:
    for key, value in substitutions.items():
        text = text.replace(key, str(value))
    return text


def sendgrid_send(request: Request, store: Store, rejected) -> Response:
    try:
        data = request.json()
    except ValueError:
        return sendgrid_error(400, "Bad Request", None)
    personalizations = data.get("personalizations") if isinstance(data, dict) else None
    if not isinstance(personalizations, list) or not personalizations:
        return sendgrid_error(400, "The personalizations field is required.", "personalizations")
    if len(personalizations) > SENDGRID_PERSONALIZATIONS:
        return sendgrid_error(
            400, "The personalizations field must have at most 1000 items.", "personalizations"
        )
    sender = (data.get("from") or {}).get("email")
    if not sender:
        return sendgrid_error(400, "The from object must be provided for every email send.", "from")
    content = {c.get("type"): c.get("value", "") for c in data.get("content") or [] if isinstance(c, dict)}
    if not content:
        return sendgrid_error(
            400, "Unless a valid template_id is provided, the content parameter is required.", "content"
        )
    errors = [
        {
            "message": "Does not contain a valid address.",
            "field": f"personalizations.{i}.to.0.email",
            "help": None,
        }
        for i, p in enumerate(personalizations)
        if rejected(((p.get("to") or [{}])[0]).get("email", ""))
    ]
    if errors:
        return Response.of_json(400, {"errors": errors})
    message_id = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")[:22]
    top_headers = data.get("headers") or {}
    for p in personalizations:
        subs = p.get("substitutions") or {}
        custom = {k: str(v) for k, v in (p.get("custom_args") or {}).items()}
        for to in p.get("to") or []:
            store.accept(
                "sendgrid",
                to.get("email", ""),
                _substitute(p.get("subject") or data.get("subject", ""), subs),
                _substitute(content.get("text/html", ""), subs),
                _substitute(content.get("text/plain", ""), subs),
                message_id=message_id,
                tag=custom.get("issue"),
                metadata=custom,
                headers={**top_headers, **(p.get("headers") or {})},
            )
    return Response(202, b"", {"X-Message-Id": message_id})


# --- Mailgun ------------------------------------------------------------------------------------------


def mailgun_auth(request: Request, token: str) -> Response | None:
    expected = "Basic " + base64.b64encode(f"api:{token}".encode()).decode()
    if request.headers.get("authorization") != expected:
        return Response(401, b"Forbidden", {"Content-Type": "text/plain"})
    return None


def parse_form(request: Request) -> list[tuple[str, str]]:
    """multipart/form-data or application/x-www-form-urlencoded fields, repeated names kept."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/x-www-form-urlencoded"):
        return parse_qsl(request.body.decode(), keep_blank_values=True)
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.body)
    fields = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        fields.append((name, part.get_payload(decode=True).decode()))
    return fields


def _recipient_vars(text: str, variables: dict) -> str:
    for key, value in variables.items():
        text = text.replace(f"%recipient.{key}%", str(value))
    return text


def mailgun_send(request: Request, store: Store, domain: str) -> Response:
    try:
        fields = parse_form(request)
    except (ValueError, UnicodeDecodeError):
        return Response.of_json(400, {"message": "Invalid form data"})
    single = {}
    for name, value in fields:
        single.setdefault(name, value)
    recipients = [value for name, value in fields if name == "to"]
    for required in ("from", "subject"):
        if not single.get(required):
            return Response.of_json(400, {"message": f"{required} parameter is missing"})
    if not recipients:
        return Response.of_json(400, {"message": "to parameter is missing"})
    if not (single.get("html") or single.get("text")):
        return Response.of_json(
            400, {"message": "Need at least one of 'text' or 'html' parameters specified"}
        )
    if len(recipients) > MAILGUN_RECIPIENTS:
        return Response.of_json(400, {"message": f"Too many recipients: at most {MAILGUN_RECIPIENTS}"})
    try:
        variables = json.loads(single.get("recipient-variables") or "{}")
    except ValueError:
        return Response.of_json(400, {"message": "recipient-variables parameter is not valid JSON"})
    message_id = f"{time.strftime('%Y%m%d%H%M%S')}.{secrets.token_hex(6)}@{domain}"
    for to in recipients:
        mine = variables.get(to, {})
        headers = {name[2:]: _recipient_vars(value, mine) for name, value in fields if name.startswith("h:")}
        custom = {name[2:]: _recipient_vars(value, mine) for name, value in fields if name.startswith("v:")}
        store.accept(
            "mailgun",
            to,
            _recipient_vars(single["subject"], mine),
            _recipient_vars(single.get("html", ""), mine),
            _recipient_vars(single.get("text", ""), mine),
            message_id=message_id,
            tag=single.get("o:tag"),
            metadata=custom,
            headers=headers,
        )
    return Response.of_json(200, {"id": f"<{message_id}>", "message": "Queued. Thank you."})


def mailgun_events(request: Request, store: Store, domain: str, base: str) -> Response:
    event, tag = request.param("event"), request.param("tags")
    try:
        begin = float(request.param("begin", "0"))
        limit = min(int(request.param("limit", "100")), 300)
        page = int(request.param("page", "0"))
    except ValueError:
        return Response.of_json(400, {"message": "begin, limit and page must be numbers"})
    if event not in (None, "accepted"):
        return Response.of_json(200, {"items": [], "paging": {}})
    found = [
        r
        for r in store.records
        if r.provider == "mailgun" and r.accepted_at >= begin and (tag is None or r.tag == tag)
    ]
    chunk = found[page * limit : (page + 1) * limit]
    items = [
        {
            "id": f"{r.provider_message_id}-{i}",
            "event": "accepted",
            "timestamp": r.accepted_at,
            "recipient": r.to,
            "tags": [r.tag] if r.tag else [],
            "user-variables": r.metadata,
            "message": {"headers": {"message-id": r.provider_message_id, "subject": r.subject}},
        }
        for i, r in enumerate(chunk)
    ]
    query = "&".join(f"{k}={v}" for k, v in request.query if k != "page")
    paging = {"next": f"{base}/v3/{domain}/events?{query}&page={page + 1}"} if chunk else {}
    return Response.of_json(200, {"items": items, "paging": paging})
