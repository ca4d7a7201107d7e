"""The rehearsal's invariant that no message on the notification topic holds a task token."""

from __future__ import annotations

import json

from rehearsal.invariants import task_token_violations

TOKEN = "AQB8AAAAKgAAAAMAAAAAAAAAAQ-approval-token"


def test_a_mail_with_an_issued_token_anywhere_in_it_is_a_violation() -> None:
    mail = json.dumps(
        {"event": "ApprovalRequested", "approve": f"aws stepfunctions send-task-success --task-token {TOKEN}"}
    )

    assert task_token_violations([mail], {TOKEN}) == [f"a notification carries a task token: {mail}"]


def test_a_mail_with_a_task_token_field_is_a_violation_whatever_its_value() -> None:
    mail = json.dumps({"event": "ApprovalRequested", "taskToken": "not one we issued"})

    assert task_token_violations([mail], {TOKEN}) == [f"a notification has a taskToken field: {mail}"]


def test_the_approval_mail_as_register_wait_sends_it_is_clean() -> None:
    mail = json.dumps(
        {
            "event": "ApprovalRequested",
            "stage": "prod",
            "executionId": "arn:aws:states:eu-west-1:123456789012:execution:web-app-deploy:push-1",
            "approve": "python scripts/approval.py approve arn:...:push-1 --stage prod",
        }
    )

    assert task_token_violations([mail, json.dumps({"event": "DeploymentSucceeded"})], {TOKEN, ""}) == []
