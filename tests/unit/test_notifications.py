"""shared.notifications: the text a person reads, the chat message Amazon Q Developer renders, what machines read."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared import notifications as render

EXECUTION = "arn:aws:states:eu-west-1:123456789012:execution:web-app-deploy:run-1"
DEPLOYMENT = render.Deployment(
    application="web-app", execution_id=EXECUTION, action="deploy", stages=(("prod", ("web-app-prod",)),)
)


@pytest.mark.parametrize(
    ("arn", "url"),
    [
        (
            EXECUTION,
            "https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/details/" + EXECUTION,
        ),
        (
            "arn:aws-cn:states:cn-north-1:123456789012:execution:m:r",
            "https://console.amazonaws.cn/states/home?region=cn-north-1#/v2/executions/details/"
            "arn:aws-cn:states:cn-north-1:123456789012:execution:m:r",
        ),
        (
            "arn:aws-us-gov:states:us-gov-west-1:123456789012:execution:m:r",
            "https://console.amazonaws-us-gov.com/states/home?region=us-gov-west-1#/v2/executions/details/"
            "arn:aws-us-gov:states:us-gov-west-1:123456789012:execution:m:r",
        ),
        ("arn:aws-iso:states:us-iso-east-1:123456789012:execution:m:r", None),  # no documented console domain
        ("run-1", None),
        ("arn:aws:states:eu-west-1:123456789012:stateMachine:m", None),
    ],
)
def test_the_console_link_is_in_the_executions_own_partition(arn: str, url: str | None) -> None:
    assert render.execution_console_url(arn) == url


def chat(notification: render.Notification) -> dict[str, Any]:
    return dict(json.loads(render.sns_messages(notification)["default"]))


def test_the_chat_message_follows_the_custom_notification_schema() -> None:
    message = chat(render.deployment_started(DEPLOYMENT))

    assert (message["version"], message["source"]) == ("1.0", "custom")
    assert message["content"]["textType"] == "client-markdown"
    assert set(message) == {"version", "source", "id", "content", "metadata"}
    assert set(message["content"]) == {"textType", "title", "description", "nextSteps", "keywords"}
    assert set(message["metadata"]) == {"threadId", "summary", "eventType", "relatedResources", "additionalContext"}
    assert all(isinstance(v, str) for v in message["metadata"]["additionalContext"].values())
    assert message["metadata"]["threadId"] == "run-1"  # every notification of the execution in one thread


def test_an_approval_names_its_stage_for_machines_and_the_make_commands_for_people() -> None:
    fields = {
        "requestedAt": "2025-06-15T15:06:40Z",
        "expiresAt": "2025-06-18T15:06:40Z",
        "timeoutHours": 72.0,
        "approve": f"make approve EXECUTION={EXECUTION} STAGE=prod",
        "reject": f"make reject EXECUTION={EXECUTION} STAGE=prod REASON='...'",
    }
    notification = render.approval_requested(DEPLOYMENT, "prod", fields)
    message = chat(notification)

    assert message["metadata"]["additionalContext"]["stage"] == "prod"
    assert message["id"] == "ApprovalRequested:run-1:prod"
    assert f"Approve: `make approve EXECUTION={EXECUTION} STAGE=prod`" in message["content"]["nextSteps"]
    assert render.event_of(render.sns_messages(notification)["default"])["stage"] == "prod"


def test_a_task_token_is_never_published() -> None:
    notification = render.approval_requested(DEPLOYMENT, "prod", {"taskToken": "AQB8-secret"})

    with pytest.raises(ValueError, match="task token"):
        render.sns_messages(notification)


def test_the_mail_subject_is_ascii_and_fits_sns() -> None:
    long = render.Deployment(application="a" * 40, execution_id=EXECUTION, stages=(("ü" * 80, ()),))
    subject = render.mail_subject(render.deployment_started(long))

    assert len(subject) <= render.SUBJECT_LIMIT
    assert subject.isascii()


def test_a_long_cause_is_shortened_for_people_and_kept_whole_for_machines() -> None:
    cause = "x" * 5000
    notification = render.deployment_failed(DEPLOYMENT, None, {"Error": "RefreshFailed", "Cause": cause})
    message = chat(notification)

    assert len(message["content"]["description"]) <= render.DESCRIPTION_LIMIT
    assert render.event_of(render.sns_messages(notification)["default"])["error"]["Cause"] == cause


def test_a_message_that_is_not_a_chat_notification_is_read_as_it_is() -> None:
    alert = json.dumps({"event": "ScheduledRebuildFailed", "executionId": EXECUTION})

    assert render.event_of(alert) == {"event": "ScheduledRebuildFailed", "executionId": EXECUTION}
