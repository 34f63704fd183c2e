"""What the emulator remembers: every message it accepted, the idempotency keys it saw, its faults."""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Faults:
    """Trouble to inject, per request to a sending endpoint.

    fail_rate: share of requests answered with one of `fail_statuses` *before* anything is accepted
    (429 carries Retry-After). drop_rate: share of requests whose messages are accepted and whose
    connection is then dropped without an answer. latency_ms: delay before a request is looked at;
    answer_delay_ms: delay between accepting a sending request's messages and answering (the window in
    which a killed sender leaves accepted messages unrecorded).
    reject_pattern: recipients that get a permanent per-recipient error.
    """

    fail_rate: float = 0.0
    fail_statuses: tuple[int, ...] = (429, 500)
    drop_rate: float = 0.0
    latency_ms: float = 0.0
    answer_delay_ms: float = 0.0
    retry_after: float = 0.2
    reject_pattern: str = r"^(inactive|invalid)[^@]*@"
    seed: int | None = None

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)  # noqa: S311  (repeatable faults, not secrets)
        self.rejects = re.compile(self.reject_pattern)

    def update(self, **changes) -> None:
        for name, value in changes.items():
            if name == "fail_statuses":
                value = tuple(int(v) for v in value)
            setattr(self, name, value)
        if "seed" in changes:
            self.rng = random.Random(self.seed)  # noqa: S311  (repeatable faults, not secrets)
        self.rejects = re.compile(self.reject_pattern)

    def roll_failure(self) -> int | None:
        if self.fail_rate and self.rng.random() < self.fail_rate:
            return self.rng.choice(self.fail_statuses)
        return None

    def roll_drop(self) -> bool:
        return bool(self.drop_rate) and self.rng.random() < self.drop_rate

    def rejected(self, address: str) -> bool:
        return bool(self.rejects.search(address))


@dataclass(slots=True)
class Record:
    """One message to one recipient, as the provider accepted it. The fingerprints are Python string
    hashes: equal bodies within one emulator run have equal fingerprints, at a fraction of the cost of
    a digest (the emulator must keep up with the sender it measures)."""

    provider: str
    to: str
    subject: str
    provider_message_id: str
    tag: str | None
    metadata: dict[str, str]
    headers: dict[str, str]
    html_fingerprint: int
    text_fingerprint: int
    html_chars: int
    accepted_at: float = field(default_factory=time.time)
    html: str | None = None
    text: str | None = None

    def summary(self, with_bodies: bool = False) -> dict:
        data = {name: getattr(self, name) for name in self.__slots__ if name not in ("html", "text")}
        if with_bodies:
            data |= {"html": self.html, "text": self.text}
        return data


class Store:
    """Accepted messages (bodies kept for the first `keep_bodies`), counts and request statistics."""

    def __init__(self, keep_bodies: int = 500):
        self.keep_bodies = keep_bodies
        self.reset()

    def reset(self) -> None:
        self.records: list[Record] = []
        self.per_address: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self.idempotency: dict[str, tuple[str, int, bytes, dict[str, str]]] = {}

    def accept(
        self,
        provider: str,
        to: str,
        subject: str,
        html: str,
        text: str,
        *,
        message_id: str,
        tag: str | None,
        metadata: dict,
        headers: dict,
    ) -> Record:
        keep = len(self.records) < self.keep_bodies
        record = Record(
            provider=provider,
            to=to.lower(),
            subject=subject,
            provider_message_id=message_id,
            tag=tag,
            metadata={k: str(v) for k, v in (metadata or {}).items()},
            headers=dict(headers or {}) if keep else {},
            html_fingerprint=hash(html),
            text_fingerprint=hash(text),
            html_chars=len(html),
        )
        if keep:  # bodies and headers of the first messages only: a 100,000-message run stays small
            record.html, record.text = html, text
        self.records.append(record)
        self.per_address[record.to] += 1
        return record

    def latest_to(self, provider: str, address: str) -> Record | None:
        for record in reversed(self.records):
            if record.provider == provider and record.to == address.lower():
                return record
        return None
