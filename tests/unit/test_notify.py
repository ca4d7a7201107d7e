"""notify: the state machine's outcome notifications, rendered by shared.notifications, published and counted."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws
from notify import logic
from notify.models import NotifyInput

import shared.observability
from shared.aws.notifications import Notifications
from shared.config import load_deploy_config
from shared.errors import InvalidInput
from shared.notifications import event_of
from tests.conftest import REGION

EXECUTION = "arn:aws:states:eu-west-1:123456789012:execution:web-app-deploy:run-1"
COMMIT = "3f2c1e9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e"
STARTED = "2025-06-15T15:00:00.000Z"
NOW = datetime(2025, 6, 15, 15, 23, 30, tzinfo=UTC)
STAGES = [
    {
        "name": "test",
        "approval": False,
        "waveSize": 2,
        "strategy": "rolling",
        "targets": [
            {"autoScalingGroupName": "web-app-test", "launchTemplateId": "lt-0aaaaaaaaaaaaaaa1"},
            {"autoScalingGroupName": "web-app-test-2", "launchTemplateId": "lt-0aaaaaaaaaaaaaaa3"},
        ],
    }
]
REQUEST = {
    "action": "deploy",
    "commit": COMMIT,
    "branch": "main",
    "repository": "web-app",
    "amiId": None,
    "to": None,
    "stages": ["test"],
    "dryRun": False,
    "trigger": "github",
    "pusher": "alice",
    "deliveryId": "d-1",
    "whenBusy": "queue",
}
# WaveFailed's cause: the first failure's cause, then the wave's groups and their outcomes (the ASL's States.Format).
WAVE_CAUSE = (
    'instance refresh r-1 of web-app-test is Failed: 2 instances unhealthy | wave outcomes: ["web-app-test",'
    '"web-app-test-2"] ["rolled-back","deployed"]'
)


class Sent:
    """A publisher keeping what each publish carried."""

    def __init__(self) -> None:
        self.subjects: list[str] = []
        self.messages: list[dict[str, str]] = []

    def publish(self, subject: str, messages: Mapping[str, str], attributes: Mapping[str, str]) -> str:
        self.subjects.append(subject)
        self.messages.append(dict(messages))
        return f"m-{len(self.messages)}"

    def events(self) -> list[dict[str, Any]]:
        return [event_of(m["default"]) for m in self.messages]


def payload(event: str, **changes: Any) -> dict[str, Any]:
    return {
        "event": event,
        "executionId": EXECUTION,
        "startedAt": STARTED,
        "request": REQUEST,
        "stages": STAGES,
        **changes,
    }


def notify(event: str, **changes: Any) -> tuple[dict[str, Any], Sent]:
    sent = Sent()
    request = NotifyInput.model_validate(payload(event, **changes))
    output = logic.run(request, load_deploy_config(), publisher=sent, now=lambda: NOW)
    return output.model_dump(by_alias=True), sent


def emitted() -> set[str]:
    return set(shared.observability.metrics.metric_set)


def test_a_failed_wave_says_what_failed_and_what_was_rolled_back_then_sends_rolled_back() -> None:
    # Given a failed wave: one group rolled back, its sibling deployed
    error = {"Error": "RefreshFailed", "Cause": WAVE_CAUSE}
    # When NotifyFailure runs
    output, sent = notify("DeploymentFailed", amiId="ami-0abc1234def567890", error=error)
    # Then DeploymentFailed names the error, the stage, each group's outcome; RolledBack follows; both counted
    assert output["published"] == ["DeploymentFailed", "RolledBack"]
    failed, rolled = sent.events()
    assert failed["error"] == {
        "Error": "RefreshFailed",
        "Cause": "instance refresh r-1 of web-app-test is Failed: 2 instances unhealthy",
    }
    assert failed["targets"] == [
        {"group": "web-app-test", "stage": "test", "outcome": "rolled-back", "detail": None},
        {"group": "web-app-test-2", "stage": "test", "outcome": "deployed", "detail": None},
    ]
    assert failed["rolledBack"] == ["web-app-test"]
    assert [t["group"] for t in rolled["targets"]] == ["web-app-test"]
    assert sent.subjects[0] == "[web-app] Deployment failed in test: RefreshFailed"
    mail = sent.messages[0]["email"]
    assert "What failed: RefreshFailed: instance refresh r-1 of web-app-test is Failed" in mail
    assert "wave outcomes" not in mail
    assert "Rolled back to the image it ran before:\n  - `web-app-test` (stage test)" in mail
    assert "Kept the new image (its own rollout succeeded):\n  - `web-app-test-2` (stage test)" in mail
    assert {"DeploymentFailed", "RolledBack"} <= emitted()


def test_a_failure_before_any_wave_rolled_nothing_back_and_sends_no_rolled_back() -> None:
    # Given a bake that failed (no wave outcomes in the cause)
    output, sent = notify("DeploymentFailed", error={"Error": "ImageBuildFailed", "Cause": "the build FAILED"})
    # Then one DeploymentFailed that says nothing was rolled back
    assert output["published"] == ["DeploymentFailed"]
    assert "What was rolled back: nothing" in sent.messages[0]["email"]
    assert sent.events()[0]["targets"] == []
    assert "RolledBack" not in emitted()


def test_a_started_dry_run_is_marked_as_one_and_not_counted() -> None:
    output, sent = notify("DeploymentStarted", request={**REQUEST, "dryRun": True})

    assert output["published"] == ["DeploymentStarted"]
    assert sent.subjects == ["[web-app] Dry run: Deployment started: test"]
    assert sent.events()[0]["dryRun"] is True
    assert "nothing will change" in sent.messages[0]["email"]
    assert emitted() == set()


def test_a_started_deployment_is_counted() -> None:
    output, sent = notify("DeploymentStarted")

    assert output == {"published": ["DeploymentStarted"], "messageIds": ["m-1"]}
    assert "pushed by alice" in sent.messages[0]["email"]
    assert emitted() == {"DeploymentStarted"}


def test_a_successful_deployment_says_how_long_it_took_and_what_it_pruned() -> None:
    prune = {"done": True, "progress": {"imagesPruned": 2, "snapshotsDeleted": 4, "failures": 0}, "restorable": "7 d"}
    output, sent = notify("DeploymentSucceeded", amiId="ami-0abc1234def567890", outcome="deployed", prune=prune)

    assert output["published"] == ["DeploymentSucceeded"]
    mail = sent.messages[0]["email"]
    assert "deployed to test in 23 min 30 s" in mail
    assert "Pruned: 2 AMI(s), 4 snapshot(s)" in mail
    assert emitted() == {"DeploymentSucceeded"}


def test_a_successful_rollback_action_is_followed_by_rolled_back() -> None:
    rollback = {**REQUEST, "action": "rollback", "commit": None, "amiId": "ami-0abc1234def567890", "to": "previous"}
    output, sent = notify("DeploymentSucceeded", request=rollback, outcome="deployed")

    assert output["published"] == ["DeploymentSucceeded", "RolledBack"]
    assert [t["group"] for t in sent.events()[1]["targets"]] == ["web-app-test", "web-app-test-2"]
    assert emitted() == {"DeploymentSucceeded", "RolledBack"}


def test_a_superseded_push_says_by_whom_and_is_counted_by_the_lock_step_only() -> None:
    superseded = {"Error": "Superseded", "Cause": "superseded by arn:...:run-2: a newer push deploys these targets"}
    output, sent = notify("Superseded", superseded=superseded)

    assert output["published"] == ["Superseded"]
    assert "superseded by arn:...:run-2" in sent.messages[0]["email"]
    assert emitted() == set()


def test_a_rejected_request_names_the_error_without_a_plan() -> None:
    sent = Sent()
    request = NotifyInput.model_validate(
        {"event": "DeploymentRejected", "executionId": EXECUTION, "error": {"Error": "InvalidInput", "Cause": "bad"}}
    )
    logic.run(request, load_deploy_config(), publisher=sent, now=lambda: NOW)

    assert sent.subjects == ["[web-app] Deployment rejected: InvalidInput"]
    assert emitted() == {"DeploymentRejected"}


@pytest.mark.parametrize(
    ("cause", "expected"),
    [
        (None, (None, [])),
        ("plain cause", ("plain cause", [])),
        ("a | wave outcomes: not json", ("a | wave outcomes: not json", [])),
        ('a | wave outcomes: ["g1"] ["x","y"]', ('a | wave outcomes: ["g1"] ["x","y"]', [])),
        (
            'a | wave outcomes: b | wave outcomes: ["g1"] ["rolled-back"]',
            ("a | wave outcomes: b", [("g1", "rolled-back")]),
        ),
    ],
)
def test_wave_outcomes_are_taken_out_of_the_cause_only_when_well_formed(cause: str | None, expected: Any) -> None:
    assert logic.split_wave_outcomes(cause) == expected


# --- the handler and SNS --------------------------------------------------------------------------------------------


@pytest.fixture
def topic() -> Iterator[tuple[Any, str, str]]:
    """A topic with a raw-delivery SQS subscription, as the rehearsal's inbox."""
    with mock_aws():
        sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
        arn = sns.create_topic(Name="web-app-deployments")["TopicArn"]
        url = sqs.create_queue(QueueName="inbox")["QueueUrl"]
        queue = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue, Attributes={"RawMessageDelivery": "true"})
        yield sns, arn, url


def test_handler_publishes_one_message_per_protocol_and_sqs_gets_the_chat_message(
    topic: tuple[Any, str, str], lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the notify function on a topic an SQS queue subscribes to (moto 5.2.5 delivers "sqs", else "default")
    sns, arn, url = topic
    monkeypatch.setenv("NOTIFICATION_TOPIC_ARN", arn)
    handler = importlib.import_module("notify.handler")
    monkeypatch.setattr(handler, "notifications", lambda: Notifications(arn, sns))
    # When the state machine asks for DeploymentStarted
    output = handler.lambda_handler(payload("DeploymentStarted"), lambda_context)
    # Then the queue holds the custom notification, whose structured event a machine reads
    messages = boto3.client("sqs", region_name=REGION).receive_message(QueueUrl=url)["Messages"]
    body = json.loads(messages[0]["Body"])
    assert output["published"] == ["DeploymentStarted"]
    assert (body["version"], body["source"], body["metadata"]["eventType"]) == ("1.0", "custom", "DeploymentStarted")
    assert event_of(messages[0]["Body"])["executionId"] == EXECUTION


def test_handler_refuses_a_payload_it_does_not_know(lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFICATION_TOPIC_ARN", "arn:aws:sns:eu-west-1:123456789012:t")
    handler = importlib.import_module("notify.handler")
    monkeypatch.setattr(handler, "notifications", lambda: pytest.fail("nothing may be published"))

    with pytest.raises(InvalidInput, match="event"):
        handler.lambda_handler(payload("DeploymentDone"), lambda_context)
