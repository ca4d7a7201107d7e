"""register_wait: store the task token of an event-driven wait, and resume it at once when the resource is done;
for an approval, store the token and mail the request without it."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber
from register_wait import logic
from register_wait.models import RegisterWaitEnvironment, RegisterWaitInput

from shared import clock
from shared.aws.autoscaling import AutoScaling
from shared.aws.imagebuilder import ImageBuilder
from shared.aws.notifications import Notifications
from shared.aws.task_tokens import TaskTokens, WaitTable
from shared.config import ConfigurationError
from shared.environment import load_environment
from shared.errors import InvalidInput
from shared.notifications import event_of
from tests.conftest import REGION
from tests.unit.tables import coordination_table_fixtures

TABLE = "web-app-locks"
TTL = 7200
NOW = 1_750_000_000
EXECUTION = "arn:aws:states:eu-west-1:123456789012:execution:deploy:run-1"
TOKEN = "AQB8AAAAKgAAAAMAAAAAAAAAAQ-token-1"
NEWER_TOKEN = "AQB8AAAAKgAAAAMAAAAAAAAAAQ-token-2"
GROUP = "web-app-test"
REFRESH_ID = "c613620e-07e2-4ed2-a9e2-ef8258911ade"
IMAGE_ARN = "arn:aws:imagebuilder:eu-west-1:123456789012:image/web-app-app/1.0.0/7"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:web-app-deployments"
COMMIT = "3f2c1e9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e"
AMI = "ami-0abc1234def567890"
APPROVAL_TIMEOUT = 72 * 3600


class Clients:
    """Stubbed AWS clients: a call without a queued response fails the test (Stubber validates every request)."""

    def __init__(self) -> None:
        self.autoscaling = boto3.client("autoscaling", region_name=REGION)
        self.imagebuilder = boto3.client("imagebuilder", region_name=REGION)
        self.stepfunctions = boto3.client("stepfunctions", region_name=REGION)
        self.sns = boto3.client("sns", region_name=REGION)
        self.asg_stub = Stubber(self.autoscaling)
        self.ib_stub = Stubber(self.imagebuilder)
        self.sfn_stub = Stubber(self.stepfunctions)
        self.sns_stub = Stubber(self.sns)

    def expect_refresh(self, status: str) -> None:
        self.asg_stub.add_response(
            "describe_instance_refreshes",
            {"InstanceRefreshes": [{"InstanceRefreshId": REFRESH_ID, "AutoScalingGroupName": GROUP, "Status": status}]},
            {"AutoScalingGroupName": GROUP, "InstanceRefreshIds": [REFRESH_ID], "MaxRecords": 100},
        )

    def expect_image(self, status: str) -> None:
        self.ib_stub.add_response(
            "get_image",
            {"image": {"arn": IMAGE_ARN, "state": {"status": status}}},
            {"imageBuildVersionArn": IMAGE_ARN},
        )

    def expect_resume(self, output: dict[str, Any], token: str = TOKEN) -> None:
        self.sfn_stub.add_response("send_task_success", {}, {"taskToken": token, "output": as_sent(output)})

    def expect_mail(self, subject: str) -> list[dict[str, Any]]:
        """One Publish (MessageStructure=json); returns the list its parameters are appended to when it is sent."""
        sent: list[dict[str, Any]] = []
        self.sns.meta.events.register("provide-client-params.sns.Publish", lambda params, **_: sent.append(params))
        self.sns_stub.add_response(
            "publish",
            {"MessageId": "m-1"},
            {
                "TopicArn": TOPIC,
                "Subject": subject,
                "Message": ANY,
                "MessageStructure": "json",
                "MessageAttributes": {"event": {"DataType": "String", "StringValue": "ApprovalRequested"}},
            },
        )
        return sent

    def assert_all_used(self) -> None:
        for stub in (self.asg_stub, self.ib_stub, self.sfn_stub, self.sns_stub):
            stub.assert_no_pending_responses()


def as_sent(output: dict[str, Any]) -> str:
    """The task output exactly as the adapter sends it (compact JSON, sorted keys)."""
    return json.dumps(output, sort_keys=True, separators=(",", ":"))


_table, dynamodb = coordination_table_fixtures(TABLE, REGION)


@pytest.fixture
def clients() -> Iterator[Clients]:
    stubbed = Clients()
    with stubbed.asg_stub, stubbed.ib_stub, stubbed.sfn_stub, stubbed.sns_stub:
        yield stubbed


def items(dynamodb: Any) -> dict[str, dict[str, str]]:
    """Every item of the table as {target: {attribute: value}}."""
    found = dynamodb.scan(TableName=TABLE)["Items"]
    return {i["target"]["S"]: {k: next(iter(v.values())) for k, v in i.items() if k != "target"} for i in found}


def wait_request(kind: str = "refresh", *, token: str = TOKEN, dry_run: bool = False) -> RegisterWaitInput:
    return RegisterWaitInput.model_validate(
        {
            "taskToken": token,
            "executionId": EXECUTION,
            "dryRun": dry_run,
            "kind": kind,
            "resourceId": REFRESH_ID if kind == "refresh" else IMAGE_ARN,
            "autoScalingGroupName": GROUP if kind == "refresh" else None,
        }
    )


def run(request: RegisterWaitInput, clients: Clients, dynamodb: Any) -> dict[str, Any]:
    output = logic.run(
        request,
        waits=WaitTable(TABLE, dynamodb),
        tokens=TaskTokens(clients.stepfunctions),
        refreshes=AutoScaling(clients.autoscaling),
        builds=ImageBuilder(clients.imagebuilder),
        ttl_seconds=TTL,
        clock=lambda: NOW,
        notifications=Notifications(TOPIC, clients.sns),
        application="web-app",
    )
    return output.model_dump(by_alias=True, mode="json")


# --- registering ---------------------------------------------------------------------------------


def test_register_stores_the_wait_item_and_keeps_waiting_while_the_refresh_runs(
    clients: Clients, dynamodb: Any
) -> None:
    # Given a refresh still in progress
    clients.expect_refresh("InProgress")
    # When the state machine registers its wait
    output = run(wait_request(), clients, dynamodb)
    # Then the item names the token, the execution and the resource, expires after the TTL, and nothing is resumed
    assert output == {"registered": True, "alreadyDone": False, "status": "InProgress"}
    assert items(dynamodb) == {
        f"wait#refresh#{REFRESH_ID}": {
            "taskToken": TOKEN,
            "executionId": EXECUTION,
            "kind": "refresh",
            "resourceId": REFRESH_ID,
            "expiresAt": str(NOW + TTL),
            "createdAt": str(NOW),
        }
    }
    clients.assert_all_used()


@pytest.mark.parametrize("status", ["PENDING", "BUILDING", "TESTING", "DISTRIBUTING", "INTEGRATING"])
def test_register_keeps_waiting_while_the_image_builds(clients: Clients, dynamodb: Any, status: str) -> None:
    # Given an image build still under way
    clients.expect_image(status)
    # When the wait is registered
    output = run(wait_request("image"), clients, dynamodb)
    # Then the item is stored under the image build version ARN and the task waits
    assert output == {"registered": True, "alreadyDone": False, "status": status}
    assert items(dynamodb)[f"wait#image#{IMAGE_ARN}"]["taskToken"] == TOKEN
    clients.assert_all_used()


def test_register_again_for_the_same_resource_overwrites_with_the_newest_token(clients: Clients, dynamodb: Any) -> None:
    # Given a wait registered with a first token (its task timed out into the fallback poll)
    clients.expect_refresh("InProgress")
    run(wait_request(), clients, dynamodb)
    # When the state machine waits again with a new token, a minute later
    clients.expect_refresh("InProgress")
    output = logic.run(
        wait_request(token=NEWER_TOKEN),
        waits=WaitTable(TABLE, dynamodb),
        tokens=TaskTokens(clients.stepfunctions),
        refreshes=AutoScaling(clients.autoscaling),
        builds=ImageBuilder(clients.imagebuilder),
        ttl_seconds=TTL,
        clock=lambda: NOW + 60,
        notifications=Notifications(TOPIC, clients.sns),
        application="web-app",
    )
    # Then one item remains, holding the newest token and expiry
    assert output.registered is True
    assert items(dynamodb) == {
        f"wait#refresh#{REFRESH_ID}": {
            "taskToken": NEWER_TOKEN,
            "executionId": EXECUTION,
            "kind": "refresh",
            "resourceId": REFRESH_ID,
            "expiresAt": str(NOW + 60 + TTL),
            "createdAt": str(NOW + 60),
        }
    }


# --- the resource had already finished -----------------------------------------------------------


@pytest.mark.parametrize("status", ["Successful", "Failed", "Cancelled", "RollbackSuccessful", "RollbackFailed"])
def test_register_resumes_the_task_itself_when_the_refresh_had_already_finished(
    clients: Clients, dynamodb: Any, status: str
) -> None:
    # Given a refresh that ended before the wait was registered (its event found no item)
    clients.expect_refresh(status)
    clients.expect_resume({"source": "register", "kind": "refresh", "resourceId": REFRESH_ID, "status": status})
    # When the wait is registered
    output = run(wait_request(), clients, dynamodb)
    # Then the task is resumed with the status, and the wait item is gone
    assert output == {"registered": True, "alreadyDone": True, "status": status}
    assert items(dynamodb) == {}
    clients.assert_all_used()


@pytest.mark.parametrize("status", ["AVAILABLE", "FAILED", "CANCELLED", "DEPRECATED", "DELETED", "DISABLED"])
def test_register_resumes_the_task_itself_when_the_image_build_had_already_finished(
    clients: Clients, dynamodb: Any, status: str
) -> None:
    # Given an image build that reached a final status before the wait was registered
    clients.expect_image(status)
    clients.expect_resume({"source": "register", "kind": "image", "resourceId": IMAGE_ARN, "status": status})
    # When the wait is registered
    output = run(wait_request("image"), clients, dynamodb)
    # Then the task is resumed and the wait item deleted
    assert output == {"registered": True, "alreadyDone": True, "status": status}
    assert items(dynamodb) == {}
    clients.assert_all_used()


@pytest.mark.parametrize("code", ["TaskTimedOut", "InvalidToken", "TaskDoesNotExist"])
def test_register_with_a_task_already_closed_deletes_its_item(clients: Clients, dynamodb: Any, code: str) -> None:
    # Given a finished refresh, and a token whose task is already closed (the relay was faster)
    clients.expect_refresh("Successful")
    clients.sfn_stub.add_client_error("send_task_success", service_error_code=code)
    # When the wait is registered
    output = run(wait_request(), clients, dynamodb)
    # Then nothing fails and no item is left behind
    assert output == {"registered": True, "alreadyDone": True, "status": "Successful"}
    assert items(dynamodb) == {}


def test_register_survives_a_failing_resume_and_leaves_the_wait_to_the_fallback_poll(
    clients: Clients, dynamodb: Any
) -> None:
    # Given a finished image build, and Step Functions failing on SendTaskSuccess
    clients.expect_image("AVAILABLE")
    clients.sfn_stub.add_client_error("send_task_success", service_error_code="KmsThrottlingException")
    # When the wait is registered
    output = run(wait_request("image"), clients, dynamodb)
    # Then the step still succeeds (the task's timeout ends the wait) and the item stays until its TTL
    assert output == {"registered": True, "alreadyDone": True, "status": "AVAILABLE"}
    assert items(dynamodb)[f"wait#image#{IMAGE_ARN}"]["taskToken"] == TOKEN


# --- the look fails ------------------------------------------------------------------------------


def _refresh_throttled(clients: Clients) -> None:
    clients.asg_stub.add_client_error(
        "describe_instance_refreshes", service_error_code="Throttling", http_status_code=400
    )


def _refresh_not_visible_yet(clients: Clients) -> None:
    clients.asg_stub.add_response("describe_instance_refreshes", {"InstanceRefreshes": []})


def _group_gone(clients: Clients) -> None:
    clients.asg_stub.add_client_error("describe_instance_refreshes", service_error_code="ValidationError")


@pytest.mark.parametrize("failure", [_refresh_throttled, _refresh_not_visible_yet, _group_gone])
def test_register_survives_a_failing_refresh_look(clients: Clients, dynamodb: Any, failure: Any) -> None:
    # Given the refresh cannot be looked at
    failure(clients)
    # When the wait is registered
    output = run(wait_request(), clients, dynamodb)
    # Then the wait stands (the event or the fallback poll ends it) and nothing is resumed
    assert output == {"registered": True, "alreadyDone": False, "status": None}
    assert list(items(dynamodb)) == [f"wait#refresh#{REFRESH_ID}"]
    clients.assert_all_used()


@pytest.mark.parametrize("code", ["ResourceNotFoundException", "CallRateLimitExceededException", "ServiceException"])
def test_register_survives_a_failing_image_look(clients: Clients, dynamodb: Any, code: str) -> None:
    # Given Image Builder does not answer GetImage
    clients.ib_stub.add_client_error("get_image", service_error_code=code)
    # When the wait is registered
    output = run(wait_request("image"), clients, dynamodb)
    # Then the wait stands
    assert output == {"registered": True, "alreadyDone": False, "status": None}
    assert list(items(dynamodb)) == [f"wait#image#{IMAGE_ARN}"]


# --- dry run -------------------------------------------------------------------------------------


def test_register_dry_run_writes_nothing_looks_at_nothing_and_resumes_at_once(clients: Clients, dynamodb: Any) -> None:
    # Given a dry run (no refresh really runs)
    clients.expect_resume({"source": "register", "kind": "refresh", "resourceId": REFRESH_ID, "status": None})
    # When the wait is registered
    output = run(wait_request(dry_run=True), clients, dynamodb)
    # Then the task is resumed at once, with no item and no look at Auto Scaling
    assert output == {"registered": False, "alreadyDone": False, "status": None}
    assert items(dynamodb) == {}
    clients.assert_all_used()


# --- environment and handler ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"WAIT_TTL_SECONDS": "7200", "NOTIFICATION_TOPIC_ARN": TOPIC}, "LOCK_TABLE_NAME: required field is missing"),
        ({"LOCK_TABLE_NAME": TABLE, "NOTIFICATION_TOPIC_ARN": TOPIC}, "WAIT_TTL_SECONDS: required field is missing"),
        (
            {"LOCK_TABLE_NAME": TABLE, "WAIT_TTL_SECONDS": "a day", "NOTIFICATION_TOPIC_ARN": TOPIC},
            "WAIT_TTL_SECONDS: Input should be a valid integer",
        ),
        (
            {"LOCK_TABLE_NAME": TABLE, "WAIT_TTL_SECONDS": "0", "NOTIFICATION_TOPIC_ARN": TOPIC},
            "WAIT_TTL_SECONDS: Input should be greater than 0",
        ),
        ({"LOCK_TABLE_NAME": TABLE, "WAIT_TTL_SECONDS": "7200"}, "NOTIFICATION_TOPIC_ARN: required field is missing"),
    ],
)
def test_register_wait_environment_names_the_missing_or_bad_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=f"register_wait function environment: {message}"):
        load_environment(RegisterWaitEnvironment, "register_wait", environ)


@pytest.fixture
def handler(dynamodb: Any, clients: Clients, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("LOCK_TABLE_NAME", TABLE)
    monkeypatch.setenv("WAIT_TTL_SECONDS", str(TTL))
    monkeypatch.setenv("NOTIFICATION_TOPIC_ARN", TOPIC)
    module = importlib.import_module("register_wait.handler")
    monkeypatch.setattr(module, "wait_table", lambda: WaitTable(TABLE, dynamodb))
    monkeypatch.setattr(module, "task_tokens", lambda: TaskTokens(clients.stepfunctions))
    monkeypatch.setattr(module, "autoscaling", lambda: AutoScaling(clients.autoscaling))
    monkeypatch.setattr(module, "imagebuilder", lambda: ImageBuilder(clients.imagebuilder))
    monkeypatch.setattr(module, "notifications", lambda: Notifications(TOPIC, clients.sns))
    monkeypatch.setattr(clock, "epoch_seconds", lambda: NOW)
    monkeypatch.setattr(
        module,
        "ENV",
        RegisterWaitEnvironment.model_validate(
            {"LOCK_TABLE_NAME": TABLE, "WAIT_TTL_SECONDS": TTL, "NOTIFICATION_TOPIC_ARN": TOPIC}
        ),
    )
    return module


def test_handler_registers_a_refresh_wait_then_a_finished_image_build(
    handler: Any, clients: Clients, dynamodb: Any, lambda_context: Any
) -> None:
    # Given the payloads the state machine sends with its task token
    refresh = {
        "taskToken": TOKEN,
        "executionId": EXECUTION,
        "kind": "refresh",
        "resourceId": REFRESH_ID,
        "autoScalingGroupName": GROUP,
    }
    image = {
        **refresh,
        "taskToken": NEWER_TOKEN,
        "kind": "image",
        "resourceId": IMAGE_ARN,
        "autoScalingGroupName": None,
    }
    clients.expect_refresh("InProgress")
    clients.expect_image("AVAILABLE")
    clients.expect_resume(
        {"source": "register", "kind": "image", "resourceId": IMAGE_ARN, "status": "AVAILABLE"}, token=NEWER_TOKEN
    )
    # When both are registered
    waiting = handler.lambda_handler(refresh, lambda_context)
    done = handler.lambda_handler(image, lambda_context)
    # Then the JSON answers are the documented shapes, and only the refresh still waits
    assert waiting == {"registered": True, "alreadyDone": False, "status": "InProgress"}
    assert done == {"registered": True, "alreadyDone": True, "status": "AVAILABLE"}
    assert list(items(dynamodb)) == [f"wait#refresh#{REFRESH_ID}"]
    clients.assert_all_used()


VALID = {"taskToken": TOKEN, "executionId": EXECUTION, "kind": "refresh", "resourceId": REFRESH_ID}


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({**VALID, "autoScalingGroupName": GROUP, "taskToken": ""}, "taskToken"),
        ({k: v for k, v in VALID.items() if k != "taskToken"}, "taskToken: required field is missing"),
        ({**VALID, "autoScalingGroupName": GROUP, "kind": "ami"}, "kind"),
        ({**VALID, "autoScalingGroupName": GROUP, "executionId": ""}, "executionId"),
        ({**VALID, "autoScalingGroupName": GROUP, "dryRun": "yes"}, "dryRun"),
        ({**VALID, "autoScalingGroupName": GROUP, "timeout": 300}, "timeout: unknown field"),
        (VALID, "autoScalingGroupName: required when kind is 'refresh'"),
        ({**VALID, "kind": "image"}, "resourceId: must be an image build version ARN"),
        (
            {
                **VALID,
                "kind": "image",
                "resourceId": "arn:aws:imagebuilder:eu-west-1:123456789012:image/web-app-app/1.0.0",
            },
            "resourceId: must be an image build version ARN",
        ),
    ],
)
def test_handler_rejects_bad_payloads_before_writing_or_calling_aws(
    handler: Any, clients: Clients, dynamodb: Any, lambda_context: Any, event: dict[str, Any], message: str
) -> None:
    # Given stubs with no responses (any AWS call other than DynamoDB's would fail the test)
    # When / Then the payload is refused with the field named, and no item is written
    with pytest.raises(InvalidInput, match=message):
        handler.lambda_handler(event, lambda_context)
    assert items(dynamodb) == {}


# --- approvals: the token stays in the table, the mail says how to answer -------------------------------------

APPROVAL_ID = f"{EXECUTION}#prod"


def approval_payload(**changes: Any) -> dict[str, Any]:
    """What the ASL's WaitForApproval sends."""
    payload: dict[str, Any] = {
        "taskToken": TOKEN,
        "executionId": EXECUTION,
        "kind": "approval",
        "resourceId": APPROVAL_ID,
        "autoScalingGroupName": None,
        "approval": {
            "stage": "prod",
            "amiId": AMI,
            "commit": COMMIT,
            "images": None,
            "timeoutSeconds": APPROVAL_TIMEOUT,
        },
    }
    return {**payload, **changes}


def expected_mail() -> dict[str, Any]:
    return {
        "event": "ApprovalRequested",
        "stage": "prod",
        "executionId": EXECUTION,
        "amiId": AMI,
        "commit": COMMIT,
        "images": None,
        "requestedAt": "2025-06-15T15:06:40Z",  # NOW
        "expiresAt": "2025-06-18T15:06:40Z",  # NOW + 72 h
        "timeoutHours": 72.0,
        "approve": f"make approve EXECUTION={EXECUTION} STAGE=prod",
        "reject": f"make reject EXECUTION={EXECUTION} STAGE=prod REASON='...'",
    }


def test_an_approval_stores_its_token_in_the_table_and_mails_the_request_without_it(
    handler: Any, clients: Clients, dynamodb: Any, lambda_context: Any
) -> None:
    # Given the mail the approvers get (exact: no token, the deadline, the commands)
    sent = clients.expect_mail("[web-app] Approval needed: stage prod")
    # When the state machine asks for prod's approval
    output = handler.lambda_handler(approval_payload(), lambda_context)
    # Then the chat message carries the structured request, the mail the commands and a console link, none the token
    messages = json.loads(sent[0]["Message"])
    assert {k: v for k, v in event_of(messages["default"]).items() if k in expected_mail()} == expected_mail()
    assert f"Approve: `make approve EXECUTION={EXECUTION} STAGE=prod`" in messages["email"]
    assert (
        "https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/details/"
        in (messages["email"])
    )
    assert TOKEN not in sent[0]["Message"]
    # Then the token is in the approval's wait item only, which outlives the approval by the wait TTL;
    # nothing was looked at and nothing resumed: only a person ends an approval
    assert output == {"registered": True, "alreadyDone": False, "status": None}
    assert items(dynamodb) == {
        f"wait#approval#{APPROVAL_ID}": {
            "taskToken": TOKEN,
            "executionId": EXECUTION,
            "kind": "approval",
            "resourceId": APPROVAL_ID,
            "expiresAt": str(NOW + APPROVAL_TIMEOUT + TTL),
            "createdAt": str(NOW),
        }
    }
    clients.assert_all_used()


def test_an_approval_whose_mail_fails_fails_the_step_with_its_token_stored(clients: Clients, dynamodb: Any) -> None:
    # Given SNS refusing the publish
    clients.sns_stub.add_client_error("publish", "AuthorizationError", http_status_code=403)
    request = RegisterWaitInput.model_validate(approval_payload())
    # When / Then the step fails (nobody would know to answer), after the item was written: a retry rewrites it
    with pytest.raises(ClientError, match="AuthorizationError"):
        run(request, clients, dynamodb)
    assert list(items(dynamodb)) == [f"wait#approval#{APPROVAL_ID}"]


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (approval_payload(approval=None), "approval: required when kind is 'approval'"),
        (approval_payload(resourceId=EXECUTION), "resourceId: must be '<executionId>#<approval.stage>'"),
        (approval_payload(resourceId=f"{EXECUTION}#test"), "resourceId: must be '<executionId>#<approval.stage>'"),
        (
            {**VALID, "autoScalingGroupName": GROUP, "approval": approval_payload()["approval"]},
            "approval: only for kind 'approval', not 'refresh'",
        ),
        (approval_payload(approval={**approval_payload()["approval"], "timeoutSeconds": 0}), "timeoutSeconds"),
        (approval_payload(approval={**approval_payload()["approval"], "stage": "a#b"}), "stage"),
    ],
)
def test_handler_rejects_bad_approval_payloads_before_writing_or_mailing(
    handler: Any, clients: Clients, dynamodb: Any, lambda_context: Any, event: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        handler.lambda_handler(event, lambda_context)
    assert items(dynamodb) == {}
    clients.assert_all_used()


def test_the_approval_mail_quotes_what_a_shell_would_split() -> None:
    # An execution name may hold characters a shell reads (Step Functions allows e.g. '!' and '='): quoted.
    approve, reject = logic.approval_commands(f"{EXECUTION}!x", "prod")

    assert approve == f"make approve 'EXECUTION={EXECUTION}!x' STAGE=prod"
    assert reject.startswith(f"make reject 'EXECUTION={EXECUTION}!x' STAGE=prod REASON=")
