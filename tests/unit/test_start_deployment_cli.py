"""scripts/start_deployment.py (`make start`): the stack from the configuration, the execution in the state
machine's own region, clear errors without credentials, a region or the stack, and how to follow the run."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

MACHINE = "arn:aws:states:eu-central-1:123456789012:stateMachine:web-app-deploy"
EXECUTION = "arn:aws:states:eu-central-1:123456789012:execution:web-app-deploy:manual-1"


start_deployment = importlib.import_module("scripts.start_deployment")  # as tests/unit/test_approval_cli.py does


class Session:
    """A boto3 session whose clients are stubbed, recording the region each client was made for."""

    def __init__(
        self, region_name: str | None = None, expected: dict[str, list[tuple[str, Any, dict[str, Any]]]] | None = None
    ) -> None:
        self.region_name = region_name
        self.expected = expected or {}
        self.made: list[tuple[str, str]] = []
        self.stubs: dict[str, Stubber] = {}
        self._clients: dict[str, Any] = {}

    def client(self, service: str, region_name: str) -> Any:
        self.made.append((service, region_name))
        if service not in self._clients:
            client = boto3.client(
                service, region_name=region_name, aws_access_key_id="testing", aws_secret_access_key="testing"
            )
            self._clients[service] = client
            self.stubs[service] = Stubber(client)
            self._prepare(service, self.stubs[service])
            self.stubs[service].activate()
        return self._clients[service]

    def _prepare(self, service: str, stub: Stubber) -> None:
        for expected in self.expected.get(service, []):
            method, response, params = expected
            if isinstance(response, str):
                stub.add_client_error(method, service_error_code=response, expected_params=params)
            else:
                stub.add_response(method, response, params)


def session_with(region: str | None, **expected: list[tuple[str, Any, dict[str, Any]]]) -> Session:
    return Session(region, expected)


def started() -> tuple[str, Any, dict[str, Any]]:
    return ("start_execution", {"executionArn": EXECUTION, "startDate": "2026-12-02T00:00:00Z"}, {
        "stateMachineArn": MACHINE, "input": '{"action": "rebuild-base"}'})  # fmt: skip


def test_the_stack_is_named_after_the_configured_application_and_the_run_starts_in_the_machines_region(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given no ARN given, and the stack of cdk.json's application (web-app) in the default region
    monkeypatch.delenv("STATE_MACHINE_ARN", raising=False)
    stack = {
        "StackName": "web-app-ami-pipeline",
        "CreationTime": "2026-12-01T00:00:00Z",
        "StackStatus": "CREATE_COMPLETE",
        "Outputs": [{"OutputKey": "StateMachineArn", "OutputValue": MACHINE}],
    }
    session = session_with(
        "eu-central-1",
        cloudformation=[("describe_stacks", {"Stacks": [stack]}, {"StackName": "web-app-ami-pipeline"})],
        stepfunctions=[started()],
    )

    # When
    code = start_deployment.main(["rebuild-base"], session=session)

    # Then the execution started where the state machine is, and the output says how to follow it
    assert code == 0
    assert session.made == [("cloudformation", "eu-central-1"), ("stepfunctions", "eu-central-1")]
    out = capsys.readouterr().out
    assert out.splitlines()[0] == EXECUTION
    assert f"aws stepfunctions describe-execution --region eu-central-1 --execution-arn {EXECUTION}" in out
    assert "https://eu-central-1.console.aws.amazon.com/states/home?region=eu-central-1" in out


def test_a_given_state_machine_arn_names_the_region_whatever_the_default(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("STATE_MACHINE_ARN", raising=False)
    session = session_with("us-east-1", stepfunctions=[started()])

    code = start_deployment.main(["rebuild-base", "--state-machine-arn", MACHINE], session=session)

    assert code == 0
    assert session.made == [("stepfunctions", "eu-central-1")]


def test_a_missing_stack_is_named_with_where_it_was_looked_for(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("STATE_MACHINE_ARN", raising=False)
    session = session_with(
        "eu-west-1", cloudformation=[("describe_stacks", "ValidationError", {"StackName": "shop-ami-pipeline"})]
    )

    code = start_deployment.main(["rebuild-base", "--stack", "shop-ami-pipeline"], session=session)

    assert code == 2
    err = capsys.readouterr().err
    assert "stack shop-ami-pipeline in eu-west-1: ValidationError" in err
    assert "--region" in err


def test_without_a_region_it_says_how_to_give_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("STATE_MACHINE_ARN", raising=False)

    code = start_deployment.main(["rebuild-base"], session=session_with(None))

    assert code == 2
    assert "no region: pass --region" in capsys.readouterr().err


def test_without_credentials_it_says_so_and_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a shell with no credentials anywhere botocore looks (and no instance metadata)
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                     "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                     "AWS_WEB_IDENTITY_TOKEN_FILE", "STATE_MACHINE_ARN"):  # fmt: skip
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    code = start_deployment.main(["rebuild-base", "--state-machine-arn", MACHINE], session=boto3.Session())

    assert code == 2
    assert "no AWS credentials" in capsys.readouterr().err


def test_a_bad_request_is_refused_before_any_aws_call(capsys: pytest.CaptureFixture[str]) -> None:
    session = session_with("eu-central-1")

    code = start_deployment.main(["deploy", "--commit", "abc123"], session=session)

    assert code == 2
    assert "InvalidInput" in capsys.readouterr().err
    assert session.made == []
