"""Rendering and publishing: one SNS Publish per notification, a message per protocol.

One publish carries a message per protocol (SNS Publish, MessageStructure=json: "a syntactically valid JSON object"
with "at least a top-level JSON key of "default" with a value that is a string", other top-level keys per protocol,
each falling back to "default" when absent; https://docs.aws.amazon.com/sns/latest/api/API_Publish.html):

- `email`: readable text (the subject is the SNS Subject: ASCII, at most 100 characters), then the JSON for machines;
- `default` (what https, sqs, lambda and email-json subscribers get): an Amazon Q Developer in chat applications
  (AWS Chatbot) custom notification, so a team routes the topic to Slack or Microsoft Teams without code. Its schema
  ("Custom notifications using Amazon Q Developer in chat applications", Event schema and Parameter details,
  https://docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html): `version` "1.0" and `source` "custom"
  (required), `id`, `content` {`textType` "client-markdown" (the only one supported), `title`, `description`,
  `nextSteps`, `keywords`}, `metadata` {`threadId`, `summary`, `eventType`, `relatedResources`,
  `additionalContext` (customer-provided keys with string values)}. The text uses only what reads the same in Slack
  and Teams (plain lines, `code`, bare links). Machines read `metadata.additionalContext`: `event`, `executionId`,
  `stage` (when there is one) and `detail`, the whole structured event as a JSON string (the schema names string
  values only, and the docs do not say that other top-level fields are accepted: none is added). The docs name no
  length limits: the description is kept under DESCRIPTION_LIMIT characters, the rest is in `detail` and the console.
  Every notification of one execution has the same `threadId` (its name): chat threads them together.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from shared.notifications.content import Notification, execution_name, short

SUBJECT_LIMIT = 100  # SNS Publish: Subject, "must be less than 100 characters" (moto enforces 100)
DESCRIPTION_LIMIT = 3500  # no limit documented for the custom notification's description: a conservative bound


class Publisher(Protocol):
    """shared.aws.notifications.Notifications: one SNS Publish with a message per protocol."""

    def publish(self, subject: str, messages: Mapping[str, str], attributes: Mapping[str, str]) -> str: ...


def _refuse_task_tokens(value: Any, path: str = "") -> None:
    """A task token in a message lets whoever reads it answer the task (approve a stage): never publish one."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if str(key).lower() == "tasktoken":
                raise ValueError(f"a notification must not carry a task token ({path}{key})")
            _refuse_task_tokens(item, f"{path}{key}.")
    elif isinstance(value, list | tuple):
        for item in value:
            _refuse_task_tokens(item, path)


def mail_subject(notification: Notification) -> str:
    """SNS Subject: ASCII printable, no line break, at most SUBJECT_LIMIT characters."""
    text = "".join(c if 32 <= ord(c) < 127 else "?" for c in notification.subject)
    return short(text, SUBJECT_LIMIT).replace("…", ".")[:SUBJECT_LIMIT]


def email_text(notification: Notification) -> str:
    lines = [*notification.body]
    if notification.next_steps:
        lines += ["", "Next steps:", *(f"- {step}" for step in notification.next_steps)]
    lines += ["", "For machines (the same event as JSON):", json.dumps(notification.fields, indent=2, sort_keys=True)]
    return "\n".join(lines) + "\n"


def chat_message(notification: Notification) -> dict[str, Any]:
    """The Amazon Q Developer in chat applications custom notification (schema in the module docstring)."""
    description = "\n".join(notification.body[1:]).strip() if len(notification.body) > 1 else notification.summary
    context = {
        "event": notification.event,
        "executionId": notification.execution_id,
        "detail": json.dumps(notification.fields, sort_keys=True, separators=(",", ":"), default=str),
    }
    if notification.stage:
        context["stage"] = notification.stage
    name = execution_name(notification.execution_id)
    return {
        "version": "1.0",
        "source": "custom",
        "id": ":".join(p for p in (notification.event, name, notification.extra_id) if p),
        "content": {
            "textType": "client-markdown",
            "title": notification.title,
            "description": short(description, DESCRIPTION_LIMIT),
            "nextSteps": list(notification.next_steps),
            "keywords": [k for k in dict.fromkeys(notification.keywords) if k],
        },
        "metadata": {
            "threadId": name,
            "summary": notification.summary,
            "eventType": notification.event,
            "relatedResources": [notification.execution_id, *notification.related],
            "additionalContext": context,
        },
    }


def sns_messages(notification: Notification) -> dict[str, str]:
    """The per-protocol messages of one publish (MessageStructure=json): chat JSON by default, text for email."""
    _refuse_task_tokens(notification.fields)
    return {"default": json.dumps(chat_message(notification), default=str), "email": email_text(notification)}


def publish(notification: Notification, publisher: Publisher) -> str:
    return publisher.publish(mail_subject(notification), sns_messages(notification), {"event": notification.event})


def event_of(message: str) -> dict[str, Any]:
    """The structured event of a published message as a machine reads it: a chat notification's `detail`; any other
    JSON message (the EventBridge rules' alerts) as it is."""
    body = json.loads(message)
    context = body.get("metadata", {}).get("additionalContext") if isinstance(body, dict) else None
    if body.get("source") == "custom" and isinstance(context, dict) and "detail" in context:
        detail: dict[str, Any] = json.loads(context["detail"])
        return detail
    return dict(body)
