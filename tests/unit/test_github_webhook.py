"""github_webhook: verify GitHub's signature, ignore what does not deploy, start one execution per pushed commit."""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from github_webhook import logic
from github_webhook.models import FunctionUrlRequest, GithubWebhookEnvironment
from moto import mock_aws
from validate_request.logic import check_request, parse_request

import shared.observability
from shared import clock
from shared.aws.secrets import CachedSecret, Secrets
from shared.aws.stepfunctions import StartedExecution, StepFunctions, execution_arn
from shared.config import ConfigurationError, DeployConfig
from shared.environment import load_environment
from shared.errors import SecretNotFound, StateMachineNotFound
from tests.conftest import ACCOUNT, REGION, SAMPLE_DEPLOY_CONFIG

SECRET = "webhook-secret-0123456789abcdefghijklmnopqrstuv"
ROTATED = "rotated-secret-ZYXWVUTSRQPONMLKJIHGFEDCBA98765"
REPOSITORY = "acme/web-app"
BRANCH = "main"
COMMIT = "3f2c1e9d8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e"
DELIVERY = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
STATE_MACHINE_NAME = "web-app-deploy"
STATE_MACHINE_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{STATE_MACHINE_NAME}"
SESSION = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
GITHUB_CONFIG = DeployConfig.model_validate(
    {**SAMPLE_DEPLOY_CONFIG, "source": {"type": "github", "repository": REPOSITORY, "branch": BRANCH}}
)


def push_payload(**change: Any) -> dict[str, Any]:
    """A push delivery's payload, trimmed to what GitHub always sends around the fields the webhook reads."""
    payload: dict[str, Any] = {
        "ref": f"refs/heads/{BRANCH}",
        "before": "0123456789abcdef0123456789abcdef01234567",
        "after": COMMIT,
        "created": False,
        "deleted": False,
        "forced": False,
        "repository": {"id": 1296269, "name": "web-app", "full_name": REPOSITORY, "private": True},
        "pusher": {"name": "octocat", "email": "octocat@github.com"},
        "sender": {"login": "octocat", "id": 1},
        "commits": [{"id": COMMIT, "message": "Fix the thing"}],
        "head_commit": {"id": COMMIT, "message": "Fix the thing"},
    }
    payload.update(change)
    return payload


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def delivery(
    payload: Any = None,
    *,
    event: str = "push",
    body: bytes | None = None,
    secret: str = SECRET,
    encode: bool = False,
    headers: dict[str, str | None] | None = None,
) -> dict[str, Any]:
    """A Lambda function URL event (payload format 2.0) as AWS delivers GitHub's POST: header names lower-cased."""
    raw = body if body is not None else json.dumps(push_payload() if payload is None else payload).encode()
    all_headers: dict[str, str | None] = {
        "content-type": "application/json",
        "user-agent": "GitHub-Hookshot/044aadd",
        "x-github-event": event,
        "x-github-delivery": DELIVERY,
        "x-github-hook-id": "292430182",
        "x-hub-signature-256": sign(raw, secret),
        "x-hub-signature": "sha1=" + hmac.new(secret.encode(), raw, hashlib.sha1).hexdigest(),
        **(headers or {}),
    }
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "rawQueryString": "",
        "headers": {k: v for k, v in all_headers.items() if v is not None},
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abcdefghij",
            "domainName": "abcdefghij.lambda-url.eu-west-1.on.aws",
            "http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1", "sourceIp": "192.30.252.1"},
            "requestId": "11111111-2222-3333-4444-555555555555",
            "timeEpoch": 1700000000000,
        },
        "body": base64.b64encode(raw).decode() if encode else raw.decode(),
        "isBase64Encoded": encode,
    }


class Clock:
    def __init__(self) -> None:
        self.wall = datetime.now(UTC)
        self.monotonic = 1000.0

    def now(self) -> datetime:
        return self.wall

    def tick(self) -> float:
        return self.monotonic

    def advance(self, seconds: float) -> None:
        """Time passes for the secret cache (monotonic)."""
        self.monotonic += seconds

    def advance_wall(self, seconds: float) -> None:
        """The handler's wall clock moves ahead of moto's (which stamps executions with the real time)."""
        self.wall += timedelta(seconds=seconds)


class Aws:
    def __init__(self) -> None:
        self.secretsmanager = SESSION.client("secretsmanager")
        self.sfn = SESSION.client("stepfunctions")
        self.secret_arn = self.secretsmanager.create_secret(Name="web-app/github-webhook", SecretString=SECRET)["ARN"]
        self.sfn.create_state_machine(
            name=STATE_MACHINE_NAME,
            definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/web-app-deploy",
        )
        self.env = GithubWebhookEnvironment.model_validate(
            {
                "WEBHOOK_SECRET_ARN": self.secret_arn,
                "STATE_MACHINE_ARN": STATE_MACHINE_ARN,
                "GITHUB_REPOSITORY": REPOSITORY,
                "DEPLOY_BRANCH": BRANCH,
            }
        )
        self.clock = Clock()
        self.cache = CachedSecret(
            self.secret_arn,
            max_age_seconds=300,
            min_refresh_seconds=5,
            secrets=Secrets(self.secretsmanager),
            clock=self.clock.tick,
        )

    def executions(self) -> list[dict[str, Any]]:
        listed = self.sfn.list_executions(stateMachineArn=STATE_MACHINE_ARN)["executions"]
        return [self.sfn.describe_execution(executionArn=e["executionArn"]) for e in listed]

    def rotate(self, value: str) -> None:
        self.secretsmanager.put_secret_value(SecretId=self.secret_arn, SecretString=value)


@pytest.fixture
def aws() -> Iterator[Aws]:
    with mock_aws():
        yield Aws()


@pytest.fixture
def handler(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> Any:
    for key, value in aws.env.model_dump(by_alias=True).items():
        monkeypatch.setenv(key, value)
    module = importlib.import_module("github_webhook.handler")
    monkeypatch.setattr(module, "ENV", aws.env)
    monkeypatch.setattr(module, "webhook_secret", lambda: aws.cache)
    monkeypatch.setattr(module, "stepfunctions", lambda: StepFunctions(aws.sfn))
    monkeypatch.setattr(clock, "now", aws.clock.now)
    return module


@pytest.fixture
def call(handler: Any, lambda_context: Any) -> Any:
    """Invoke the handler; the response's status code and its JSON body."""

    def invoke(event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        response = handler.lambda_handler(event, lambda_context)
        assert response["headers"] == {"Content-Type": "application/json"}
        return response["statusCode"], json.loads(response["body"])

    return invoke


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Everything the shared Powertools logger writes during the test."""
    stream = io.StringIO()
    log_handler = shared.observability.logger.registered_handler
    previous = log_handler.setStream(stream)  # type: ignore[attr-defined]
    yield stream
    log_handler.setStream(previous)  # type: ignore[attr-defined]


def expected_name(commit: str = COMMIT, branch: str = BRANCH, repository: str = REPOSITORY) -> str:
    digest = hashlib.sha256(f"{repository.lower()}|{branch}|{commit}".encode()).hexdigest()[:8]
    return f"github-{branch}-{commit[:12]}-{digest}"


# --- accepted pushes -----------------------------------------------------------------------------


def test_signed_push_to_the_deploy_branch_starts_one_execution_with_the_normalised_request(call: Any, aws: Aws) -> None:
    # Given a signed push of a commit to the deploy branch of the configured repository
    event = delivery()
    # When GitHub delivers it
    status, body = call(event)
    # Then one execution runs, under the commit's deterministic name, with the github deploy request as input
    executions = aws.executions()
    assert len(executions) == 1
    assert executions[0]["name"] == expected_name()
    assert (status, body) == (202, {"executionArn": executions[0]["executionArn"]})
    assert json.loads(executions[0]["input"]) == {
        "action": "deploy",
        "commit": COMMIT,
        "branch": BRANCH,
        "repository": REPOSITORY,
        "trigger": "github",
        "pusher": "octocat",
        "deliveryId": DELIVERY,
    }


def test_started_input_passes_validate_request_for_a_github_source(call: Any, aws: Aws) -> None:
    # Given an accepted push
    call(delivery())
    started = json.loads(aws.executions()[0]["input"])
    # When the state machine's first state validates the input against a GitHub-sourced configuration
    request = parse_request(started)
    stages = check_request(request, GITHUB_CONFIG)
    # Then it is a github deploy of the commit to every configured stage
    assert (request.action, request.trigger, request.commit, request.branch) == ("deploy", "github", COMMIT, BRANCH)
    assert [s.name for s in stages] == ["test", "prod"]


def test_base64_encoded_body_is_verified_on_its_decoded_bytes_and_accepted(call: Any, aws: Aws) -> None:
    # Given the function URL passed the body base64-encoded (GitHub signed the decoded bytes)
    event = delivery(encode=True)
    # When it is delivered
    status, _ = call(event)
    # Then it is accepted like a plain body
    assert status == 202
    assert [e["name"] for e in aws.executions()] == [expected_name()]


def test_header_names_are_matched_whatever_their_case(call: Any, aws: Aws) -> None:
    # Given headers spelled as GitHub sends them (function URLs lower-case them, a proxy might not)
    event = delivery()
    event["headers"] = {
        re.sub(r"(^|-)([a-z])", lambda m: m.group(0).upper(), k): v for k, v in event["headers"].items()
    }
    assert "X-Hub-Signature-256" in event["headers"]
    # When it is delivered
    status, _ = call(event)
    # Then it is accepted
    assert status == 202


def test_form_encoded_delivery_is_verified_on_the_raw_body_and_accepted(call: Any, aws: Aws) -> None:
    # Given a webhook configured with content type application/x-www-form-urlencoded
    raw = urlencode({"payload": json.dumps(push_payload())}).encode()
    event = delivery(body=raw, headers={"content-type": "application/x-www-form-urlencoded"})
    # When it is delivered
    status, _ = call(event)
    # Then the payload field is read after the raw body's signature matched
    assert status == 202
    assert len(aws.executions()) == 1


# --- duplicates ----------------------------------------------------------------------------------


def test_redelivery_while_the_execution_runs_starts_nothing_new(call: Any, aws: Aws) -> None:
    # Given a push that started an execution, redelivered by GitHub later (same delivery id, same body)
    event = delivery()
    first_status, first = call(event)
    aws.clock.advance_wall(600)
    # When the redelivery arrives (StartExecution returns the running execution of the same name and input)
    status, body = call(event)
    # Then nothing new is started and the answer names the existing execution
    assert first_status == 202
    assert (status, body) == (200, {"executionArn": first["executionArn"], "duplicate": True})
    assert len(aws.executions()) == 1


def test_second_delivery_of_the_same_commit_is_a_duplicate_with_the_computed_execution_arn(call: Any, aws: Aws) -> None:
    # Given a push that started an execution
    _, first = call(delivery())
    # When another delivery (another delivery id, so another input) carries the same commit
    status, body = call(delivery(headers={"x-github-delivery": "99999999-cc78-11e3-81ab-4c9367dc0958"}))
    # Then StartExecution refuses the name and the answer is the existing execution's ARN
    assert (status, body) == (200, {"executionArn": first["executionArn"], "duplicate": True})
    assert body["executionArn"] == execution_arn(STATE_MACHINE_ARN, expected_name())
    assert len(aws.executions()) == 1


def test_push_of_another_commit_starts_a_second_execution(call: Any, aws: Aws) -> None:
    # Given a deployed commit
    call(delivery())
    other = "a" * 40
    # When the next commit is pushed
    status, _ = call(delivery(push_payload(after=other), headers={"x-github-delivery": "another-delivery"}))
    # Then a second execution runs under that commit's name
    assert status == 202
    assert sorted(e["name"] for e in aws.executions()) == sorted([expected_name(), expected_name(other)])


def test_push_forwards_its_full_after_sha_as_the_commit(call: Any, aws: Aws) -> None:
    # Given a push whose new head ("after") is a full SHA unlike its "before"
    after = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
    # When it is delivered
    status, _ = call(delivery(push_payload(after=after, commits=[{"id": after}], head_commit={"id": after})))
    # Then the execution's commit is that full SHA, all 40 characters (its name carries only the first 12)
    started = aws.executions()[0]
    assert status == 202
    assert json.loads(started["input"])["commit"] == after
    assert started["name"] == expected_name(after)


@pytest.mark.parametrize("short", [COMMIT[:7], COMMIT[:39]], ids=["7", "39"])
def test_push_whose_after_is_not_a_full_sha_is_a_bad_request(call: Any, aws: Aws, short: str) -> None:
    # Given a signed push whose "after" is a short SHA (GitHub always sends the full one)
    event = delivery(push_payload(after=short))
    # When it is delivered
    status, body = call(event)
    # Then 400, nothing started: a short SHA never reaches the bake
    assert status == 400
    assert body["error"].startswith("push payload: after: String should match pattern")
    assert aws.executions() == []


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (
            push_payload(ref="refs/heads/main\n"),
            "push payload: ref: must not contain a control character or line break (U+000A at index 15)",
        ),
        (
            push_payload(repository={"full_name": "acme/web-app "}),
            "push payload: repository.full_name: must not start or end with whitespace",
        ),
        (
            push_payload(pusher={"name": " octocat"}),
            "push payload: pusher.name: must not start or end with whitespace",
        ),
        (
            push_payload(pusher={"name": "octo\u200bcat"}),
            "push payload: pusher.name: must not contain a control character or line break (U+200B at index 4)",
        ),
    ],
    ids=["ref-newline", "repository-space", "pusher-space", "pusher-zero-width"],
)
def test_a_value_the_webhook_would_forward_with_whitespace_or_a_control_character_is_a_bad_request(
    call: Any, aws: Aws, payload: dict[str, Any], reason: str
) -> None:
    # Given a signed push one of whose forwarded values carries an invisible extra
    event = delivery(payload)
    # When it is delivered
    status, body = call(event)
    # Then 400 naming the field: nothing is trimmed and nothing started
    assert status == 400
    assert body["error"].startswith(reason)
    assert aws.executions() == []


# --- rejected deliveries -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"x-hub-signature-256": None, "x-hub-signature": None}, "X-Hub-Signature-256 header is missing"),
        ({"x-hub-signature-256": None}, "only X-Hub-Signature (SHA-1) was sent"),
        ({"x-hub-signature-256": "sha256=not-hex"}, "X-Hub-Signature-256 header is malformed"),
        ({"x-hub-signature-256": "sha1=" + "0" * 40}, "X-Hub-Signature-256 header is malformed"),
        ({"x-hub-signature-256": sign(b"another body")}, "X-Hub-Signature-256 does not match"),
        ({"x-hub-signature-256": sign(b"", secret="wrong")}, "X-Hub-Signature-256 does not match"),
    ],
    ids=["missing", "sha1-only", "malformed", "sha1-in-sha256-header", "other-body", "wrong-secret"],
)
def test_delivery_without_a_valid_sha256_signature_is_rejected_and_starts_nothing(
    call: Any, aws: Aws, headers: dict[str, str | None], reason: str
) -> None:
    # Given a push whose X-Hub-Signature-256 is missing, malformed, SHA-1 only or wrong
    event = delivery(headers=headers)
    # When it is delivered
    status, body = call(event)
    # Then it is refused with 401 and no execution exists
    assert status == 401
    assert body["error"].startswith(reason)
    assert aws.executions() == []


def test_signature_made_with_another_secret_is_rejected(call: Any, aws: Aws) -> None:
    # Given a push signed with a secret that is not the webhook's
    event = delivery(secret="someone-elses-secret")
    # When it is delivered
    status, body = call(event)
    # Then 401, nothing started
    assert (status, body) == (
        401,
        {"error": "X-Hub-Signature-256 does not match the body signed with the webhook secret"},
    )
    assert aws.executions() == []


def test_body_of_a_badly_signed_delivery_is_never_parsed(call: Any, aws: Aws) -> None:
    # Given malformed JSON with a wrong signature
    event = delivery(body=b"{not json", headers={"x-hub-signature-256": sign(b"{not json", secret="wrong")})
    # When it is delivered
    status, _ = call(event)
    # Then the answer is 401 (signature), not 400 (JSON)
    assert status == 401


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "body is not valid JSON"),
        (b"[1, 2]", "body must be a JSON object, got list"),
        (json.dumps(push_payload(after="not-a-commit")).encode(), "push payload: after: String should match"),
        (json.dumps({"ref": "refs/heads/main"}).encode(), "push payload: after: required field is missing"),
    ],
    ids=["malformed-json", "not-an-object", "bad-commit", "missing-fields"],
)
def test_signed_but_malformed_push_is_a_bad_request(call: Any, aws: Aws, raw: bytes, reason: str) -> None:
    # Given a correctly signed push whose body is not a push payload
    event = delivery(body=raw)
    # When it is delivered
    status, body = call(event)
    # Then 400 with the reason, nothing started
    assert status == 400
    assert body["error"].startswith(reason)
    assert aws.executions() == []


def test_body_over_one_mebibyte_is_refused_before_the_signature_is_computed(call: Any, aws: Aws) -> None:
    # Given a signed body one byte over 1 MiB
    raw = json.dumps(push_payload(padding="x" * logic.MAX_BODY_BYTES)).encode()[: logic.MAX_BODY_BYTES + 1]
    # When it is delivered, plain or base64-encoded
    plain = call(delivery(body=raw))
    encoded = call(delivery(body=raw, encode=True))
    # Then 413 both times, nothing started
    assert plain == encoded == (413, {"error": f"body is larger than {logic.MAX_BODY_BYTES} bytes"})
    assert aws.executions() == []


def test_oversize_body_never_reads_the_secret() -> None:
    # Given a secret source that records its use
    class Spy:
        calls = 0

        def get(self) -> str:
            Spy.calls += 1
            return SECRET

        def refresh(self) -> str | None:
            Spy.calls += 1
            return None

    request = FunctionUrlRequest.model_validate(delivery(body=b"x" * (logic.MAX_BODY_BYTES + 1)))
    # When the oversize delivery is received
    response = logic.receive(request, ENV_FOR_LOGIC, secrets=Spy(), starter=NoStarts(), clock=lambda: datetime.now(UTC))
    # Then it is refused without reading the secret
    assert response.status_code == 413
    assert Spy.calls == 0


def test_body_marked_base64_that_is_not_base64_is_a_bad_request(call: Any, aws: Aws) -> None:
    # Given a body marked base64-encoded that is not
    event = {**delivery(), "isBase64Encoded": True, "body": "%%% not base64 %%%"}
    # When it is delivered
    status, body = call(event)
    # Then 400
    assert (status, body) == (400, {"error": "body is marked base64-encoded but is not valid base64"})


def test_body_with_a_lone_surrogate_is_a_bad_request_before_the_signature_is_checked(call: Any, aws: Aws) -> None:
    # Given a plain-text body holding a lone surrogate (no UTF-8 bytes can carry it)
    event = {**delivery(), "isBase64Encoded": False, "body": '{"ref": "\ud800"}'}
    # When it is delivered / Then 400 with the reason, not a 500, and nothing started
    assert call(event) == (400, {"error": "body is not valid UTF-8 text"})
    assert aws.executions() == []


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "body is nested too deeply"),
        (b'{"after": ' + b"9" * 5000 + b"}", "body is not a push payload"),
    ],
    ids=["nested-beyond-the-parser", "5000-digit-integer"],
)
def test_signed_body_the_json_parser_cannot_take_is_a_bad_request(call: Any, aws: Aws, raw: bytes, reason: str) -> None:
    # Given a correctly signed body that json.loads refuses with RecursionError or ValueError
    status, body = call(delivery(body=raw))
    # Then 400 with the reason, not a 500, and nothing started
    assert status == 400
    assert body["error"].startswith(reason)
    assert aws.executions() == []


def test_event_that_is_not_a_function_url_request_is_a_bad_request(call: Any, aws: Aws) -> None:
    # Given an invocation whose headers are not a map of strings
    status, body = call({"headers": ["x-github-event"], "body": "{}"})
    # Then 400, nothing started
    assert status == 400
    assert body["error"].startswith("not a Lambda function URL request: headers")


def test_header_holding_a_lone_surrogate_is_a_bad_request_and_every_log_line_is_written(
    call: Any, aws: Aws, logs: io.StringIO
) -> None:
    # Given a signed delivery whose event header holds a lone surrogate (no HTTP bytes carry one; a JSON event can)
    event = delivery(headers={"x-github-event": "push\ud800"})
    # When it is delivered
    status, body = call(event)
    # Then 400 naming the header, nothing started, and the log line of the refusal could be encoded
    assert (status, body) == (
        400,
        {
            "error": "not a Lambda function URL request: headers: Value error, header 'x-github-event' is not "
            "valid UTF-8 text"
        },
    )
    assert aws.executions() == []
    logs.getvalue().encode("utf-8")
    assert '"delivery rejected"' in logs.getvalue()


def test_header_sent_twice_in_different_cases_is_a_bad_request(call: Any, aws: Aws) -> None:
    # Given a signed push that also carries X-GitHub-Event: ping (function URLs send each name once, lower-cased)
    event = delivery()
    event["headers"]["X-GitHub-Event"] = "ping"
    # When it is delivered / Then 400: the webhook does not pick one of the two values
    status, body = call(event)
    assert (status, body) == (
        400,
        {
            "error": "not a Lambda function URL request: headers: Value error, header x-github-event is sent more "
            "than once (its names differ only in case)"
        },
    )
    assert aws.executions() == []


def test_refusal_of_a_malformed_event_never_answers_or_logs_the_signature(
    call: Any, aws: Aws, logs: io.StringIO
) -> None:
    # Given a delivery whose signature header is a list holding the valid signature
    event = delivery()
    signature = event["headers"]["x-hub-signature-256"]
    event["headers"]["x-hub-signature-256"] = [signature]
    # When it is delivered
    status, body = call(event)
    # Then 400 naming the header, and the signature appears neither in the answer nor in the logs
    assert (status, body) == (
        400,
        {"error": "not a Lambda function URL request: headers.x-hub-signature-256: Input should be a valid string"},
    )
    for hidden in (signature, signature.removeprefix("sha256=")):
        assert hidden not in logs.getvalue()


def test_malformed_delivery_id_tags_no_log_line_and_the_previous_one_is_forgotten(
    call: Any, aws: Aws, logs: io.StringIO
) -> None:
    # Given a delivery with a well-formed id, then one whose id is not a GUID
    call(delivery())
    status, _ = call(delivery(headers={"x-github-delivery": "not a guid; \u2028 {}"}))
    # Then the second is refused, and its log lines carry no correlation id (neither its own nor the first one's)
    assert status == 400
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    refused = [line for line in lines if line["message"] == "delivery rejected"]
    assert refused
    assert all("correlation_id" not in line for line in refused)
    assert any(line.get("correlation_id") == DELIVERY for line in lines)


# --- ignored deliveries --------------------------------------------------------------------------


def test_ping_answers_200(call: Any, aws: Aws) -> None:
    # Given GitHub's ping after the webhook is created (signed like every delivery)
    event = delivery({"zen": "Design for failure.", "hook_id": 292430182}, event="ping")
    # When it is delivered
    status, body = call(event)
    # Then 200, nothing started
    assert (status, body) == (200, {"ping": "ok"})
    assert aws.executions() == []


def test_unsigned_ping_is_rejected(call: Any, aws: Aws) -> None:
    # Given a ping without signature
    event = delivery({"zen": "x"}, event="ping", headers={"x-hub-signature-256": None, "x-hub-signature": None})
    # When it is delivered
    status, _ = call(event)
    # Then 401: the signature is checked before the event is looked at
    assert status == 401


@pytest.mark.parametrize("event_name", ["pull_request", "issues", "release", "create", "workflow_run"])
def test_events_other_than_push_are_ignored(call: Any, aws: Aws, event_name: str) -> None:
    # Given a signed delivery of another event (its body is not parsed)
    event = delivery({"action": "opened"}, event=event_name)
    # When it is delivered
    status, body = call(event)
    # Then 200 with the reason, nothing started
    assert (status, body) == (200, {"ignored": f'event "{event_name}" is not handled: only push events deploy'})
    assert aws.executions() == []


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (push_payload(ref="refs/heads/feature/x"), "branch feature/x is not the deploy branch main"),
        (
            push_payload(repository={"full_name": "acme/other-app"}),
            "repository acme/other-app is not the configured repository acme/web-app",
        ),
        (push_payload(ref="refs/tags/v1.2.3"), "refs/tags/v1.2.3 is a tag push, not a branch push"),
        (push_payload(ref="refs/notes/commits"), "refs/notes/commits is not a branch"),
        (push_payload(deleted=True, after="0" * 40), "branch main was deleted"),
        (push_payload(after="0" * 40), "branch main was deleted"),
    ],
    ids=["other-branch", "other-repository", "tag", "other-ref", "deletion", "zero-after"],
)
def test_push_that_does_not_deploy_is_ignored_with_the_reason(
    call: Any, aws: Aws, payload: dict[str, Any], reason: str
) -> None:
    # Given a signed push that is not a new commit on the deploy branch of the configured repository
    event = delivery(payload)
    # When it is delivered
    status, body = call(event)
    # Then 200 with the reason, nothing started
    assert (status, body) == (200, {"ignored": reason})
    assert aws.executions() == []


def test_repository_name_matches_case_insensitively(call: Any, aws: Aws) -> None:
    # Given the repository spelled with other capitals (GitHub names are case-insensitive)
    event = delivery(push_payload(repository={"full_name": "Acme/Web-App"}))
    # When it is delivered
    status, _ = call(event)
    # Then it deploys, and the request carries GitHub's spelling
    assert status == 202
    assert json.loads(aws.executions()[0]["input"])["repository"] == "Acme/Web-App"


# --- secret rotation and caching -----------------------------------------------------------------


def test_rotated_secret_is_accepted_without_waiting_for_the_cache(call: Any, aws: Aws) -> None:
    # Given a first delivery that cached the current secret
    assert call(delivery())[0] == 202
    # When the secret is rotated in Secrets Manager (and GitHub's copy with it), well within the cache's max age
    aws.rotate(ROTATED)
    aws.clock.advance(30)
    status, _ = call(delivery(push_payload(after="b" * 40), secret=ROTATED))
    # Then the mismatch fetched the secret again and the delivery is accepted
    assert status == 202
    assert len(aws.executions()) == 2
    # And the old secret no longer passes
    assert call(delivery(push_payload(after="c" * 40)))[0] == 401


def test_cached_secret_is_read_once_then_again_after_its_max_age() -> None:
    # Given a secret source that counts its requests
    class Source:
        requests = 0
        value = "one"

        def get_string(self, secret_id: str) -> str:
            Source.requests += 1
            return Source.value

    clock = Clock()
    cache = CachedSecret("arn", max_age_seconds=300, min_refresh_seconds=5, secrets=Source(), clock=clock.tick)  # type: ignore[arg-type]
    # When it is read repeatedly within the max age, then after it
    first = [cache.get() for _ in range(3)]
    Source.value = "two"
    clock.advance(299)
    before_expiry = cache.get()
    clock.advance(1)
    after_expiry = cache.get()
    # Then one request served the first reads and the value is fetched again only once it is too old
    assert (first, before_expiry, after_expiry) == (["one"] * 3, "one", "two")
    assert Source.requests == 2


def test_forced_refresh_is_throttled_so_bad_signatures_cannot_flood_secrets_manager() -> None:
    # Given a freshly cached secret
    class Source:
        requests = 0
        value = "one"

        def get_string(self, secret_id: str) -> str:
            Source.requests += 1
            return Source.value

    clock = Clock()
    cache = CachedSecret("arn", max_age_seconds=300, min_refresh_seconds=5, secrets=Source(), clock=clock.tick)  # type: ignore[arg-type]
    cache.get()
    # When refreshes are asked for at once, and after the minimum interval (with and without a new value)
    immediate = [cache.refresh() for _ in range(10)]
    clock.advance(5)
    unchanged = cache.refresh()
    Source.value = "two"
    clock.advance(5)
    changed = cache.refresh()
    # Then the immediate ones make no request; later ones fetch and report only a changed value
    assert immediate == [None] * 10
    assert (unchanged, changed, cache.get()) == (None, "two", "two")
    assert Source.requests == 3


def test_missing_secret_is_a_named_error(aws: Aws) -> None:
    with pytest.raises(SecretNotFound, match="ResourceNotFoundException"):
        Secrets(aws.secretsmanager).get_string(f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:gone-AbCdEf")


# --- signature, names, adapters ------------------------------------------------------------------


def test_signature_matches_githubs_documented_test_vector() -> None:
    # GitHub docs, "Validating webhook deliveries": secret, payload and expected X-Hub-Signature-256
    assert (
        logic.signature("It's a Secret to Everybody", b"Hello, World!")
        == "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


def test_execution_name_is_deterministic_valid_and_distinct_per_repository_branch_and_commit() -> None:
    # Given a branch name with characters execution names do not allow, and a very long one
    odd = logic.execution_name(REPOSITORY, "feature/ünïcode thing#1", COMMIT)
    long = logic.execution_name(REPOSITORY, "b" * 250, COMMIT)
    # Then names are 1-80 characters of [A-Za-z0-9_-], stable, and differ when any part differs
    for name in (odd, long, logic.execution_name(REPOSITORY, BRANCH, COMMIT)):
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,80}", name)
    assert odd.startswith(f"github-feature--n-code-thing-1-{COMMIT[:12]}-")
    assert logic.execution_name(REPOSITORY, BRANCH, COMMIT) == expected_name()
    assert logic.execution_name(REPOSITORY.upper(), BRANCH, COMMIT.upper()) == expected_name()
    assert len({expected_name(), expected_name(branch="release"), expected_name(repository="acme/other")}) == 3
    assert logic.execution_name(REPOSITORY, "b" * 250, COMMIT) != logic.execution_name(REPOSITORY, "b" * 251, COMMIT)


def test_execution_arn_is_computed_from_the_state_machine_arn_and_the_name() -> None:
    assert (
        execution_arn(STATE_MACHINE_ARN, "run-1")
        == f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{STATE_MACHINE_NAME}:run-1"
    )
    assert execution_arn(f"{STATE_MACHINE_ARN}:PROD", "run-1").endswith(f":execution:{STATE_MACHINE_NAME}:run-1")
    with pytest.raises(ValueError, match="not a state machine ARN"):
        execution_arn("arn:aws:lambda:eu-west-1:123456789012:function:f", "run-1")


def test_missing_state_machine_is_a_named_error(aws: Aws) -> None:
    missing = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:gone"
    with pytest.raises(StateMachineNotFound, match="StateMachineDoesNotExist"):
        StepFunctions(aws.sfn).start_execution(missing, "run-1", "{}")


# --- observability -------------------------------------------------------------------------------


def test_each_outcome_emits_its_metric_with_the_service_dimension(
    call: Any, aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given one accepted, one ignored and one rejected delivery
    call(delivery())
    call(delivery(event="issues"))
    call(delivery(headers={"x-hub-signature-256": None}))
    # When the metrics are flushed (log_metrics, at the end of each invocation)
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    # Then each outcome has its metric, dimension service=web-app
    names = [d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"] for d in documents]
    assert names == ["WebhookAccepted", "WebhookIgnored", "WebhookRejected"]
    assert all(d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]] for d in documents)
    assert all(d["service"] == "web-app" for d in documents)


def test_logs_carry_the_delivery_id_and_never_the_secret_or_the_signature(
    call: Any, aws: Aws, logs: io.StringIO
) -> None:
    # Given an accepted and a rejected delivery
    good = delivery()
    bad = delivery(secret="wrong")
    call(good)
    call(bad)
    # Then the logs name the delivery and hold neither secret nor signature
    text = logs.getvalue()
    assert DELIVERY in text
    assert '"correlation_id":"' + DELIVERY in text.replace(" ", "")
    for hidden in (SECRET, good["headers"]["x-hub-signature-256"], bad["headers"]["x-hub-signature-256"]):
        assert hidden not in text
        assert hidden.removeprefix("sha256=") not in text


# --- environment ---------------------------------------------------------------------------------

ENV_FOR_LOGIC = GithubWebhookEnvironment.model_validate(
    {
        "WEBHOOK_SECRET_ARN": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:web-app/github-webhook-AbCdEf",
        "STATE_MACHINE_ARN": STATE_MACHINE_ARN,
        "GITHUB_REPOSITORY": REPOSITORY,
        "DEPLOY_BRANCH": BRANCH,
    }
)


class NoStarts:
    def start_execution(self, state_machine_arn: str, name: str, execution_input: str) -> StartedExecution:
        raise AssertionError("nothing may be started")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"WEBHOOK_SECRET_ARN": None}, "WEBHOOK_SECRET_ARN: required field is missing"),
        ({"STATE_MACHINE_ARN": "web-app-deploy"}, "STATE_MACHINE_ARN: String should match pattern"),
        ({"GITHUB_REPOSITORY": "web-app"}, "GITHUB_REPOSITORY: String should match pattern"),
        ({"DEPLOY_BRANCH": ""}, "DEPLOY_BRANCH: String should have at least 1 character"),
    ],
)
def test_github_webhook_environment_names_the_missing_or_bad_variable(
    change: dict[str, str | None], message: str
) -> None:
    environ = {k: v for k, v in {**ENV_FOR_LOGIC.model_dump(by_alias=True), **change}.items() if v is not None}
    with pytest.raises(ConfigurationError, match=f"github_webhook function environment: {re.escape(message)}"):
        load_environment(GithubWebhookEnvironment, "github_webhook", environ)
