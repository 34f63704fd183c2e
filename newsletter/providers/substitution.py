"""Grouping messages for providers that fill in per-recipient values themselves (SendGrid, Mailgun).

Messages personalised from the same compiled email share one body with placeholders; the request
carries that body once and each recipient's values beside it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from newsletter.mail import OutgoingMessage


@dataclass
class Group:
    """Messages that can share one request body; `positions` are their places in the original batch."""

    messages: list[OutgoingMessage]
    positions: list[int]
    html: str
    text: str
    values: list[dict[str, str]]

    def subset(self, indexes) -> Group:
        picked = list(indexes)
        return Group(
            [self.messages[i] for i in picked],
            [self.positions[i] for i in picked],
            self.html,
            self.text,
            [self.values[i] for i in picked],
        )


def group_by_body(messages: Sequence[OutgoingMessage], placeholder: Callable[[str], str]) -> list[Group]:
    """One group per compiled email (a variant of the issue), in first-seen order. A message that
    was not personalised from a compiled email gets a group of its own, its body as it is."""
    groups: dict[int, Group] = {}
    ordered: list[Group] = []
    for position, message in enumerate(messages):
        rendered = getattr(message.content, "rendered", None)
        if rendered is None:
            ordered.append(Group([message], [position], message.html, message.text, [{}]))
            continue
        group = groups.get(id(rendered))
        if group is None:
            html, text = rendered.bodies_with(placeholder)
            group = groups[id(rendered)] = Group([], [], html, text, [])
            ordered.append(group)
        group.messages.append(message)
        group.positions.append(position)
        group.values.append(message.content.values())
    return ordered


def nonce_placeholder() -> Callable[[str], str]:
    """Placeholders no content can contain by accident: a random part per request."""
    nonce = secrets.token_hex(4)
    return lambda name: f"-nl{nonce}-{name}-"
